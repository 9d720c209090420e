"""Figures of the study: ROC curves per method, AUC by layer, and the small-vs-large entropy scatter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from assets.uncertainty.labels import ALEATORIC, EPISTEMIC, UNLABELLED


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def entropy_scatter(labels: pd.DataFrame, thresholds: dict[str, Any], max_points: int = 6000, seed: int = 0):
    """Small-model vs large-model entropy per token, coloured by proxy label, one panel per dataset."""
    plt = _plt()
    datasets = sorted(labels["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 4.2), squeeze=False)
    for ax, name in zip(axes[0], datasets, strict=True):
        rows = labels[labels["dataset"] == name]
        if len(rows) > max_points:
            rows = rows.sample(n=max_points, random_state=seed)
        for code, colour, text in ((UNLABELLED, "lightgrey", "unlabelled"), (ALEATORIC, "tab:blue", "aleatoric"),
                                   (EPISTEMIC, "tab:red", "epistemic")):
            part = rows[rows["label"] == code]
            ax.scatter(part["small_entropy"], part["large_entropy"], s=4, alpha=0.5, c=colour,
                       label=f"{text} ({len(part)})")
        th = thresholds[name]
        ax.axvline(th.entropy_min, color="k", lw=0.8, ls="--")
        ax.axhline(th.zero_entropy, color="tab:red", lw=0.8, ls=":")
        top = float(np.nanmax(rows[["small_entropy", "large_entropy"]].to_numpy())) if len(rows) else 1.0
        ax.plot([0, top], [0, top], color="tab:blue", lw=0.6, ls=":")
        ax.set(title=name, xlabel="small-model entropy (nats)", ylabel="large-model entropy (nats)")
        ax.legend(fontsize=7, markerscale=3)
    fig.tight_layout()
    return fig


def roc_curves(curves: dict[str, list[tuple[str, np.ndarray, np.ndarray]]]):
    """ROC curves: one panel per dataset; each entry (method label, y true, score)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    names = sorted(curves) or ["(none)"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 4.0), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for method, y, s in curves.get(name, []):
            if len(np.unique(y)) < 2:
                continue
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, label=f"{method} ({roc_auc_score(y, s):.2f})")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.6, ls=":")
        ax.set(title=f"{name}: epistemic vs aleatoric", xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def auc_by_layer(auc: pd.DataFrame):
    """Held-out AUC per layer for each probe kind, with the entropy baseline as a line, per dataset."""
    plt = _plt()
    own = auc[(auc["train_dataset"] == auc["test_dataset"]) & (auc["target"] == "proxy")]
    names = sorted(own["train_dataset"].unique()) or ["(none)"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        rows = own[own["train_dataset"] == name]
        for method, marker in (("linear", "o"), ("mlp", "s")):
            part = rows[(rows["method"] == method) & (rows["layer"] >= 0)].sort_values("layer")
            ax.plot(part["layer"], part["auc"], marker=marker, label=f"{method} probe")
        base = rows.loc[rows["method"] == "entropy", "auc"]
        if len(base):
            ax.axhline(float(base.iloc[0]), color="k", ls="--", lw=0.8, label="small-model entropy")
        ax.axhline(0.5, color="grey", ls=":", lw=0.6)
        ax.set(title=name, xlabel="layer (0 = embeddings)", ylabel="held-out AUC", ylim=(0.3, 1.02))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def roc_figure(probe_scores: pd.DataFrame, iclt: pd.DataFrame):
    """`roc_curves` of every probe and the entropy baseline on held-out tokens, and of the ICLT's raw mutual
    information (in sample) on its kept tokens."""
    curves: dict[str, list] = {}
    for (dataset, method, layer), rows in probe_scores.groupby(["dataset", "method", "layer"], sort=True):
        label = method if layer < 0 else f"{method} L{layer}"
        curves.setdefault(dataset, []).append((label, rows["label"].to_numpy(), rows["score"].to_numpy()))
    for dataset, rows in iclt[iclt["kept"]].groupby("dataset"):
        curves.setdefault(dataset, []).append(("ICLT raw MI, in-sample", rows["label"].to_numpy(), rows["mi"].to_numpy()))
    return roc_curves(curves)
