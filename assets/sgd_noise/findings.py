"""The paper's claims next to our numbers as `assets.findings.Finding`s, each rule stated here before the numbers.

Claims (Vyas, Morwani, Zhao, Kaplun, Kakade & Barak 2023): online, (1) at equal loss, runs with different
noise levels are close in function space; (2) less noise never gives a worse loss at equal steps, and
cutting the noise mid-run lowers the loss at once; offline, (3) the implicit-bias advantage of noise (a
better held-out loss with a smaller batch or a larger learning rate) appears, unlike online. The paper states
these qualitatively: no row has a reference value (source "none"); each is judged against a stated bar.

Rules (``Rule`` / ``Condition`` of the findings contract, fixed in code, not tuned to the numbers):
- equal loss: the online TV distance between a noisy run and the lowest-noise run of another seed, over the
  distance between two seeds of the lowest-noise run, at most 1.25; partially at most the same ratio offline
  (the paper's contrast) when that is looser.
- never worse: the share of equal-step comparisons where the larger batch is not worse, at least 95%
  (partially 75%).
- noise cut: the mean held-out loss gain soon after the cut at least 0 (the loss is not higher); and the cut
  helped soon after in every seed (partially in half); and it was still ahead at the end in at least half the
  seeds (else at most partially).
- implicit bias: the mean offline advantage of the smallest over the largest batch at least 0; and online the
  same advantage at most 0.
"""

from __future__ import annotations

import math

import pandas as pd

from assets.findings import Condition, Finding, Rule

STUDY = "sgd_noise"
CLOSE_RATIO = 1.25  # noisy-vs-lowest-noise distance at most this multiple of the seed-to-seed distance
NEVER_WORSE = Rule.at_least(0.95, partial=0.75)  # "never": share of equal-step comparisons
CUT_GAIN = Rule.at_least(0.0)
CUT_EVERY_SEED = Rule.at_least(1.0, partial=0.5)
CUT_LASTS = Rule.at_least(0.5, partial=0.0)  # ahead at the end in most seeds, else at most "partially"
OFFLINE_HELPS = Rule.at_least(0.0)
ONLINE_DOES_NOT = Rule.at_most(0.0)
# check name -> what it claims; each check reads the synthetic task's finding
CHECKS = {
    "online_close_at_equal_loss": "Online, at equal loss, runs with different noise are close in function space.",
    "online_less_noise_not_worse": "Online, less noise never gives a worse loss at equal steps.",
    "online_noise_cut_helps": "Online, cutting the noise mid-training lowers the loss at once.",
    "offline_noise_helps": "Offline, noise gives a better held-out loss (implicit bias), unlike online.",
}


def _ratio(summary: pd.DataFrame, task: str, regime: str) -> tuple[float, float, float]:
    cell = summary[(summary["task"] == task) & (summary["regime"] == regime)].set_index("kind")
    get = lambda kind, col: float(cell.loc[kind, col]) if kind in cell.index else math.nan  # noqa: E731
    return (get("noise_cross_seed", "ratio_to_seed_baseline"), get("noise_cross_seed", "median_tv_equal_loss"),
            get("noise_cross_seed", "median_tv_equal_step"))


def equal_loss_finding(summary: pd.DataFrame, task: str, scale: str) -> Finding:
    """Online, noisy runs vs the lowest-noise run (another seed) at equal loss, over the seed baseline."""
    online, tv, tv_step = _ratio(summary, task, "online")
    offline, tv_off, _ = _ratio(summary, task, "offline")
    same_rows = summary[(summary["task"] == task) & (summary["regime"] == "online")
                        & (summary["kind"] == "noise_same_seed")]
    same, same_step = same_rows["median_tv_equal_loss"], same_rows["median_tv_equal_step"]
    seed = summary[(summary["task"] == task) & (summary["regime"] == "online")
                   & (summary["kind"] == "seed")]["median_tv_equal_loss"]
    # partially: closer online than offline, the paper's contrast (a bar from the offline runs, stated here)
    rule = Rule.at_most(CLOSE_RATIO, partial=offline if math.isfinite(offline) and offline > CLOSE_RATIO else None)
    note = (f"Rule: {rule.describe()}; the partial bar is the offline ratio (the paper's contrast), when above "
            f"{CLOSE_RATIO}. "
            f"{task}, online: median TV distance at equal held-out loss between a noisy run and the lowest-noise "
            f"run of another seed {tv:.4f} vs {float(seed.median()) if len(seed) else math.nan:.4f} between "
            f"lowest-noise runs of two seeds (ratio {online:.2f}; offline {offline:.2f}). Same seed (shared init and "
            "data): "
            f"{float(same.median()) if len(same) else math.nan:.4f} at equal loss vs "
            f"{float(same_step.median()) if len(same_step) else math.nan:.4f} at equal steps. At equal steps instead of equal loss the "
            f"cross-seed distance is {tv_step:.4f}; offline at equal loss {tv_off:.4f}. Paper: models trained "
            "with different noise are close in function space at equal loss (they follow one 'golden path').")
    return Finding(STUDY, f"{task}: online TV at equal loss, noisy / seed baseline", online, rule=rule, scale=scale,
                   note=note)


def never_worse_finding(comparisons: pd.DataFrame, task: str, scale: str) -> Finding:
    """Online, a larger batch at the same learning rate never has a worse loss at equal steps."""
    cell = comparisons[(comparisons["task"] == task) & (comparisons["regime"] == "online")
                       & (comparisons["knob"] == "batch_size")]
    lr_cell = comparisons[(comparisons["task"] == task) & (comparisons["regime"] == "online")
                          & (comparisons["knob"] == "learning_rate")]
    metric = f"{task}: online, larger batch not worse at equal steps (share)"
    if cell.empty:
        return Finding(STUDY, metric, math.nan, rule=NEVER_WORSE, scale=scale, note="the sweep has a single batch size")
    share = float(cell["less_noise_not_worse"].mean())
    worst = cell.assign(excess=cell["quiet_loss"] - cell["noisy_loss"]).sort_values("excess").iloc[-1]
    note = (f"Rule: {NEVER_WORSE.describe()} (share of comparisons). {task}, online: at {len(cell)} (step, batch "
            f"pair, learning rate) comparisons of seed-mean held-out loss, the larger batch was not worse (within "
            f"0.2%) in {share:.0%}; worst case step {int(worst['step'])}: "
            f"B={int(worst['quiet_value'])} {worst['quiet_loss']:.4f} vs B={int(worst['noisy_value'])} "
            f"{worst['noisy_loss']:.4f}. A smaller learning rate at the same batch was not worse in "
            f"{float(lr_cell['less_noise_not_worse'].mean()) if len(lr_cell) else math.nan:.0%} of comparisons "
            "(a smaller learning rate also moves slower, which the paper separates from noise). Paper: less noise "
            "never hurts at equal steps online; noise only buys computation (more steps per example).")
    return Finding(STUDY, metric, share, rule=NEVER_WORSE, scale=scale, note=note)


def noise_reduction_finding(reduction: pd.DataFrame, task: str, scale: str) -> Finding:
    """Online, cutting the noise mid-run lowers the held-out loss soon after the cut."""
    cell = reduction[(reduction["task"] == task) & (reduction["regime"] == "online")] if len(reduction) else reduction
    metric = f"{task}: online noise cut, held-out loss gain soon after"
    if cell.empty:
        return Finding(STUDY, metric, math.nan, rule=CUT_GAIN, scale=scale, note="no noise-reduction branch was run")
    gain, end = float(cell["gain_soon"].mean()), float(cell["gain_end"].mean())
    helped, lasted = float((cell["gain_soon"] > 0).mean()), float((cell["gain_end"] > 0).mean())
    conditions = [Condition("share of seeds helped soon after", helped, CUT_EVERY_SEED),
                  Condition("share of seeds still ahead at the end", lasted, CUT_LASTS)]
    off = reduction[(reduction["task"] == task) & (reduction["regime"] == "offline")]
    row = cell.iloc[0]
    how = (f"learning rate x{row['cut_lr_factor']:g}" if row["cut_lr_factor"] != 1 else
           f"batch x{int(row['cut_batch_factor'])}")
    note = (f"Rule: mean gain soon after the cut {CUT_GAIN.describe().removeprefix('ours ')}; and it helped in "
            f"every seed (partially in half); and the branch is still ahead at the end in at least half the seeds "
            f"(else at most partially). {task}, online: cutting the noise ({how}) at step {int(row['cut_step'])} "
            f"lowered the held-out loss by {gain:+.4f} at step {int(row['soon_step'])} (in {helped:.0%} of "
            f"{len(cell)} seeds) and by {end:+.4f} at the end (step {int(row['end_step'])}; ahead in {lasted:.0%}). "
            "Offline the same cut gave "
            f"{float(off['gain_soon'].mean()) if len(off) else math.nan:+.4f} soon and "
            f"{float(off['gain_end'].mean()) if len(off) else math.nan:+.4f} at the end. Paper: reducing the noise "
            "(larger batch or smaller learning rate) immediately improves the loss.")
    return Finding(STUDY, metric, gain, rule=CUT_GAIN, conditions=conditions, scale=scale, note=note)


def implicit_bias_finding(bias: pd.DataFrame, task: str, scale: str) -> Finding:
    """Offline, the smaller batch (more noise) reaches a better held-out loss than the larger; online not."""
    cell = bias[bias["task"] == task] if len(bias) else bias
    by = {regime: cell[(cell["regime"] == regime) & (cell["knob"] == "batch_size")] for regime in ("offline", "online")}
    metric = f"{task}: offline advantage of a smaller batch (best held-out loss)"
    if any(frame.empty for frame in by.values()):
        return Finding(STUDY, metric, math.nan, rule=OFFLINE_HELPS, scale=scale,
                       note="needs several batch sizes in both regimes")
    offline_adv, online_adv = (float(by[r]["noise_advantage"].mean()) for r in ("offline", "online"))
    online = Condition("online advantage of a smaller batch (mean)", online_adv, ONLINE_DOES_NOT)
    lr = {r: cell[(cell["regime"] == r) & (cell["knob"] == "learning_rate")]["noise_advantage"] for r in by}
    off = by["offline"].iloc[0]
    per_lr = ", ".join(f"lr={r.fixed_value:g}: {r.noise_advantage:+.4f}" for r in by["offline"].itertuples())
    note = (f"Rule: the mean offline advantage {OFFLINE_HELPS.describe().removeprefix('ours ')}; and online "
            f"{ONLINE_DOES_NOT.describe().removeprefix('ours ')} (no partial band). {task}: best held-out loss over "
            f"training of the largest batch (B={int(off['quiet_value'])}) minus that of the smallest "
            f"(B={int(off['noisy_value'])}) at the same learning rate, mean over learning rates: offline "
            f"{offline_adv:+.4f} ({per_lr}), online {online_adv:+.4f} (> 0: the noisier run generalised better). "
            "Along the learning rate (smallest minus largest, same batch): offline "
            f"{float(lr['offline'].mean()) if len(lr['offline']) else math.nan:+.4f}, online "
            f"{float(lr['online'].mean()) if len(lr['online']) else math.nan:+.4f}; at equal steps this also "
            "measures speed (a larger learning rate moves further), not only noise. Paper: offline, noisier SGD "
            "generalises better (implicit bias); online it only buys computation.")
    return Finding(STUDY, metric, offline_adv, rule=OFFLINE_HELPS, conditions=[online], scale=scale, note=note)


def scale_note(runs: pd.DataFrame, what: str, profile: str) -> str:
    """The scale a finding states: the sweep's runs, batches, learning rates, seeds and steps."""
    return (f"{profile} profile: {what}; {len(runs)} runs, batch {sorted(runs['batch_size'].unique())}, "
            f"lr {sorted(runs['learning_rate'].unique())}, {runs['seed'].nunique()} seeds, "
            f"{int(runs['steps'].max())} steps")


def build_findings(synthetic_runs: pd.DataFrame, lm_runs: pd.DataFrame, distances: pd.DataFrame,
                   steps: pd.DataFrame, reduction: pd.DataFrame, bias: pd.DataFrame,
                   profile: str) -> tuple[list[Finding], dict[str, str]]:
    """(findings, check name -> the metric it reads): each claim on the synthetic task first (the row its check
    reads), then on each LM corpus (facts first)."""
    scales = {"synthetic": scale_note(synthetic_runs, "random-teacher MLPs, plain SGD", profile)} | {
        task: scale_note(lm_runs[lm_runs["task"] == task], f"LM family on the {task[3:]} corpus, Adam", profile)
        for task in sorted(lm_runs["task"].unique(), key=lambda t: t != "lm_facts")}
    rows: dict[str, list[Finding]] = {name: [] for name in CHECKS}
    for task, scale in scales.items():
        rows["online_close_at_equal_loss"].append(equal_loss_finding(distances, task, scale))
        rows["online_less_noise_not_worse"].append(never_worse_finding(steps, task, scale))
        rows["online_noise_cut_helps"].append(noise_reduction_finding(reduction, task, scale))
        rows["offline_noise_helps"].append(implicit_bias_finding(bias, task, scale))
    return [f for group in rows.values() for f in group], {name: group[0].metric for name, group in rows.items()}
