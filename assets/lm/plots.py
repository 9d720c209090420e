"""Figures of the LM family: one model's loss curve, and a family's sizes side by side (matplotlib; the Dagster
side embeds them with ``resources.presentation.figure_metadata``)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve_figure(curve: pd.DataFrame, title: str) -> Any:
    """Train and validation loss against tokens seen (a training curve: `assets.lm.training.CURVE_COLUMNS`)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(curve["tokens"], curve["train_loss"], label="train", alpha=0.6)
    val = curve.dropna(subset=["val_loss"])
    ax.plot(val["tokens"], val["val_loss"], "o-", label="validation")
    ax.set(title=title, xlabel="tokens", ylabel="loss (nats/token)")
    ax.legend()
    return fig


def family_figure(corpus: str, table: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> Any:
    """Validation loss curves of every size (``curves``: size -> curve), and final loss against parameters."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for size, curve in curves.items():
        val = curve.dropna(subset=["val_loss"])
        axes[0].plot(val["tokens"], val["val_loss"], "o-", label=size)
    axes[0].set(title=f"{corpus}: validation loss", xlabel="tokens", ylabel="nats/token")
    axes[0].legend()
    axes[1].semilogx(table["parameters"], table["final_val_loss"], "o-")
    for r in table.itertuples():
        axes[1].annotate(r.size, (r.parameters, r.final_val_loss))
    axes[1].set(title="final validation loss vs parameters", xlabel="parameters")
    return fig
