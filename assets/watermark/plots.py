"""The study's figures: detection rate along the walk, score trajectories, quality before and after."""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.watermark.attack import checkpoints, detection_curve


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def detection_vs_steps(walk: pd.DataFrame, steps: int):
    """Share of each scheme's texts still detected (1% FPR) after each attack step (dotted: T/4, T/2, 3T/4, T)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, g in walk.groupby("scheme", sort=False):
        rows = sorted(g["row"].unique())
        local = g.assign(row=g["row"].map({r: i for i, r in enumerate(rows)}))
        curve = detection_curve(local, len(rows), steps)
        ax.plot(curve["step"], curve["detection_rate"], label=name)
    for t in checkpoints(steps)[1:]:  # the step counts the summary reports success at
        ax.axvline(t, color="grey", ls=":", lw=0.8)
    ax.set(title="Detection at 1% FPR along the random walk", xlabel="attack step", ylabel="detection rate",
           ylim=(-0.03, 1.03))
    ax.legend()
    return fig


def score_trajectories(walk: pd.DataFrame, calibration: pd.DataFrame, steps: int):
    """Every text's detector score along the walk, one panel per scheme, with the calibrated threshold."""
    thresholds = dict(zip(calibration["scheme"], calibration["threshold"], strict=True))
    plt = _plt()
    names = list(dict.fromkeys(walk["scheme"]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        g = walk[walk["scheme"] == name]
        wide = g.pivot_table(index="step", columns="row", values="score", aggfunc="last")
        wide = wide.reindex(range(steps + 1)).ffill()
        ax.plot(wide.index, wide.to_numpy(), color="tab:blue", alpha=0.35, lw=0.8)
        ax.axhline(thresholds[name], color="tab:red", ls="--", lw=1, label="1% FPR threshold")
        ax.set(title=name, xlabel="attack step")
    axes[0][0].set_ylabel("detector score (higher: watermarked)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def quality_before_after(results: pd.DataFrame, unwatermarked_bpb: float):
    """Judge bits/byte and oracle log-probability of each text before vs after the attack."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, g in results.groupby("scheme", sort=False):
        axes[0].scatter(g["judge_bits_per_byte_before"], g["judge_bits_per_byte_after"], s=12, label=name, alpha=0.7)
        axes[1].scatter(g["oracle_logprob_before"], g["oracle_logprob_after"], s=12, label=name, alpha=0.7)
    for ax, cols in ((axes[0], "judge_bits_per_byte"), (axes[1], "oracle_logprob")):
        values = np.concatenate([results[f"{cols}_before"], results[f"{cols}_after"]])
        lo, hi = np.nanmin(values), np.nanmax(values)
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
    axes[0].axhline(unwatermarked_bpb, color="tab:green", ls=":", label="unwatermarked (mean)")
    axes[0].set(title="independent judge (byte n-gram): bits/byte", xlabel="before attack", ylabel="after attack")
    axes[1].set(title="quality oracle: mean log p per token", xlabel="before attack", ylabel="after attack")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
