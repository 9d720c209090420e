"""What repeated data is worth, and how to spend a compute budget when unique data is capped.

- `effective_data_table`: D'/U_D after e epochs (1 + R_D*(1 − exp(−(e−1)/R_D*))), the worth of the last epoch
  (D'(e) − D'(e−1), in units of U_D) and repeated data's worth per token (D'/D).
- `compute_optimal_allocation`: for C = 6ND and a cap U_D on unique tokens, the N (and D = C/6N) that
  minimise the data-constrained L(N, D, U_D), next to Chinchilla's unconstrained optimum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from assets.scaling.law import ScalingLaw, chinchilla_optimum, predict_loss

DEFAULT_EPOCHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 100)


def _multiple(epochs: np.ndarray, rd_star: float) -> np.ndarray:
    return 1.0 + rd_star * (-np.expm1(-(epochs - 1.0) / rd_star))


def effective_data_table(laws: dict[str, float], epochs: Sequence[float] = DEFAULT_EPOCHS) -> pd.DataFrame:
    """Rows per (source, epochs): ``laws`` maps a source name (e.g. "ours", "paper") to its R_D*."""
    epochs = np.asarray(epochs, dtype=float)
    if epochs.ndim != 1 or not len(epochs) or np.any(epochs < 1):
        raise ValueError(f"epochs must be a non-empty list of numbers >= 1, got {list(epochs)}")
    rows = []
    for source, rd_star in laws.items():
        if not (rd_star > 0):
            raise ValueError(f"R_D* of {source!r} must be > 0, got {rd_star!r}")
        multiple = _multiple(epochs, rd_star)
        previous = _multiple(np.maximum(epochs - 1.0, 1.0), rd_star)
        for e, m, p in zip(epochs, multiple, previous, strict=True):
            rows.append({"source": source, "rd_star": float(rd_star), "epochs": float(e),
                         "effective_data_multiple": float(m), "worth_per_token": float(m / e),
                         "last_epoch_worth": float(m - p) if e >= 2 else float(m),
                         "limit_multiple": 1.0 + float(rd_star)})
    return pd.DataFrame(rows)


def epochs_for_fraction(rd_star: float, fraction: float) -> float:
    """Epochs after which repeated data is still worth ``fraction`` of fresh data per token (D'/D = fraction)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    grid = np.geomspace(1, 1e4, 20001)
    worth = _multiple(grid, rd_star) / grid
    below = np.flatnonzero(worth < fraction)
    return float(grid[below[0]]) if len(below) else math.inf


def compute_optimal_allocation(compute: float, unique_tokens: float, law: ScalingLaw) -> dict[str, float]:
    """argmin over N of L(N, C/6N, U_D): the data-constrained optimum, plus Chinchilla's for comparison."""
    if not (compute > 0 and math.isfinite(compute)):
        raise ValueError(f"compute must be a positive number of FLOPs, got {compute!r}")
    if not (unique_tokens > 0 and math.isfinite(unique_tokens)):
        raise ValueError(f"unique_tokens must be a positive number, got {unique_tokens!r}")
    n_chin, d_chin = (float(v) for v in chinchilla_optimum(compute, law))

    def loss_at(log_n):
        n = 10.0**log_n
        return predict_loss(n, compute / (6 * n), unique_tokens, law)

    # Scan six decades either side of Chinchilla's optimum, then refine around the best point.
    centre = math.log10(n_chin)
    scan = np.linspace(centre - 6, centre + 6, 241)
    best = int(np.argmin(loss_at(scan)))
    lo, hi = scan[max(best - 1, 0)], scan[min(best + 1, len(scan) - 1)]
    res = minimize_scalar(lambda x: float(loss_at(x)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    n_opt = float(10.0**res.x)
    d_opt = compute / (6 * n_opt)
    return {
        "compute": float(compute), "unique_tokens": float(unique_tokens),
        "parameters": n_opt, "tokens": d_opt, "epochs": d_opt / unique_tokens, "loss": float(res.fun),
        "chinchilla_parameters": n_chin, "chinchilla_tokens": d_chin,
        "chinchilla_loss_with_cap": float(predict_loss(n_chin, d_chin, unique_tokens, law)),
    }


def allocation_table(budgets: Sequence[float], unique_tokens: float, law: ScalingLaw, source: str) -> pd.DataFrame:
    """`compute_optimal_allocation` over budgets, one row each, labelled with ``source``."""
    rows = [{"source": source, **compute_optimal_allocation(float(c), unique_tokens, law)} for c in budgets]
    return pd.DataFrame(rows)
