"""Scaling data-constrained language models (Muennighoff et al. 2023): what repeating data costs.

- `law`: the data-constrained scaling law L(N, D) = E + A/N'^α + B/D'^β with effective data D' and effective
  parameters N', exactly as the paper and its public fitting notebook define them, and the paper's constants.
- `fitting`: the two-stage Huber fit (Chinchilla form, then R_D* and R_N*), bootstrap intervals, R² of forms.
- `allocation`: effective data vs epochs and the compute-optimal allocation for a budget C = 6ND.
- `grid`: the training grid over (model size N, unique tokens U_D, epochs), run with the LM family's trainer.
- `reference`: the paper's 182 C4 runs (packaged CSV) and their refit.
- `plots`: the study's figures (matplotlib, no Dagster).
"""
