"""From runs and curves to the paper's quantities: median t_c (censoring-aware), the abruptness of the
transition, hidden progress before accuracy moves, and the scaling fit of t_c against n per k."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from assets.parity.sweep import GROUP_COLUMNS

SCALING_KEYS = tuple(c for c in GROUP_COLUMNS if c != "n")
FIT_SHOWN = ("arch", "k", "width", "loss", "init", "points", "exponent", "exponent_stderr", "r_squared", "alpha")
CHANCE = 0.5
PLATEAU_BAND = 0.05  # a plateau: every logged evaluation accuracy in the window within CHANCE ± this
ACCURACY_MOVES = CHANCE + PLATEAU_BAND  # logged evaluation accuracy above this: "accuracy has moved" off chance
PLATEAU_SHARE = 0.5  # a plateau: accuracy stays at chance for at least this share of t_c (t_move >= share * t_c)


def censored_quantile(t_c: np.ndarray, censored: np.ndarray, q: float) -> float:
    """Quantile of t_c with censored runs counted as +inf (they converge later than max_steps, if ever);
    NaN when the quantile falls among the censored runs."""
    values = np.sort(np.where(np.asarray(censored, dtype=bool), np.inf, np.asarray(t_c, dtype=float)))
    if not len(values):
        return float("nan")
    position = q * (len(values) - 1)  # numpy's default (linear) quantile, written out for the infinities
    lo, hi = int(np.floor(position)), int(np.ceil(position))
    if lo == hi:
        value = values[lo]
    else:
        value = values[lo] + (values[hi] - values[lo]) * (position - lo)
    return float(value) if np.isfinite(value) else float("nan")


def leave_chance_step(runs: pd.DataFrame, lag: float | None = None) -> pd.Series:
    """Per run: the step the model left chance, the trainer's ``leave_chance_step`` corrected for the lag of
    the accuracy average it comes from (an exponential average with weight a lags a steady rise by
    (1 - a) / a steps: 9 steps for a = 0.1), clipped at 0."""
    if lag is None:
        from assets.parity.trainer import CHANCE_EMA

        lag = (1 - CHANCE_EMA) / CHANCE_EMA
    return (runs["leave_chance_step"] - lag).clip(lower=0)


def transition_share(runs: pd.DataFrame, lag: float | None = None) -> pd.Series:
    """Per converged run: the share of t_c spent between leaving chance (lag-corrected: `leave_chance_step`)
    and reaching 100% accuracy."""
    share = (runs["t_c"] - leave_chance_step(runs, lag)) / runs["t_c"]
    return share.where(runs["converged"].astype(bool))


def convergence_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per group of runs (every setting but the seed): counts, censoring, t_c quantiles, transition."""
    runs = runs.assign(transition_share=transition_share(runs), uncorrected_share=transition_share(runs, lag=0))
    rows = []
    keys = ["sweep", *GROUP_COLUMNS]
    for values, group in runs.groupby(keys, dropna=False, sort=True):
        t_c, censored = group["t_c"].to_numpy(), group["censored"].to_numpy()
        rows.append({**dict(zip(keys, values, strict=True)), "runs": len(group),
                     "converged": int(group["converged"].sum()), "censored_share": float(censored.mean()),
                     "median_t_c": censored_quantile(t_c, censored, 0.5),
                     "q25_t_c": censored_quantile(t_c, censored, 0.25),
                     "q75_t_c": censored_quantile(t_c, censored, 0.75),
                     "max_steps_trained": int(group["steps_trained"].max()),
                     "median_transition_share": float(group["transition_share"].median()),
                     "median_transition_share_uncorrected": float(group["uncorrected_share"].median()),
                     "group_seconds": float(group["group_seconds"].iloc[0])})
    summary = pd.DataFrame(rows)
    summary["train_set_size"] = pd.array(summary["train_set_size"], dtype="Int64")
    return summary


def scaling_fit(summary: pd.DataFrame, min_points: int = 3) -> pd.DataFrame:
    """Fit log(median t_c) = log(c) + exponent * log(n) for each online setting with at least ``min_points``
    values of n whose median converged. ``alpha = exponent / k`` is the paper's t_c <= c n^(alpha k)."""
    online = summary[summary["train_set_size"].isna()]
    rows = []
    for values, group in online.groupby(list(SCALING_KEYS), dropna=False, sort=True):
        points = group.dropna(subset=["median_t_c"]).groupby("n")["median_t_c"].median()
        if len(points) < min_points:
            continue
        fit = stats.linregress(np.log(points.index.to_numpy(float)), np.log(points.to_numpy(float)))
        setting = dict(zip(SCALING_KEYS, values, strict=True))
        rows.append({**setting, "points": len(points), "n_min": int(points.index.min()),
                     "n_max": int(points.index.max()), "exponent": float(fit.slope),
                     "exponent_stderr": float(fit.stderr), "prefactor": float(np.exp(fit.intercept)),
                     "r_squared": float(fit.rvalue**2), "alpha": float(fit.slope / setting["k"]),
                     "n_values": ",".join(str(int(n)) for n in points.index),
                     "median_t_c_values": ",".join(f"{v:g}" for v in points.to_numpy())})
    columns = [*SCALING_KEYS, "points", "n_min", "n_max", "exponent", "exponent_stderr", "prefactor",
               "r_squared", "alpha", "n_values", "median_t_c_values"]
    table = pd.DataFrame(rows, columns=columns)
    table["train_set_size"] = pd.array(table["train_set_size"], dtype="Int64")
    return table


def hidden_progress(curves: pd.DataFrame, runs: pd.DataFrame, measures: Sequence[str] = ("relevant_change_ratio",),
                    start_fraction: float = 0.1, min_points: int = 4) -> pd.DataFrame:
    """Does each measure rise during the plateau, before accuracy moves? Per converged online run and measure:

    - ``t_move``: the first logged step with evaluation accuracy above chance + ``PLATEAU_BAND`` (0.55);
    - the plateau window: logged steps in [start_fraction * t_move, t_move) (the first steps are skipped:
      ratios of tiny weight changes are noise there);
    - ``plateau``: the window is a plateau: every logged accuracy in it within chance ± ``PLATEAU_BAND`` and
      t_move at least ``PLATEAU_SHARE`` of t_c (``plateau_share`` = t_move / t_c); ``testable``: a plateau
      with at least ``min_points`` logged steps and a finite measure (only those get a trend test: a run
      without one shows no hidden progress, it is not dropped);
    - ``spearman_rho`` and its one-sided ``p_value`` for a rising trend of the measure over that window;
    - ``rise``: the measure at the window's end over its value at the window's start;
    - ``share_before_move``: the share of the measure's rise from the window's start to t_c that happened
      before accuracy moved.
    """
    missing = [m for m in measures if m not in curves.columns]
    if missing:
        raise ValueError(f"measures {missing} are not columns of the curves; expected some of {list(curves.columns)}")
    converged = runs[runs["converged"].astype(bool) & runs["train_set_size"].isna()].set_index("run_key")
    curves = curves[curves["run_key"].isin(converged.index)].sort_values(["run_key", "step"], kind="stable")
    keys = curves["run_key"].to_numpy()
    steps, accuracy = curves["step"].to_numpy(float), curves["eval_accuracy"].to_numpy(float)
    values = {m: curves[m].to_numpy(float) for m in measures}
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    rows = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        key, step, acc = keys[lo], steps[lo:hi], accuracy[lo:hi]
        moved = np.flatnonzero(acc > ACCURACY_MOVES)
        if not len(moved):
            continue
        t_move, t_c = step[moved[0]], float(converged.at[key, "t_c"])
        window = (step >= start_fraction * t_move) & (step < t_move)
        end_index = np.flatnonzero(step >= t_c)
        flat = bool(window.any() and np.all(np.abs(acc[window] - CHANCE) <= PLATEAU_BAND))
        is_plateau = flat and t_move >= PLATEAU_SHARE * t_c
        for measure in measures:
            series = values[measure][lo:hi]
            plateau = series[window]
            testable = is_plateau and len(plateau) >= min_points and bool(np.all(np.isfinite(plateau)))
            row = {"run_key": key, "measure": measure, "t_move": int(t_move), "t_c": t_c,
                   "plateau_points": int(window.sum()), "plateau_share": float(t_move / t_c),
                   "plateau": is_plateau, "testable": testable, "spearman_rho": np.nan, "p_value": np.nan,
                   "rise": np.nan, "share_before_move": np.nan}
            if testable:
                test = stats.spearmanr(step[window], plateau, alternative="greater")
                end = series[end_index[0]] if len(end_index) else series[-1]
                total = end - plateau[0]
                row |= {"spearman_rho": float(test.statistic), "p_value": float(test.pvalue),
                        "rise": float(plateau[-1] / plateau[0]),
                        "share_before_move": float((plateau[-1] - plateau[0]) / total) if total else np.nan}
            rows.append(row)
    table = pd.DataFrame(rows, columns=["run_key", "measure", "t_move", "t_c", "plateau_points", "plateau_share",
                                        "plateau", "testable", "spearman_rho", "p_value", "rise",
                                        "share_before_move"])
    return table.join(converged[["arch", "n", "k", "width"]], on="run_key")


def finite_sample_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per finite-sample setting: steps to memorise the training set, steps to the test-accuracy target
    (censoring-aware medians), and the gap between them (the grokking-like delay)."""
    finite = runs[runs["train_set_size"].notna()]
    rows = []
    for values, group in finite.groupby(list(GROUP_COLUMNS), dropna=False, sort=True):
        memorized = group["memorized_step"].to_numpy(float)
        t_c, censored = group["t_c"].to_numpy(), group["censored"].to_numpy()
        median_tc = censored_quantile(t_c, censored, 0.5)
        median_mem = censored_quantile(memorized, np.isnan(memorized), 0.5)
        rows.append({**dict(zip(GROUP_COLUMNS, values, strict=True)), "runs": len(group),
                     "generalized": int(group["converged"].sum()),
                     "median_memorized_step": median_mem, "median_t_c": median_tc,
                     "median_final_eval_accuracy": float(group["final_eval_accuracy"].median()),
                     "max_steps_trained": int(group["steps_trained"].max())})
    table = pd.DataFrame(rows)
    if len(table):
        table["train_set_size"] = pd.array(table["train_set_size"], dtype="Int64")
    return table


def largest_setting(runs: pd.DataFrame) -> tuple[int, int]:
    """(k, n): the largest k run, and the largest n run at that k."""
    k = int(runs["k"].max())
    return k, int(runs.loc[runs["k"] == k, "n"].max())


def n50_timing(runs: pd.DataFrame) -> dict[str, float]:
    """Wall seconds of the n=50, k=3 groups and their run count (the GPU profile's cost marker); {} without them."""
    cell = runs[(runs["n"] == 50) & (runs["k"] == 3)]
    seconds = cell.groupby(list(GROUP_COLUMNS), dropna=False)["group_seconds"].first()
    return {"n50_k3_wall_seconds": round(float(seconds.sum()), 1), "n50_k3_runs": len(cell)} if len(seconds) else {}


def progress_by_measure(table: pd.DataFrame, significance: float = 0.05) -> pd.DataFrame:
    """Per (measure, arch, k) of `hidden_progress`'s table: the share of runs with a plateau (``testable``)
    and the share rising through it (p < ``significance``; a run without a plateau is not rising), means; and
    medians of Spearman's rho, the rise and the share of it before accuracy moved over the testable runs."""
    table = table.assign(rising=table["testable"].astype(bool) & (table["p_value"] < significance),
                         testable=table["testable"].astype(bool))
    keys = ["measure", "arch", "k"]
    shares = table.groupby(keys)[["testable", "rising"]].mean()
    medians = table[table["testable"]].groupby(keys)[["spearman_rho", "rise", "share_before_move"]].median()
    return shares.join(medians).reset_index()
