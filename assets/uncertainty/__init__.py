"""The knowable and the unknowable (Ahdritz, Qin, Vyas, Barak & Edelman 2024): epistemic-uncertainty probes."""
