"""The paper's claims next to our numbers, each with a fixed rule for its verdict (not tuned to the numbers).

Plain dicts (metric, ours, paper, scale, verdict, note) that the Dagster side turns into ``Finding`` rows.
Claims (Vyas, Morwani, Zhao, Kaplun, Kakade & Barak 2023): online, (1) at equal loss, runs with different
noise levels are close in function space; (2) less noise never gives a worse loss at equal steps, and
cutting the noise mid-run lowers the loss at once; offline, (3) the implicit-bias advantage of noise (a
better held-out loss with a smaller batch or a larger learning rate) appears, unlike online.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

CLOSE_RATIO = 1.25  # noisy-vs-lowest-noise distance at most this multiple of the seed-to-seed distance
NEVER_WORSE_SHARE = 0.95  # "never": at least this share of equal-step comparisons
MOSTLY_SHARE = 0.75


def _finding(metric: str, ours: float | None, paper: float | None, scale: str, verdict: str,
             note: str) -> dict[str, Any]:
    return {"metric": metric, "ours": float(ours) if ours is not None else math.nan, "paper": paper,
            "scale": scale, "verdict": verdict, "note": note}


def _ratio(summary: pd.DataFrame, task: str, regime: str) -> tuple[float, float, float]:
    cell = summary[(summary["task"] == task) & (summary["regime"] == regime)].set_index("kind")
    get = lambda kind, col: float(cell.loc[kind, col]) if kind in cell.index else math.nan  # noqa: E731
    return (get("noise_cross_seed", "ratio_to_seed_baseline"), get("noise_cross_seed", "median_tv_equal_loss"),
            get("noise_cross_seed", "median_tv_equal_step"))


def equal_loss_finding(summary: pd.DataFrame, task: str, scale: str) -> dict[str, Any]:
    """Online, noisy runs vs the lowest-noise run (another seed) at equal loss, over the seed baseline."""
    online, tv, tv_step = _ratio(summary, task, "online")
    offline, tv_off, _ = _ratio(summary, task, "offline")
    same_rows = summary[(summary["task"] == task) & (summary["regime"] == "online")
                        & (summary["kind"] == "noise_same_seed")]
    same, same_step = same_rows["median_tv_equal_loss"], same_rows["median_tv_equal_step"]
    seed = summary[(summary["task"] == task) & (summary["regime"] == "online")
                   & (summary["kind"] == "seed")]["median_tv_equal_loss"]
    if math.isnan(online):
        verdict = "not comparable"
    elif online <= CLOSE_RATIO:
        verdict = "reproduced"
    elif online < offline:
        verdict = "partially reproduced"
    else:
        verdict = "not reproduced"
    note = (f"{task}, online: median TV distance at equal held-out loss between a noisy run and the lowest-noise "
            f"run of another seed {tv:.4f} vs {float(seed.median()) if len(seed) else math.nan:.4f} between "
            f"lowest-noise runs of two seeds (ratio {online:.2f}; rule: reproduced if <= {CLOSE_RATIO}, partially "
            f"if below the offline ratio {offline:.2f}). Same seed (shared init and data): "
            f"{float(same.median()) if len(same) else math.nan:.4f} at equal loss vs "
            f"{float(same_step.median()) if len(same_step) else math.nan:.4f} at equal steps. At equal steps instead of equal loss the "
            f"cross-seed distance is {tv_step:.4f}; offline at equal loss {tv_off:.4f}. Paper: models trained "
            "with different noise are close in function space at equal loss (they follow one 'golden path').")
    return _finding(f"{task}: online TV at equal loss, noisy / seed baseline", online, 1.0, scale, verdict, note)


def never_worse_finding(comparisons: pd.DataFrame, task: str, scale: str) -> dict[str, Any]:
    """Online, a larger batch at the same learning rate never has a worse loss at equal steps."""
    cell = comparisons[(comparisons["task"] == task) & (comparisons["regime"] == "online")
                       & (comparisons["knob"] == "batch_size")]
    lr_cell = comparisons[(comparisons["task"] == task) & (comparisons["regime"] == "online")
                          & (comparisons["knob"] == "learning_rate")]
    if cell.empty:
        return _finding(f"{task}: online, larger batch not worse at equal steps", None, 1.0, scale,
                        "not comparable", "the sweep has a single batch size")
    share = float(cell["less_noise_not_worse"].mean())
    verdict = ("reproduced" if share >= NEVER_WORSE_SHARE else
               "partially reproduced" if share >= MOSTLY_SHARE else "not reproduced")
    worst = cell.assign(excess=cell["quiet_loss"] - cell["noisy_loss"]).sort_values("excess").iloc[-1]
    note = (f"{task}, online: at {len(cell)} (step, batch pair, learning rate) comparisons of seed-mean held-out "
            f"loss, the larger batch was not worse (within 0.2%) in {share:.0%} (rule: reproduced if >= "
            f"{NEVER_WORSE_SHARE:.0%}, partially if >= {MOSTLY_SHARE:.0%}); worst case step {int(worst['step'])}: "
            f"B={int(worst['quiet_value'])} {worst['quiet_loss']:.4f} vs B={int(worst['noisy_value'])} "
            f"{worst['noisy_loss']:.4f}. A smaller learning rate at the same batch was not worse in "
            f"{float(lr_cell['less_noise_not_worse'].mean()) if len(lr_cell) else math.nan:.0%} of comparisons "
            "(a smaller learning rate also moves slower, which the paper separates from noise). Paper: less noise "
            "never hurts at equal steps online; noise only buys computation (more steps per example).")
    return _finding(f"{task}: online, larger batch not worse at equal steps (share)", share, 1.0, scale, verdict, note)


def noise_reduction_finding(reduction: pd.DataFrame, task: str, scale: str) -> dict[str, Any]:
    """Online, cutting the noise mid-run lowers the held-out loss soon after the cut."""
    cell = reduction[(reduction["task"] == task) & (reduction["regime"] == "online")] if len(reduction) else reduction
    if cell.empty:
        return _finding(f"{task}: online noise cut, loss gain soon after", None, None, scale, "not comparable",
                        "no noise-reduction branch was run")
    gain, end = float(cell["gain_soon"].mean()), float(cell["gain_end"].mean())
    helped = float((cell["gain_soon"] > 0).mean())
    verdict = ("reproduced" if helped == 1.0 and end > 0 else
               "partially reproduced" if gain > 0 or end > 0 else "not reproduced")
    off = reduction[(reduction["task"] == task) & (reduction["regime"] == "offline")]
    row = cell.iloc[0]
    how = (f"learning rate x{row['cut_lr_factor']:g}" if row["cut_lr_factor"] != 1 else
           f"batch x{int(row['cut_batch_factor'])}")
    note = (f"{task}, online: cutting the noise ({how}) at step {int(row['cut_step'])} lowered the held-out loss "
            f"by {gain:+.4f} at step {int(row['soon_step'])} (in {helped:.0%} of {len(cell)} seeds) and by "
            f"{end:+.4f} at the end (step {int(row['end_step'])}); rule: reproduced if it helped soon after in "
            "every seed and at the end, partially if either on average. Offline the same cut gave "
            f"{float(off['gain_soon'].mean()) if len(off) else math.nan:+.4f} soon and "
            f"{float(off['gain_end'].mean()) if len(off) else math.nan:+.4f} at the end. Paper: reducing the noise "
            "(larger batch or smaller learning rate) immediately improves the loss.")
    return _finding(f"{task}: online noise cut, held-out loss gain soon after", gain, None, scale, verdict, note)


def implicit_bias_finding(bias: pd.DataFrame, task: str, scale: str) -> dict[str, Any]:
    """Offline, the smaller batch (more noise) reaches a better held-out loss than the larger; online not."""
    cell = bias[bias["task"] == task] if len(bias) else bias
    by = {regime: cell[(cell["regime"] == regime) & (cell["knob"] == "batch_size")] for regime in ("offline", "online")}
    if any(frame.empty for frame in by.values()):
        return _finding(f"{task}: offline advantage of a smaller batch", None, None, scale, "not comparable",
                        "needs several batch sizes in both regimes")
    offline_adv, online_adv = (float(by[r]["noise_advantage"].mean()) for r in ("offline", "online"))
    if offline_adv > 0 and online_adv <= 0:
        verdict = "reproduced"
    elif float(by["offline"]["noise_advantage"].max()) > 0 and online_adv <= 0:
        verdict = "partially reproduced"
    else:
        verdict = "not reproduced"
    lr = {r: cell[(cell["regime"] == r) & (cell["knob"] == "learning_rate")]["noise_advantage"] for r in by}
    off = by["offline"].iloc[0]
    per_lr = ", ".join(f"lr={r.fixed_value:g}: {r.noise_advantage:+.4f}" for r in by["offline"].itertuples())
    note = (f"{task}: best held-out loss over training of the largest batch (B={int(off['quiet_value'])}) minus "
            f"that of the smallest (B={int(off['noisy_value'])}) at the same learning rate, mean over learning "
            f"rates: offline {offline_adv:+.4f} ({per_lr}), online {online_adv:+.4f} (> 0: the noisier run "
            "generalised better). Rule: reproduced if a smaller batch helps offline on average and not online; "
            "partially if it helps offline at some learning rate and not online. Along the learning rate "
            "(smallest minus largest, "
            f"same batch): offline {float(lr['offline'].mean()) if len(lr['offline']) else math.nan:+.4f}, online "
            f"{float(lr['online'].mean()) if len(lr['online']) else math.nan:+.4f}; at equal steps this also "
            "measures speed (a larger learning rate moves further), not only noise. Paper: offline, noisier SGD "
            "generalises better (implicit bias); online it only buys computation.")
    return _finding(f"{task}: offline advantage of a smaller batch (best held-out loss)", offline_adv, None,
                    scale, verdict, note)
