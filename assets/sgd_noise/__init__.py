"""SGD noise in online learning (Vyas, Morwani, Zhao, Kaplun, Kakade & Barak 2023): online vs offline SGD,
functional distance at equal loss, noise reduction mid-training."""
