"""Figures of the NAF study: extraction vs duplication, the k_x distribution, perplexity vs protection."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

ORDER = ["p", "q_holder", "q_safe", "cp_delta", "cp_kl", "cp_k"]
LABELS = {"p": "p (all data)", "q_holder": "q that saw it", "q_safe": "q that did not", "cp_delta": "CP-Δ  min(q1,q2)",
          "cp_kl": "CP-KL  √(q1·q2)", "cp_k": "CP-k (p, rejected if k_x > k)", "q1": "q1", "q2": "q2"}
STYLE = {"p": ("tab:red", "o-"), "q_holder": ("tab:orange", "s--"), "q_safe": ("tab:gray", "s--"),
         "cp_delta": ("tab:blue", "D-"), "cp_kl": ("tab:green", "^-"), "cp_k": ("tab:purple", "v-"),
         "q1": ("tab:olive", "s"), "q2": ("tab:brown", "s")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def extraction_plot(summary: pd.DataFrame, near_threshold: float) -> Any:
    """Per model, against duplication count: sampled exact / near-exact extraction rates and the mean
    log2-probability of the true continuation."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = [("sampled_exact_rate", "exact extraction rate (sampled)"),
              ("sampled_near_exact_rate", f"near-exact rate (edit distance ≤ {near_threshold:g})"),
              ("mean_logprob_bits", "mean log2 p(true continuation)")]
    for ax, (column, title) in zip(axes, panels, strict=True):
        for model in ORDER:
            rows = summary[summary["model"] == model].sort_values("duplicate_count")
            if rows.empty or rows[column].isna().all():
                continue
            colour, style = STYLE[model]
            ax.plot(rows["duplicate_count"], rows[column], style, color=colour, label=LABELS[model])
        ax.set_xscale("log", base=2)
        ax.set(title=title, xlabel="copies of the protected document in p's training data")
    axes[0].set_ylim(-0.02, 1.02)
    axes[1].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def k_histogram(k_values: pd.DataFrame, k_bits: float) -> Any:
    """Distribution of k_x = max_i log2 p(y|x)/q_i(y|x) over sampled continuations, per generator, with
    the CP-k threshold; left: all samples, right: samples at the highest duplication level."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=False)
    top = k_values["duplicate_count"].max()
    finite = k_values["k_bits"][np.isfinite(k_values["k_bits"])]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    bins = np.linspace(min(lo, 0.0), max(hi, k_bits) + 1e-9, 40)
    for ax, frame, title in ((axes[0], k_values, "all protected prompts"),
                             (axes[1], k_values[k_values["duplicate_count"] == top], f"documents with {top} copies")):
        for model in ["p", "cp_delta", "cp_kl", "cp_k"]:
            values = frame.loc[frame["model"] == model, "k_bits"]
            if values.empty:
                continue
            ax.hist(values, bins=bins, histtype="step", linewidth=1.6, color=STYLE[model][0], label=LABELS[model])
        ax.axvline(k_bits, color="black", linestyle=":", label=f"CP-k threshold k = {k_bits:g} bits")
        ax.set(title=f"k_x of sampled continuations: {title}", xlabel="k_x (bits)", ylabel="samples")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def perplexity_vs_protection(perplexity: pd.DataFrame) -> Any:
    """Held-out perplexity (quality cost) against regurgitation of the most-duplicated protected documents:
    log2 of the mean probability of sampling the true continuation (q1 and q2 each regurgitate their own
    shard's documents; only the combinations are safe for all)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ordered = perplexity.set_index("model")
    names = [m for m in ["p", "q1", "q2", "cp_delta", "cp_kl"] if m in ordered.index]
    axes[0].bar([LABELS[m] for m in names], ordered.loc[names, "perplexity"],
                color=[STYLE[m][0] for m in names])
    axes[0].axhline(float(ordered.loc["p", "perplexity"]), color="tab:red", linestyle=":")
    axes[0].set(title="held-out perplexity (unprotected validation text)", ylabel="perplexity")
    axes[0].tick_params(axis="x", labelrotation=20, labelsize=8)
    for m in names:
        y = ordered.loc[m, "top_level_log2_mean_p_exact"]
        if np.isfinite(y):
            axes[1].scatter(ordered.loc[m, "perplexity"], y, color=STYLE[m][0], s=50)
            axes[1].annotate(LABELS[m], (ordered.loc[m, "perplexity"], y), fontsize=8, xytext=(4, 4),
                             textcoords="offset points")
    axes[1].set(title="protection vs quality", xlabel="held-out perplexity",
                ylabel="log2 P(exact continuation), most-copied docs")
    fig.tight_layout()
    return fig


def training_curves(curves: dict[str, pd.DataFrame]) -> Any:
    """Training loss of q1, q2 and p against steps, with their final validation losses."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for role, curve in curves.items():
        colour = STYLE.get(role, ("black", "-"))[0]
        ax.plot(curve["step"], curve["train_loss"], color=colour, alpha=0.7, label=f"{role} train")
        val = curve.dropna(subset=["val_loss"])
        ax.plot(val["step"], val["val_loss"], "o", color=colour, label=f"{role} validation")
    ax.set(title="naf models: training curves", xlabel="step", ylabel="loss (nats/token)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
