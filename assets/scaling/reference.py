"""The paper's own data: the 182 C4 runs its decay constants were fitted to, and their refit.

``reference/datablations_c4_runs.csv`` (packaged with this module) holds, per run: the model's parameters,
total tokens, unique tokens and final validation loss, as published with the paper's fitting notebook
(huggingface/datablations, ``utils/parametric_fit.ipynb``, "Fit default" with outliers removed).

With the paper's Chinchilla constants frozen, the notebook's decay grid gives R_D* ≈ 15.39, R_N* ≈ 5.31
(Huber sum ≈ 0.0158). That minimum is shallow: a second basin near R_D* ≈ 49, R_N* ≈ 2.3 has a Huber sum
~0.1% lower and is reached from starts outside the notebook's grid (`wide_decay_starts`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from assets.scaling.fitting import PAPER_DECAY_GRID, Fit, Runs, fit_decay, start_grid
from assets.scaling.law import PAPER_C4, ScalingLaw

REFERENCE_CSV = Path(__file__).resolve().parent / "reference" / "datablations_c4_runs.csv"
N_REFERENCE_RUNS = 182


def reference_runs(path: str | Path = REFERENCE_CSV) -> pd.DataFrame:
    """The paper's C4 runs with the study's column names: name, parameters, tokens, unique_tokens, loss, epochs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference runs {path} are missing (packaged with assets.scaling)")
    raw = pd.read_csv(path)
    expected = {"name", "params", "tokens", "unique_tokens", "val_loss"}
    if not expected <= set(raw.columns):
        raise ValueError(f"{path}: expected columns {sorted(expected)}, got {list(raw.columns)}")
    runs = raw.rename(columns={"params": "parameters", "val_loss": "loss"})
    runs["epochs"] = runs["tokens"] / runs["unique_tokens"]
    return runs[["name", "parameters", "tokens", "unique_tokens", "epochs", "loss"]]


def wide_decay_starts() -> np.ndarray:
    """Starts from 1 to 100 for R_D* and R_N*: beyond the notebook's grid, to map the objective's basins."""
    axis = np.array([1.0, 3.0, 10.0, 30.0, 100.0])
    return np.vstack([PAPER_DECAY_GRID, start_grid(axis, axis)])


def refit_reference(runs: pd.DataFrame | None = None, chinchilla: ScalingLaw = PAPER_C4,
                    starts: np.ndarray | None = None) -> Fit:
    """R_D*, R_N* over the paper's runs with ``chinchilla``'s constants frozen (the notebook's grid by default)."""
    runs = reference_runs() if runs is None else runs
    return fit_decay(chinchilla, Runs.from_frame(runs), starts=starts)
