"""Functional distance between two models, measured at equal held-out loss (Vyas et al. 2023, Sec. 3).

The distance between models f and g is the pointwise total-variation distance of their predictive
distributions, averaged over held-out inputs x:

    d(f, g) = E_x [ TV(f(.|x), g(.|x)) ] = E_x [ 1/2 sum_y |f(y|x) - g(y|x)| ]  in [0, 1].

Runs with different noise levels reach a given loss at different steps, so they are compared at EQUAL LOSS:
for a loss level L, each run's predictions are interpolated linearly between the two logged checkpoints
whose held-out loss brackets the first time it reaches L (loss i > L >= loss i+1, on the run's running
minimum so that a later rise does not count), with weight t = (loss_i - L) / (loss_i - loss_{i+1}).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def tv_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over inputs of the total-variation distance between rows of p and q (shape (..., classes)).

    Each row must be a probability vector (non-negative, summing to 1 within 1e-3)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"p {p.shape} and q {q.shape}: expected two arrays of the same shape (..., classes)")
    for name, a in (("p", p), ("q", q)):
        if (a < -1e-9).any() or not np.allclose(a.sum(axis=-1), 1.0, atol=1e-3):
            raise ValueError(f"{name}: expected probability vectors along the last axis (>= 0, summing to 1)")
    return float(0.5 * np.abs(p - q).sum(axis=-1).mean())


@dataclass(frozen=True)
class Crossing:
    """Where a run first reaches a loss level: between checkpoints ``index`` and ``index + 1`` at weight t."""

    index: int
    weight: float
    step: float  # the interpolated step (for tables)


def first_crossing(losses: Sequence[float], steps: Sequence[float], level: float) -> Crossing | None:
    """The first point where the running minimum of ``losses`` falls to ``level`` (None if it never does).

    If the very first checkpoint is already at or below the level, the crossing is checkpoint 0 exactly."""
    losses = np.minimum.accumulate(np.asarray(losses, dtype=np.float64))
    steps = np.asarray(steps, dtype=np.float64)
    if losses.shape != steps.shape or losses.ndim != 1 or len(losses) == 0:
        raise ValueError(f"losses {losses.shape} and steps {steps.shape}: expected two 1-D arrays of one length")
    below = np.flatnonzero(losses <= level)
    if len(below) == 0:
        return None
    j = int(below[0])
    if j == 0:
        return Crossing(0, 0.0, float(steps[0]))
    hi, lo = losses[j - 1], losses[j]
    t = 1.0 if hi == lo else float((hi - level) / (hi - lo))
    return Crossing(j - 1, t, float(steps[j - 1] + t * (steps[j] - steps[j - 1])))


def predictions_at(predict: Callable[[int], np.ndarray], crossing: Crossing) -> np.ndarray:
    """The run's predictions interpolated at a crossing; ``predict(i)`` gives checkpoint i's probabilities."""
    first = predict(crossing.index)
    if crossing.weight == 0.0:
        return first
    return (1 - crossing.weight) * first + crossing.weight * predict(crossing.index + 1)


def loss_levels(curves: pd.DataFrame, runs: Sequence[str], n_levels: int, loss: str = "eval_loss",
                start_fraction: float = 0.15) -> np.ndarray:
    """``n_levels`` loss levels every one of ``runs`` reaches: from ``start_fraction`` of the way down from
    the highest initial loss to the highest of the runs' best (lowest) losses."""
    if n_levels < 1:
        raise ValueError(f"n_levels={n_levels!r}: expected a positive integer")
    chosen = curves[curves["run_key"].isin(list(runs))]
    if chosen.empty:
        raise ValueError(f"no curves for runs {list(runs)[:4]}")
    first = chosen.sort_values("step").groupby("run_key")[loss].first()
    best = chosen.groupby("run_key")[loss].min()
    top, bottom = float(first.max()), float(best.max())
    start = top - start_fraction * (top - bottom)
    return np.linspace(start, bottom, n_levels)


def equal_loss_distances(curves: pd.DataFrame, pairs: Sequence[tuple[str, str, str]],
                         predict: Callable[[str, int], np.ndarray], levels: Sequence[float],
                         loss: str = "eval_loss") -> pd.DataFrame:
    """TV distance between the runs of each (kind, run_a, run_b) pair at each loss level both reach.

    ``curves`` has one row per (run_key, checkpoint) with columns run_key, checkpoint, step and ``loss``;
    ``predict(run_key, checkpoint)`` returns that checkpoint's held-out predictive probabilities. Also
    gives, for contrast, the distance at equal steps (at run_a's crossing step, run_b interpolated there)."""
    by_run = {key: frame.sort_values("checkpoint") for key, frame in curves.groupby("run_key")}
    rows = []
    for kind, a, b in pairs:
        if a not in by_run or b not in by_run:
            raise ValueError(f"pair ({a!r}, {b!r}): both runs need curves")
        ca, cb = by_run[a], by_run[b]
        for level in levels:
            xa = first_crossing(ca[loss].to_numpy(), ca["step"].to_numpy(), float(level))
            xb = first_crossing(cb[loss].to_numpy(), cb["step"].to_numpy(), float(level))
            if xa is None or xb is None:
                continue
            pa = predictions_at(lambda i, k=a: predict(k, i), xa)
            pb = predictions_at(lambda i, k=b: predict(k, i), xb)
            at_step = _crossing_at_step(cb["step"].to_numpy(), xa.step)
            pb_step = predictions_at(lambda i, k=b: predict(k, i), at_step)
            rows.append({"kind": kind, "run_a": a, "run_b": b, "loss_level": float(level),
                         "step_a": xa.step, "step_b": xb.step,
                         "tv_equal_loss": tv_distance(pa, pb), "tv_equal_step": tv_distance(pa, pb_step)})
    return pd.DataFrame(rows, columns=["kind", "run_a", "run_b", "loss_level", "step_a", "step_b",
                                       "tv_equal_loss", "tv_equal_step"])


def _crossing_at_step(steps: np.ndarray, step: float) -> Crossing:
    """Linear interpolation weights at a step (clamped to the logged range)."""
    steps = np.asarray(steps, dtype=np.float64)
    if step <= steps[0]:
        return Crossing(0, 0.0, float(steps[0]))
    if step >= steps[-1]:
        return Crossing(len(steps) - 1, 0.0, float(steps[-1]))
    j = int(np.searchsorted(steps, step, side="right"))
    t = float((step - steps[j - 1]) / (steps[j] - steps[j - 1]))
    return Crossing(j - 1, t, float(step))
