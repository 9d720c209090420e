"""Tables computed from the runs and curves: which runs to compare, the functional distances at equal loss,
loss at equal steps by noise level, the noise-reduction branches, and the implicit-bias contrast.

Noise level: the lowest-noise run of a (task, regime) is the one with the largest batch and the smallest
learning rate; every other main run (not a noise-reduction branch) is a "noisy" run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from assets.sgd_noise.distance import equal_loss_distances, loss_levels

GROUP_KEYS = ["task", "regime"]


RUN_COLUMNS = ["run_key", "task", "regime", "batch_size", "learning_rate", "seed", "cut_step", "cut_lr_factor",
               "cut_batch_factor", "parent_run", "steps"]
CURVE_COLUMNS = ["run_key", "checkpoint", "step", "examples", "epochs", "eval_loss", "train_loss"]


def combined(synthetic_runs: pd.DataFrame, synthetic_curves: pd.DataFrame, lm_runs: pd.DataFrame,
             lm_curves: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) of both sweeps in one table each, on the columns they share."""
    return (pd.concat([synthetic_runs[RUN_COLUMNS], lm_runs[RUN_COLUMNS]], ignore_index=True),
            pd.concat([synthetic_curves[CURVE_COLUMNS], lm_curves[CURVE_COLUMNS]], ignore_index=True))


def main_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that are not noise-reduction branches."""
    return runs[runs["cut_step"] < 0]


def lowest_noise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, regime): the runs (one per seed) of the largest batch at the smallest learning rate."""
    out = []
    for _, cell in main_runs(runs).groupby(GROUP_KEYS):
        big = cell[cell["batch_size"] == cell["batch_size"].max()]
        out.append(big[big["learning_rate"] == big["learning_rate"].min()])
    return pd.concat(out, ignore_index=True) if out else runs.iloc[:0]


def distance_pairs(runs: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(kind, run_a, run_b) for one (task, regime): every noisy run against the lowest-noise run of the same
    seed (``noise_same_seed``) and of the next seed (``noise_cross_seed``), and the lowest-noise runs of
    consecutive seeds against each other (``seed``: the baseline a change of seed alone gives)."""
    golden = lowest_noise(runs).sort_values("seed")
    by_seed = dict(zip(golden["seed"], golden["run_key"], strict=True))
    seeds = sorted(by_seed)
    pairs = []
    for run in main_runs(runs).itertuples():
        if run.run_key in by_seed.values():
            continue
        if run.seed in by_seed:
            pairs.append(("noise_same_seed", run.run_key, by_seed[run.seed]))
        other = [s for s in seeds if s != run.seed]
        if other:
            pairs.append(("noise_cross_seed", run.run_key, by_seed[other[0]]))
    for a, b in zip(seeds, seeds[1:], strict=False):
        pairs.append(("seed", by_seed[a], by_seed[b]))
    return pairs


def functional_distances(runs: pd.DataFrame, curves: pd.DataFrame, predict: Callable[[str, int], np.ndarray],
                         n_levels: int) -> pd.DataFrame:
    """Equal-loss (and equal-step) TV distances for every (task, regime) of ``runs``."""
    parts = []
    for (task, regime), cell in runs.groupby(GROUP_KEYS):
        pairs = distance_pairs(cell)
        if not pairs:
            continue
        levels = loss_levels(curves, main_runs(cell)["run_key"], n_levels)
        table = equal_loss_distances(curves[curves["run_key"].isin(cell["run_key"])], pairs, predict, levels)
        parts.append(table.assign(task=task, regime=regime))
    if not parts:
        raise ValueError("no run pairs to compare: the sweep needs more than one noise level")
    out = pd.concat(parts, ignore_index=True)
    info = runs.set_index("run_key")[["batch_size", "learning_rate", "seed"]]
    out = out.join(info.add_suffix("_a"), on="run_a").join(info.add_suffix("_b"), on="run_b")
    return out[["task", "regime", "kind", "run_a", "run_b", "batch_size_a", "learning_rate_a", "seed_a",
                "batch_size_b", "learning_rate_b", "seed_b", "loss_level", "step_a", "step_b",
                "tv_equal_loss", "tv_equal_step"]]


def _half_iqr(values: pd.Series) -> float:
    return float(values.quantile(0.75) - values.quantile(0.25)) / 2


def distance_summary(distances: pd.DataFrame) -> pd.DataFrame:
    """Median distances per (task, regime, kind), and the ratio of each median to the seed baseline at equal
    loss (1: noise adds nothing a change of seed would not). ``spread_tv_equal_loss``: half the interquartile
    range of the distances over pairs and loss levels (for the ``seed`` kind: how much the distance between
    two functions that differ only by seed varies, the noise of the baseline)."""
    summary = distances.groupby(GROUP_KEYS + ["kind"]).agg(
        pairs=("run_a", "size"), median_tv_equal_loss=("tv_equal_loss", "median"),
        median_tv_equal_step=("tv_equal_step", "median"), max_tv_equal_loss=("tv_equal_loss", "max"),
        spread_tv_equal_loss=("tv_equal_loss", _half_iqr)).reset_index()
    seed = summary[summary["kind"] == "seed"].set_index(GROUP_KEYS)["median_tv_equal_loss"]
    summary["ratio_to_seed_baseline"] = [
        row.median_tv_equal_loss / seed.get((row.task, row.regime), np.nan) for row in summary.itertuples()]
    return summary


def mean_curves(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Held-out loss per (task, regime, batch, learning rate, step), averaged over seeds, main runs only."""
    cols = GROUP_KEYS + ["batch_size", "learning_rate"]
    merged = curves.merge(main_runs(runs)[["run_key", *cols, "seed"]], on="run_key")
    return merged.groupby(cols + ["step"]).agg(eval_loss=("eval_loss", "mean"), examples=("examples", "first"),
                                               seeds=("seed", "nunique")).reset_index()


def equal_step_comparison(curves: pd.DataFrame, runs: pd.DataFrame, tolerance: float = 0.002) -> pd.DataFrame:
    """At every logged step > 0: the seed-averaged held-out loss of each lower-noise setting against each
    higher-noise one that differs in one knob (a larger batch at the same learning rate: ``batch_size``; a
    smaller learning rate at the same batch: ``learning_rate``). ``tie``: the two losses are within
    ``tolerance`` (relative) of each other, e.g. early steps where neither run has moved: such a comparison
    decides nothing. ``less_noise_not_worse``: the lower-noise loss is at most (1 + tolerance) times the
    noisier one's (on a decided comparison: strictly lower)."""
    mean = mean_curves(curves, runs)
    mean = mean[mean["step"] > 0]
    rows = []
    for (task, regime), cell in mean.groupby(GROUP_KEYS):
        for knob, fixed in (("batch_size", "learning_rate"), ("learning_rate", "batch_size")):
            for value, sub in cell.groupby(fixed):
                levels = sorted(sub[knob].unique())
                for lo, hi in zip(levels, levels[1:], strict=False):
                    # less noise: the larger batch, or the smaller learning rate
                    quiet, noisy = (hi, lo) if knob == "batch_size" else (lo, hi)
                    a = sub[sub[knob] == quiet].set_index("step")["eval_loss"]
                    b = sub[sub[knob] == noisy].set_index("step")["eval_loss"]
                    steps = a.index.intersection(b.index)
                    for step in steps:
                        rows.append({"task": task, "regime": regime, "knob": knob, fixed: value,
                                     "quiet_value": quiet, "noisy_value": noisy, "step": int(step),
                                     "quiet_loss": float(a[step]), "noisy_loss": float(b[step]),
                                     "tie": bool(abs(a[step] - b[step]) <= tolerance * abs(b[step])),
                                     "less_noise_not_worse": bool(a[step] <= b[step] * (1 + tolerance))})
    cols = ["task", "regime", "knob", "batch_size", "learning_rate", "quiet_value", "noisy_value", "step",
            "quiet_loss", "noisy_loss", "tie", "less_noise_not_worse"]
    return pd.DataFrame(rows).reindex(columns=cols)


def noise_reduction(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Each branch against its parent: held-out loss at the first logged step after the cut (``soon``) and at
    the end; ``gain`` = parent loss - branch loss (> 0: cutting the noise helped)."""
    rows = []
    for branch in runs[runs["cut_step"] >= 0].itertuples():
        b = curves[curves["run_key"] == branch.run_key].set_index("step")["eval_loss"]
        p = curves[curves["run_key"] == branch.parent_run].set_index("step")["eval_loss"]
        after = [s for s in b.index.intersection(p.index) if s > branch.cut_step]
        if not after:
            continue
        soon, end = min(after), max(after)
        rows.append({"task": branch.task, "regime": branch.regime, "run_key": branch.run_key,
                     "parent_run": branch.parent_run, "seed": branch.seed, "cut_step": branch.cut_step,
                     "cut_lr_factor": branch.cut_lr_factor, "cut_batch_factor": branch.cut_batch_factor,
                     "loss_at_cut": float(p.get(branch.cut_step, np.nan)), "soon_step": int(soon),
                     "parent_soon": float(p[soon]), "branch_soon": float(b[soon]), "end_step": int(end),
                     "parent_end": float(p[end]), "branch_end": float(b[end])})
    out = pd.DataFrame(rows)
    if len(out):
        out["gain_soon"] = out["parent_soon"] - out["branch_soon"]
        out["gain_end"] = out["parent_end"] - out["branch_end"]
    return out


def implicit_bias(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per (task, regime, knob, value of the other knob): the best held-out loss over training (seed means)
    of the lowest- and the highest-noise setting along the knob (batch: largest vs smallest; learning rate:
    smallest vs largest) and their final losses. ``noise_advantage`` = quiet best - noisy best (> 0: the
    noisier setting reached a better held-out loss, the implicit-bias advantage)."""
    mean = mean_curves(curves, runs)
    rows = []
    for (task, regime), cell in mean.groupby(GROUP_KEYS):
        last = cell[cell["step"] == cell["step"].max()].set_index(["batch_size", "learning_rate"])["eval_loss"]
        best = cell.groupby(["batch_size", "learning_rate"])["eval_loss"].min()
        for knob, fixed in (("batch_size", "learning_rate"), ("learning_rate", "batch_size")):
            for value, sub in cell.groupby(fixed):
                levels = sorted(sub[knob].unique())
                if len(levels) < 2:
                    continue
                quiet, noisy = (levels[-1], levels[0]) if knob == "batch_size" else (levels[0], levels[-1])
                key = (lambda v, w=value: (v, w)) if knob == "batch_size" else (lambda v, w=value: (w, v))
                rows.append({"task": task, "regime": regime, "knob": knob, "fixed_value": float(value),
                             "quiet_value": float(quiet), "noisy_value": float(noisy),
                             "quiet_best": float(best[key(quiet)]), "noisy_best": float(best[key(noisy)]),
                             "quiet_final": float(last[key(quiet)]), "noisy_final": float(last[key(noisy)])})
    out = pd.DataFrame(rows)
    if len(out):
        out["noise_advantage"] = out["quiet_best"] - out["noisy_best"]
        out["noise_advantage_final"] = out["quiet_final"] - out["noisy_final"]
    return out
