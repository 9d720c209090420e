"""Fitting the data-constrained law as the paper's notebook does, with scipy's L-BFGS.

Objective (both stages): the sum over runs of Huber_δ(LSE(a − α log N', b − β log D', e) − log L), δ = 1e-3.
Stage 1 fits the Chinchilla form (a, b, e, α, β; α = β when tied, as the paper's C4 constants are) on runs
that do not repeat data; stage 2 fits R_D* and R_N* on all runs with stage 1 frozen. Each stage runs
L-BFGS from every point of a grid of initialisations (the notebook's grids by default) and keeps the lowest
objective. Gradients are analytic and tolerances tight: the objective is ~1e-2 and flat near its minimum,
so scipy's default tolerances stop on the plateau rather than at the minimum.

Bounds only keep the law defined (exponents > 0, decay constants > 0); the notebook's fits are unbounded.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from assets.scaling.law import (
    ScalingLaw,
    effective_data,
    predict_log_loss,
    predict_loss,
    repetitions,
    unique_parameters,
)

HUBER_DELTA = 1e-3
_TIGHT = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000}
EXPONENT_BOUNDS = (1e-4, 10.0)
DECAY_BOUNDS = (1e-4, 1e4)


def start_grid(*axes) -> np.ndarray:
    """Every combination of the given axis values, one start per row."""
    return np.array(list(itertools.product(*axes)), dtype=float)


# utils/parametric_fit.ipynb: a, b ∈ linspace(0, 25, 5), e ∈ linspace(−1, 1, 4), α (= β) ∈ linspace(0, 2, 4).
PAPER_CHINCHILLA_GRID_TIED = start_grid(np.linspace(0, 25, 5), np.linspace(0, 25, 5), np.linspace(-1, 1, 4),
                                   np.linspace(0, 2, 4))
PAPER_CHINCHILLA_GRID = start_grid(np.linspace(0, 25, 5), np.linspace(0, 25, 5), np.linspace(-1, 1, 4),
                              np.linspace(0, 2, 4), np.linspace(0, 2, 4))
# A coarser grid over the same ranges, for the tiny profile and tests (seconds, not minutes, on 2 cores).
COARSE_CHINCHILLA_GRID_TIED = start_grid(np.linspace(0, 25, 3), np.linspace(0, 25, 3), np.linspace(-1, 1, 2),
                                    np.linspace(0, 2, 3))
COARSE_CHINCHILLA_GRID = start_grid(np.linspace(0, 25, 3), np.linspace(0, 25, 3), np.linspace(-1, 1, 2),
                               np.linspace(0, 2, 3), np.linspace(0, 2, 3))
# R_D*, R_N* ∈ linspace(0, 20, 4), without 0: a zero start is 0/0 in R/R* (the notebook's were NaN, skipped).
PAPER_DECAY_GRID = start_grid(np.linspace(0, 20, 4)[1:], np.linspace(0, 20, 4)[1:])


@dataclass(frozen=True)
class Runs:
    """Final losses of training runs: N, D, U_D and L, as float arrays of one length."""

    parameters: np.ndarray
    tokens: np.ndarray
    unique_tokens: np.ndarray
    loss: np.ndarray

    def __post_init__(self) -> None:
        arrays = {f: np.asarray(getattr(self, f), dtype=float) for f in ("parameters", "tokens", "unique_tokens", "loss")}
        n = len(arrays["loss"])
        for name, arr in arrays.items():
            if arr.ndim != 1 or len(arr) != n:
                raise ValueError(f"Runs.{name} must be a 1-D array of length {n}, got shape {arr.shape}")
            if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                raise ValueError(f"Runs.{name} must hold positive finite numbers")
            object.__setattr__(self, name, arr)
        if np.any(arrays["unique_tokens"] > arrays["tokens"] * (1 + 1e-9)):
            raise ValueError("Runs.unique_tokens must not exceed Runs.tokens (a run cannot see more unique tokens than tokens)")

    @classmethod
    def from_frame(cls, df: pd.DataFrame, parameters: str = "parameters", tokens: str = "tokens",
                   unique_tokens: str = "unique_tokens", loss: str = "loss") -> Runs:
        missing = [c for c in (parameters, tokens, unique_tokens, loss) if c not in df.columns]
        if missing:
            raise ValueError(f"runs table lacks columns {missing}; it has {list(df.columns)}")
        return cls(df[parameters].to_numpy(float), df[tokens].to_numpy(float),
                   df[unique_tokens].to_numpy(float), df[loss].to_numpy(float))

    def __len__(self) -> int:
        return len(self.loss)

    def take(self, index) -> Runs:
        return Runs(self.parameters[index], self.tokens[index], self.unique_tokens[index], self.loss[index])

    @property
    def epochs(self) -> np.ndarray:
        return self.tokens / self.unique_tokens


@dataclass
class Fit:
    """One stage's result: the law, its objective, and how the multi-start went."""

    law: ScalingLaw
    objective: float
    n_runs: int
    n_starts: int
    n_converged: int
    solutions: list[tuple[float, np.ndarray]] = field(default_factory=list, repr=False)  # (objective, x), best first


# -------------------------------------------------------------------------------------------------- stage 1
def _lse3(t1: np.ndarray, t2: np.ndarray, e: float) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """log(exp t1 + exp t2 + exp e) and the softmax weights (hand-inlined: it runs ~10⁵ times per fit)."""
    top = np.maximum(np.maximum(t1, t2), e)
    x1, x2, x3 = np.exp(t1 - top), np.exp(t2 - top), np.exp(e - top)
    total = x1 + x2 + x3
    return top + np.log(total), (x1 / total, x2 / total, x3 / total)


def _huber_sum(resid: np.ndarray, delta: float) -> float:
    """Σ Huber_δ(r): r²/2 where |r| ≤ δ, else δ(|r| − δ/2) (torch's ``huber_loss``, scipy's ``huber``)."""
    r = np.abs(resid)
    return float(np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta)).sum())


def chinchilla_objective(x: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray,
                         tie: bool, delta: float = HUBER_DELTA) -> tuple[float, np.ndarray]:
    """Huber objective of the Chinchilla form and its gradient; x = (a, b, e, α) tied or (a, b, e, α, β)."""
    a, b, e, alpha = x[:4]
    beta = alpha if tie else x[4]
    pred, weights = _lse3(a - alpha * log_n, b - beta * log_d, e)
    resid = pred - log_l
    psi = np.clip(resid, -delta, delta)  # dHuber/dr
    wn, wd = psi * weights[0], psi * weights[1]
    g_alpha, g_beta = -wn @ log_n, -wd @ log_d
    grad = [wn.sum(), wd.sum(), (psi * weights[2]).sum()]
    grad += [g_alpha + g_beta] if tie else [g_alpha, g_beta]
    return _huber_sum(resid, delta), np.asarray(grad)


def _lbfgs(objective, x0: np.ndarray, bounds, options: dict) -> tuple[float, np.ndarray] | None:
    with np.errstate(all="ignore"):
        res = minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
    if np.isfinite(res.fun) and np.all(np.isfinite(res.x)):
        return float(res.fun), np.asarray(res.x, dtype=float)
    return None


def _multistart(objective, starts: np.ndarray, bounds, n_polish: int = 8) -> list[tuple[float, np.ndarray]]:
    """L-BFGS from every start (scipy's default tolerances), then the best ``n_polish`` distinct ends run on
    with tight tolerances to the minimum itself. Returns (objective, x) pairs, best first."""
    found = [hit for x0 in starts if (hit := _lbfgs(objective, x0, bounds, {})) is not None]
    found.sort(key=lambda item: item[0])
    polished, seen = [], []
    for value, x in found:
        if len(polished) >= n_polish:
            break
        if any(np.allclose(x, y, rtol=1e-3, atol=1e-6) for y in seen):
            continue
        seen.append(x)
        polished.append(_lbfgs(objective, x, bounds, _TIGHT) or (value, x))
    polished.sort(key=lambda item: item[0])
    return polished + [item for item in found if not any(item[1] is y for y in seen)]


def fit_chinchilla(runs: Runs, *, tie: bool = True, starts: np.ndarray | None = None,
                   delta: float = HUBER_DELTA, n_polish: int = 8) -> Fit:
    """Stage 1: L = E + A/N^α + B/D^β (tokens D taken at face value) by multi-start L-BFGS."""
    n_free = 4 if tie else 5
    if len(runs) < n_free:
        raise ValueError(f"the Chinchilla stage fits {n_free} constants and needs at least {n_free} runs, got {len(runs)}")
    if starts is None:
        starts = PAPER_CHINCHILLA_GRID_TIED if tie else PAPER_CHINCHILLA_GRID
    starts = np.atleast_2d(np.asarray(starts, dtype=float))
    if starts.shape[1] != n_free:
        raise ValueError(f"starts must have {n_free} columns (a, b, e, alpha{'' if tie else ', beta'}), got {starts.shape[1]}")
    log_n, log_d, log_l = np.log(runs.parameters), np.log(runs.tokens), np.log(runs.loss)
    bounds = [(None, None)] * 3 + [EXPONENT_BOUNDS] * (n_free - 3)
    starts = np.column_stack([starts[:, :3], np.clip(starts[:, 3:], *EXPONENT_BOUNDS)])
    found = _multistart(lambda x: chinchilla_objective(x, log_n, log_d, log_l, tie, delta), starts, bounds,
                        n_polish)
    if not found:
        raise RuntimeError("the Chinchilla stage found no finite fit from any start")
    best_obj, x = found[0]
    law = ScalingLaw(a=x[0], b=x[1], e=x[2], alpha=x[3], beta=x[3] if tie else x[4])
    return Fit(law, best_obj, len(runs), len(starts), len(found), found)


# -------------------------------------------------------------------------------------------------- stage 2
def _decay_terms(repeats: np.ndarray, base: np.ndarray, r_star: float) -> tuple[np.ndarray, np.ndarray]:
    """(worth, d worth / d R*) of base·(1 + R*(1 − exp(−R/R*)))."""
    x = np.exp(-repeats / r_star)
    worth = base + base * r_star * (1.0 - x)
    return worth, base * ((1.0 - x) - (repeats / r_star) * x)


def decay_objective(x: np.ndarray, law: ScalingLaw, runs: Runs, fit_rn: bool,
                    delta: float = HUBER_DELTA) -> tuple[float, np.ndarray]:
    """Huber objective of the data-constrained form in (R_D*[, R_N*]) with the Chinchilla constants frozen."""
    rd_star = x[0]
    u_d = np.minimum(runs.unique_tokens, runs.tokens)
    d_eff, d_grad = _decay_terms(repetitions(runs.tokens, u_d), u_d, rd_star)
    if fit_rn:
        u_n = unique_parameters(runs.parameters, u_d, law)
        n_eff, n_grad = _decay_terms(repetitions(runs.parameters, u_n), u_n, x[1])
    else:
        n_eff, n_grad = runs.parameters, np.zeros_like(runs.parameters)
    pred, weights = _lse3(law.a - law.alpha * np.log(n_eff), law.b - law.beta * np.log(d_eff), law.e)
    resid = pred - np.log(runs.loss)
    psi = np.clip(resid, -delta, delta)
    grad = [np.sum(psi * weights[1] * (-law.beta) * d_grad / d_eff)]
    if fit_rn:
        grad.append(np.sum(psi * weights[0] * (-law.alpha) * n_grad / n_eff))
    return _huber_sum(resid, delta), np.asarray(grad)


def fit_decay(chinchilla: ScalingLaw, runs: Runs, *, fit_rn: bool = True, starts: np.ndarray | None = None,
              delta: float = HUBER_DELTA, n_polish: int = 8) -> Fit:
    """Stage 2: R_D* (and R_N*) with a, b, e, α, β frozen, by multi-start L-BFGS (the notebook's grid by default)."""
    if len(runs) < 2:
        raise ValueError(f"the decay stage needs at least 2 runs, got {len(runs)}")
    starts = PAPER_DECAY_GRID if starts is None else np.atleast_2d(np.asarray(starts, dtype=float))
    if not fit_rn:
        starts = np.unique(starts[:, :1], axis=0)
    starts = np.clip(starts, *DECAY_BOUNDS)
    base = chinchilla.chinchilla()
    found = _multistart(lambda x: decay_objective(x, base, runs, fit_rn, delta), starts,
                        [DECAY_BOUNDS] * (2 if fit_rn else 1), n_polish)
    if not found:
        raise RuntimeError("the decay stage found no finite fit from any start")
    best_obj, x = found[0]
    law = base.with_decay(x[0], x[1] if fit_rn else math.inf)
    return Fit(law, best_obj, len(runs), len(starts), len(found), found)


def objective_value(law: ScalingLaw, runs: Runs, delta: float = HUBER_DELTA) -> float:
    """The Huber objective of any law on runs (to compare forms and fits on one scale)."""
    resid = predict_log_loss(runs.parameters, runs.tokens, runs.unique_tokens, law) - np.log(runs.loss)
    return _huber_sum(resid, delta)


def r_squared(observed: np.ndarray, predicted: np.ndarray) -> float:
    """1 − SS_res / SS_tot on the loss itself."""
    observed, predicted = np.asarray(observed, float), np.asarray(predicted, float)
    ss_tot = float(np.sum((observed - observed.mean()) ** 2))
    if ss_tot == 0:
        return math.nan
    return 1.0 - float(np.sum((observed - predicted) ** 2)) / ss_tot


# ----------------------------------------------------------------------------------------------- two stages
@dataclass
class LawFit:
    """Both stages: the Chinchilla constants (stage 1) and the data-constrained law (stage 2)."""

    chinchilla: Fit
    decay: Fit
    stage1_index: np.ndarray  # which runs stage 1 used

    @property
    def law(self) -> ScalingLaw:
        return self.decay.law


def single_epoch(runs: Runs, max_epochs: float = 1.0) -> np.ndarray:
    """Indices of runs that repeat data at most ``max_epochs`` times (1: none repeated)."""
    return np.flatnonzero(runs.epochs <= max_epochs * (1 + 1e-9))


def fit_law(runs: Runs, *, tie: bool = True, chinchilla_max_epochs: float = 1.0,
            chinchilla_starts: np.ndarray | None = None, decay_starts: np.ndarray | None = None,
            delta: float = HUBER_DELTA) -> LawFit:
    """Stage 1 on runs with ≤ ``chinchilla_max_epochs`` epochs, then stage 2 on all runs."""
    index = single_epoch(runs, chinchilla_max_epochs)
    if len(index) < (4 if tie else 5):
        raise ValueError(f"only {len(index)} runs have <= {chinchilla_max_epochs} epochs; the Chinchilla stage "
                         f"needs at least {4 if tie else 5} (add unique-data runs to the grid)")
    stage1 = fit_chinchilla(runs.take(index), tie=tie, starts=chinchilla_starts, delta=delta)
    stage2 = fit_decay(stage1.law, runs, starts=decay_starts, delta=delta)
    return LawFit(stage1, stage2, index)


def bootstrap_law(runs: Runs, full: LawFit, *, n_resamples: int, seed: int = 0, tie: bool = True,
                  chinchilla_max_epochs: float = 1.0, n_warm_starts: int = 2,
                  delta: float = HUBER_DELTA) -> pd.DataFrame:
    """Refit both stages on runs resampled with replacement; one row of constants per successful resample.

    Each refit starts from the full-data fit's best ``n_warm_starts`` stage-1 solutions (a full grid per
    resample would cost hundreds of L-BFGS runs) and from the notebook's decay grid plus the full-data R*.
    Resamples whose single-epoch runs cannot determine stage 1 are skipped (``n_resamples`` minus the rows).
    """
    if n_resamples < 0:
        raise ValueError(f"n_resamples must be >= 0, got {n_resamples}")
    rng = np.random.default_rng(seed)
    warm = np.array([x for _, x in full.chinchilla.solutions[:n_warm_starts]])
    decay_starts = np.vstack([PAPER_DECAY_GRID, [[min(full.law.rd_star, DECAY_BOUNDS[1]),
                                                  min(full.law.rn_star, DECAY_BOUNDS[1])]]])
    n_free = 4 if tie else 5
    rows = []
    for i in range(n_resamples):
        sample = runs.take(rng.integers(0, len(runs), len(runs)))
        index = single_epoch(sample, chinchilla_max_epochs)
        if len(np.unique(np.column_stack([sample.parameters[index], sample.tokens[index]]), axis=0)) < n_free:
            continue
        try:
            stage1 = fit_chinchilla(sample.take(index), tie=tie, starts=warm, delta=delta, n_polish=1)
            stage2 = fit_decay(stage1.law, sample, starts=decay_starts, delta=delta, n_polish=1)
        except (RuntimeError, ValueError):
            continue
        rows.append({"resample": i, **stage2.law.as_dict(), "objective": stage2.objective})
    return pd.DataFrame(rows, columns=["resample", "a", "b", "e", "alpha", "beta", "rd_star", "rn_star", "objective"])


def constants_table(full: LawFit, boot: pd.DataFrame, paper: ScalingLaw, level: float = 0.95) -> pd.DataFrame:
    """One row per constant: the fit, its bootstrap percentile interval, and the paper's value."""
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    law = full.law
    derived = {"A": lambda d: np.exp(d["a"]), "B": lambda d: np.exp(d["b"]), "E": lambda d: np.exp(d["e"])}
    rows = []
    for name in ("a", "b", "e", "alpha", "beta", "A", "B", "E", "rd_star", "rn_star"):
        value = getattr(law, name)
        samples = (derived[name](boot) if name in derived else boot[name]) if len(boot) else pd.Series(dtype=float)
        rows.append({
            "constant": name, "value": float(value),
            "ci_low": float(np.quantile(samples, lo_q)) if len(samples) else math.nan,
            "ci_high": float(np.quantile(samples, hi_q)) if len(samples) else math.nan,
            "paper": float(getattr(paper, name)),
            "stage": "decay" if name in ("rd_star", "rn_star") else "chinchilla",
            "n_bootstrap": len(boot),
        })
    return pd.DataFrame(rows)


def law_from_constants(table: pd.DataFrame) -> ScalingLaw:
    """The law back from a constants table (``constant``, ``value`` columns)."""
    values = dict(zip(table["constant"], table["value"], strict=True))
    missing = [k for k in ("a", "b", "e", "alpha", "beta", "rd_star", "rn_star") if k not in values]
    if missing:
        raise ValueError(f"constants table lacks {missing}")
    return ScalingLaw(**{k: float(values[k]) for k in ("a", "b", "e", "alpha", "beta", "rd_star", "rn_star")})


def compare_forms(runs: Runs, chinchilla: ScalingLaw, full: ScalingLaw | None = None,
                  delta: float = HUBER_DELTA) -> pd.DataFrame:
    """R² (on L) and Huber objective (on log L) of the plain Chinchilla form vs the data-constrained forms.

    Forms: Chinchilla with D = all tokens (repeats as good as new); Chinchilla with D = unique tokens
    (repeats worth nothing); data-constrained with R_D* only; with R_D* and R_N* (``full`` if given,
    else fitted here). Every form shares stage 1's a, b, e, α, β.
    """
    base = chinchilla.chinchilla()
    rd_only = fit_decay(base, runs, fit_rn=False, delta=delta).law
    both = full if full is not None else fit_decay(base, runs, delta=delta).law
    forms = [
        ("chinchilla, D = tokens", base, 0),
        ("chinchilla, D = unique tokens", base.with_decay(0.0), 0),
        ("data-constrained, R_D*", rd_only, 1),
        ("data-constrained, R_D* and R_N*", both, 2),
    ]
    rows = []
    for form, law, n_decay in forms:
        predicted = predict_loss(runs.parameters, runs.tokens, runs.unique_tokens, law)
        rows.append({"form": form, "decay_constants": n_decay, "rd_star": law.rd_star, "rn_star": law.rn_star,
                     "r2": r_squared(runs.loss, predicted), "huber": objective_value(law, runs, delta),
                     "n_runs": len(runs)})
    return pd.DataFrame(rows)


def effective_data_multiple(epochs, rd_star: float) -> np.ndarray:
    """D'/U_D after ``epochs`` passes over U_D: how many unique-data equivalents the repeated data is worth."""
    epochs = np.asarray(epochs, dtype=float)
    if np.any(epochs < 1):
        raise ValueError("epochs must be >= 1")
    return effective_data(1.0, epochs, rd_star)
