"""The study's headline results as `assets.findings.Finding`s: each rule is stated here, before the numbers.

Rules (fixed in code, not tuned to the numbers; ``Rule`` / ``Condition`` of the findings contract):
- abrupt transition: the share of t_c between leaving chance and 100% accuracy, at most 25% (partially at
  most 50%); the paper's claim is qualitative (no reference value). Leaving chance is the trainer's
  averaged-accuracy step corrected for the average's lag (9 steps): uncorrected it shortens the share.
- hidden progress: the share of converged runs, at the largest k of each architecture, whose progress measure
  rises significantly through a plateau, at least 50% (partially 25%); qualitative (no reference value). A
  plateau: the logged steps before accuracy first leaves chance ± 0.05 (t_move), none below it, lasting at
  least half of t_c; a run without one (or with too few logged steps in it) counts as not rising.
- t_c ~ n^(alpha k): the exponent of median t_c in n per k is descriptive (the paper states no exponent, so
  there is nothing to compare it with). The ratio of the exponents at the largest and smallest k is judged
  against k_hi / k_lo, the value one alpha in n^(alpha k) implies (``paper (derived)``): within a factor
  1.25, partially 1.5 (for k=3 / k=2 the partial band's lower edge, 1.0, is "the exponent does not grow");
  and only when every fit is polynomial (r^2 >= 0.9, partially >= 0.8) and, with more than two k, the
  exponent grows at every step in k.
- finite sample: median steps to 99% test accuracy against a public replication's 832 steps (`ANCHOR_SOURCE`:
  the Sutro Group's one run, not the paper), within a factor 1.5 (partially 3), only in the anchor's setting
  (n=20, k=3, width 1000, 500 samples); elsewhere the row is descriptive. A censored median (half the runs or
  more never reached the target) leaves ours a lower bound, the steps trained: "not reproduced" when that bound
  is already beyond the partial factor (more than 3 x 832 steps), else the verdict is withheld.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from assets.findings import Condition, Finding, Rule

STUDY = "parity"
PROGRESS_MEASURE = "relevant_change_ratio"  # weight change on S vs off S since initialisation
# check name -> what it claims (each check reads one finding: `build_findings`)
CHECKS = {
    "transition_is_abrupt": "The loss stays near chance for most of the run and falls within a small fraction of it.",
    "progress_precedes_accuracy": "The hidden-progress measure rises during the plateau, before accuracy moves.",
    "tc_exponent_grows_with_k": "t_c grows polynomially in n with an exponent proportional to k (n^(alpha k)).",
    "finite_sample_matches_anchor": "With 500 samples and weight decay, 99% test accuracy in about 832 steps "
                                    "(a public replication's number, the Sutro Group's, not the paper's).",
}
ANCHOR_STEPS = 832  # public replication (not the paper): n=20, k=3, width-1000 MLP, 500 samples, wd 0.01 -> 99%
ANCHOR_SOURCE = ("Sutro Group, github.com/cybertronai/SutroYaro findings/exp1_fix_hyperparams.md (3 Mar 2026, "
                 "commit c463ea1): one run, 99.0% of 200 test samples at epoch 52 = 832 SGD steps (16 batches of "
                 "32 per epoch; lr 0.1, weight decay 0.01; its loss not stated there)")
ANCHOR_SETTING = (20, 3, 1000, 500)  # n, k, width, training-set size
ABRUPT = Rule.at_most(0.25, partial=0.5)  # "falls within a small fraction of the steps"
RISING = Rule.at_least(0.5, partial=0.25)  # share of runs whose progress measure rises in the plateau
SIGNIFICANCE = 0.05
REVIEWED = "rule made stricter after review (30 Nov 2026), not tuned to pass"
EXPONENT_RATIO = Rule.within_factor(1.25, partial=1.5)
POLYNOMIAL = Rule.at_least(0.9, partial=0.8)  # r^2 of the log-log fit
RATIO_POST_HOC = ("ratio tolerance (factor 1.25, partially 1.5) and r^2 partial bar 0.8 set in issue 16, when the "
                  "demo's earlier ratio (1.93 for k=3 / k=2) was on record")
ANCHOR = Rule.within_factor(1.5, partial=3.0)
ANCHOR_POST_HOC = ("tolerance factor 1.5 (partially 3) set in issue 16 after the demo's 1,600 steps were known; "
                   "the earlier rule (factor 2, partially 4) called 1,600 vs 832 reproduced")


def headline_runs(runs: pd.DataFrame, sweep: str, arch: str = "mlp") -> pd.DataFrame:
    """The online runs of the headline sweep (the first in the config) and architecture."""
    selected = runs[(runs["sweep"] == sweep) & (runs["arch"] == arch) & runs["train_set_size"].isna()]
    if selected.empty:
        raise ValueError(f"no online {arch!r} runs in sweep {sweep!r}: the findings need that sweep in the grid")
    return selected


def transition_finding(runs: pd.DataFrame, summary: pd.DataFrame, scale: str) -> Finding:
    """Abruptness: the share of t_c between leaving chance and 100% accuracy, at the largest k and n run."""
    from scipy import stats

    k, n = int(runs["k"].max()), int(runs.loc[runs["k"] == runs["k"].max(), "n"].max())
    cell = summary[(summary["k"] == k)].sort_values("n")
    at = cell[cell["n"] == n]
    share = float(at["median_transition_share"].median())
    uncorrected = (float(at["median_transition_share_uncorrected"].median())
                   if "median_transition_share_uncorrected" in at else math.nan)
    trend = stats.spearmanr(cell["n"], cell["median_transition_share"]) if len(cell) >= 3 else None
    shrinking = trend is not None and trend.statistic < 0
    shares = ", ".join(f"n={int(r.n)}: {r.median_transition_share:.2f}" for r in cell.itertuples())
    median_tc = float(at["median_t_c"].median())
    note = (f"Rule: {ABRUPT.describe()}. k={k}, n={n}: median t_c={median_tc:.0f} steps; the accuracy leaves "
            f"chance at {1 - share:.0%} of t_c and reaches 100% in the remaining {share:.0%}. Transition share by "
            f"n at k={k}: {shares}"
            + (f" (Spearman vs n {trend.statistic:+.2f}: {'shrinks' if shrinking else 'does not shrink'} as n grows)."
               if trend is not None else ".")
            + f" Leaving chance: the last step the batch accuracy's exponential average (time constant ~10 steps) "
            f"was below 0.6, minus the average's lag of 9 steps; without the correction the share is "
            f"{uncorrected:.4f}. Margin to the bar {ABRUPT.bar:g}: {ABRUPT.bar - share:+.4f}."
            + " Paper: loss near chance for most of training, then a sharp drop (n=50, k=3: a qualitative claim).")
    return Finding(STUDY, f"transition share of t_c (k={k}, n={n})", share, rule=ABRUPT, scale=scale,
                   post_hoc=REVIEWED, note=note)


def hidden_progress_finding(progress: pd.DataFrame, scale: str, label: str) -> Finding:
    """Share of runs whose progress measure rises significantly through a plateau (one-sided Spearman); runs
    without a testable plateau count as not rising."""
    from assets.parity.analysis import ACCURACY_MOVES, CHANCE, PLATEAU_BAND, PLATEAU_SHARE  # imports torch

    measure = progress["measure"].iloc[0] if len(progress) else "measure"
    metric = f"runs with rising {measure} in the plateau ({label})"
    if progress.empty:
        return Finding(STUDY, metric, math.nan, rule=RISING, scale=scale, post_hoc=REVIEWED,
                       note="no converged run to test")
    testable = progress["testable"].astype(bool)
    tested = progress[testable]
    rising = testable & (progress["p_value"] < SIGNIFICANCE)
    share = float(rising.mean())
    no_plateau = int((~progress["plateau"].astype(bool)).sum())
    note = (f"Rule: {RISING.describe()} (share of all converged runs with a one-sided Spearman p < {SIGNIFICANCE} "
            f"over a plateau; a run without a testable plateau counts as not rising). A plateau: the logged steps "
            f"from 10% of t_move to t_move (the first step with evaluation accuracy above {ACCURACY_MOVES:g}), no "
            f"accuracy in it below {CHANCE - PLATEAU_BAND:g}, and t_move >= {PLATEAU_SHARE} t_c. {len(progress)} "
            f"converged runs: {no_plateau} without a plateau (median t_move / t_c "
            f"{progress['plateau_share'].median():.2f}), {len(progress) - no_plateau - len(tested)} with fewer than "
            f"4 logged steps in it, {len(tested)} tested; {measure} rises in {int(rising.sum())} ({share:.0%} of all)"
            + (f"; over the tested, median rho {tested['spearman_rho'].median():.2f}, median rise "
               f"x{tested['rise'].median():.2f}, median share of its rise up to t_c made before accuracy moved "
               f"{tested['share_before_move'].median():.2f}" if len(tested) else "")
            + ". Paper: hidden progress measures grow steadily while loss and accuracy stay flat.")
    return Finding(STUDY, metric, share, rule=RISING, scale=scale, post_hoc=REVIEWED, note=note)


def _fit_text(r) -> str:
    return (f"k={r.k}: median t_c = {r.prefactor:.3g} n^{r.exponent:.2f} (± {r.exponent_stderr:.2f}), r^2 "
            f"{r.r_squared:.3f} over n={r.n_values} (medians {r.median_t_c_values}), alpha {r.alpha:.2f}")


def scaling_findings(fit: pd.DataFrame, scale: str, label: str = "mlp", per_k: bool = True) -> list[Finding]:
    """Exponent of median t_c in n per k (``per_k``, descriptive), and the ratio of the exponents at the
    largest and smallest k against the k_hi / k_lo that n^(alpha k) implies."""
    fit = fit.sort_values("k")
    if fit.empty:
        return [Finding(STUDY, f"t_c exponent in n ({label})", math.nan, scale=scale,
                        note="fewer than three values of n converged for every k: no fit")]
    found = [Finding(STUDY, f"t_c exponent in n ({label}, k={row.k})", row.exponent, scale=scale,
                     note=f"Descriptive: the paper states no exponent to compare with (t_c <= c n^(alpha k)). "
                          f"{_fit_text(row)}; alpha = exponent / k.")
             for row in (fit.itertuples() if per_k else ())]
    if len(fit) < 2:
        return found
    lo, hi = fit.iloc[0], fit.iloc[-1]
    implied = float(hi.k / lo.k)
    ratio = float(hi.exponent / lo.exponent) if lo.exponent > 0 else math.nan
    conditions = [Condition("min r^2 of the fits", float(fit["r_squared"].min()), POLYNOMIAL)]
    steps = np.diff(fit["exponent"].to_numpy())
    if len(fit) > 2:
        conditions.append(Condition("exponent steps up at every k (1 = yes)", float(bool((steps > 0).all())),
                                    Rule.at_least(1.0)))
    describe = "; ".join(_fit_text(r) for r in fit.itertuples())
    note = (f"Rule: {EXPONENT_RATIO.describe()}, the reference being k_hi / k_lo = {implied:.2f} (t_c ~ n^(alpha k) "
            f"with one alpha); and every fit r^2 {POLYNOMIAL.describe().removeprefix('ours ')}"
            + ("; and the exponent grows at every step in k" if len(fit) > 2 else "") + f". {describe}."
            + ("" if lo.exponent > 0 else f" The k={lo.k} exponent is not positive (t_c does not grow with n): "
               "no ratio."))
    found.append(Finding(STUDY, f"exponent ratio k={hi.k} / k={lo.k} ({label})", ratio, reference=implied,
                         source="paper (derived)", rule=EXPONENT_RATIO, conditions=conditions, scale=scale,
                         post_hoc=RATIO_POST_HOC, note=note))
    return found


def finite_sample_finding(summary: pd.DataFrame, scale: str) -> Finding:
    """Steps to 99% test accuracy with a fixed training set and weight decay, against the public anchor."""
    metric = "finite-sample steps to 99% test accuracy"
    decayed = summary[summary["weight_decay"] > 0].sort_values("weight_decay")
    if decayed.empty:
        return Finding(STUDY, metric, math.nan, scale=scale,
                       note="no finite-sample run with weight decay in the config")
    row = decayed.iloc[0]
    median = float(row["median_t_c"])
    censored = not math.isfinite(median)
    # a censored median (half the runs or more never reached the target): the steps trained are a lower bound,
    # which decides the rule only when it is already beyond the partial factor ("not reproduced")
    ours = float(row["max_steps_trained"]) if censored else median
    beyond = ours > ANCHOR_STEPS * ANCHOR.partial
    reached = Condition("share of runs reaching 99% test accuracy", float(row["generalized"] / row["runs"]),
                        Rule.at_least(0.5), withholds=censored and not beyond)
    controls = summary[summary["weight_decay"] == 0]
    control = ("; without weight decay " + ", ".join(
        f"{int(c.generalized)}/{int(c.runs)} runs reached the target in {int(c.max_steps_trained)} steps "
        f"(median final test accuracy {c.median_final_eval_accuracy:.3f})" for c in controls.itertuples())
        if len(controls) else "")
    same_setting = (int(row["n"]), int(row["k"]), int(row["width"]), int(row["train_set_size"])) == ANCHOR_SETTING
    rule_text = (f"Rule: {ANCHOR.describe()} (about {ANCHOR_STEPS} steps, a public replication, not the paper: "
                 f"{ANCHOR_SOURCE}), and at least half the runs reach the target; a censored median (half the runs "
                 "or more never reached it) leaves ours the steps trained, a lower bound: not reproduced when it "
                 f"is beyond the partial factor (> {ANCHOR_STEPS * ANCHOR.partial:g} steps), else the verdict is "
                 "withheld; only in the anchor's setting (n=20, k=3, width 1000, 500 samples)"
                 + ("" if same_setting else ": not this setting, so descriptive") + ". ")
    bound = ("already beyond the partial factor" if beyond else "which cannot decide the rule: verdict withheld")
    note = (rule_text + f"n={int(row['n'])}, k={int(row['k'])}, width {int(row['width'])}, "
            f"{int(row['train_set_size'])} samples, weight decay {row['weight_decay']:g}, {row['loss']} loss: "
            f"memorised the training set at a median {row['median_memorized_step']:.0f} steps, 99% test accuracy "
            + (f"not reached by the median run in {ours:.0f} steps (a lower bound, {bound})" if censored
               else f"at {median:.0f}")
            + f" ({int(row['generalized'])}/{int(row['runs'])} runs){control}."
            + (" A censored median inside the partial factor is withheld since the review of 30 Nov 2026 (before, "
               "such a lower bound could read as a pass)." if censored else ""))
    return Finding(STUDY, metric, ours, reference=float(ANCHOR_STEPS), source="public replication",
                   rule=ANCHOR if same_setting else None, conditions=[reached] if same_setting else (),
                   scale=scale, post_hoc=ANCHOR_POST_HOC if same_setting else "", note=note)


def at_largest_k(progress: pd.DataFrame, arch: str) -> tuple[pd.DataFrame, int]:
    """The progress rows of ``arch`` for `PROGRESS_MEASURE` at its largest k (as the MLP's finding: at small k
    there is little plateau to test), and that k (0 when the architecture did not run)."""
    rows = progress[(progress["measure"] == PROGRESS_MEASURE) & (progress["arch"] == arch)]
    if rows.empty:
        return rows, 0
    k = int(rows["k"].max())
    return rows[rows["k"] == k], k


def scale_note(runs: pd.DataFrame, profile: str) -> str:
    """The scale a finding states: runs, n, k, widths, seeds, the longest run, the t_c criterion and the device
    (so a rerun with other seeds or another step cap reads differently where its verdict may differ)."""
    seeds = sorted(runs["seed"].unique().tolist())
    return (f"{profile} profile: {len(runs)} runs, n in {sorted(runs['n'].unique().tolist())}, "
            f"k in {sorted(runs['k'].unique().tolist())}, width {sorted(runs['width'].unique().tolist())}, "
            f"seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}), at most {int(runs['steps_trained'].max()):,} steps, "
            f"t_c at {runs['accuracy_target'].iloc[0]:.0%} of {int(runs['eval_size'].iloc[0])} fresh samples, "
            f"device {runs['device'].iloc[0]}")


def build_findings(runs: pd.DataFrame, convergence: pd.DataFrame, scaling: pd.DataFrame, progress: pd.DataFrame,
                   finite: pd.DataFrame, profile: str) -> tuple[list[Finding], dict[str, str]]:
    """(findings, check name -> the metric it reads): the headline sweep's (the first in the config) MLP runs
    give the transition, hidden-progress and exponent findings; the polynet's are added where it ran; then
    the finite-sample row."""
    from assets.parity.analysis import finite_sample_summary

    headline = str(runs["sweep"].iloc[0])  # runs keep the config's order: the first sweep is the headline
    head = headline_runs(runs, headline)
    scale = scale_note(head, profile)
    summary = convergence[(convergence["sweep"] == headline) & (convergence["arch"] == "mlp")]
    k = int(head["k"].max())
    transition = transition_finding(head, summary, scale)
    mlp_progress = progress[(progress["measure"] == PROGRESS_MEASURE) & progress["run_key"].isin(head["run_key"])
                            & (progress["k"] == k)]
    rising = hidden_progress_finding(mlp_progress, scale, f"mlp, k={k}")
    found = [transition, rising]
    poly, k_poly = at_largest_k(progress, "polynet")
    if len(poly):
        found.append(hidden_progress_finding(poly, scale_note(runs[runs["arch"] == "polynet"], profile),
                                             f"polynet, k={k_poly}"))
    fit = scaling[(scaling["arch"] == "mlp") & scaling["width"].isin(head["width"].unique())
                  & (scaling["loss"] == head["loss"].iloc[0]) & (scaling["init"] == head["init"].iloc[0])]
    exponents = scaling_findings(fit, scale)
    found += exponents
    poly_fit = scaling[scaling["arch"] == "polynet"]
    if len(poly_fit):
        found += scaling_findings(poly_fit, scale_note(runs[runs["arch"] == "polynet"], profile), "polynet",
                                  per_k=False)
    finite_row = finite_sample_finding(finite_sample_summary(finite), scale_note(finite, profile))
    found.append(finite_row)
    # the headline architecture's ratio row, else its first exponent row
    scaling_row = next((f for f in exponents if f.metric.startswith("exponent ratio")), exponents[0])
    return found, {"transition_is_abrupt": transition.metric, "progress_precedes_accuracy": rising.metric,
                   "tc_exponent_grows_with_k": scaling_row.metric, "finite_sample_matches_anchor": finite_row.metric}
