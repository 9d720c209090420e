"""Figures: held-out loss against steps by noise level (online and offline side by side, and online against
examples seen), the functional distance against the loss level, and the noise-reduction branches."""

from __future__ import annotations

import pandas as pd

STYLES = ["-", "--", ":", "-."]


def _plt():
    """matplotlib.pyplot on the Agg backend, imported when a figure is drawn (not when the code location loads)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _styles(values) -> dict:
    return {v: STYLES[i % len(STYLES)] for i, v in enumerate(sorted(values, reverse=True))}


def loss_curves(mean: pd.DataFrame):
    """Rows: tasks. Columns: online vs steps, offline vs steps, online vs examples. Colour: learning rate;
    line style: batch size (solid = largest)."""
    plt = _plt()
    tasks = sorted(mean["task"].unique())
    fig, axes = plt.subplots(len(tasks), 3, figsize=(13, 3.4 * len(tasks)), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for row, task in enumerate(tasks):
        cell = mean[mean["task"] == task]
        lrs = sorted(cell["learning_rate"].unique())
        colours = {lr: cmap(i / max(len(lrs) - 1, 1) * 0.85) for i, lr in enumerate(lrs)}
        styles = _styles(cell["batch_size"].unique())
        for col, (regime, x) in enumerate((("online", "step"), ("offline", "step"), ("online", "examples"))):
            ax = axes[row, col]
            for (b, lr), line in cell[cell["regime"] == regime].groupby(["batch_size", "learning_rate"]):
                line = line[line["step"] > 0]
                ax.plot(line[x], line["eval_loss"], styles[b], color=colours[lr], lw=1.3, label=f"B={b}, lr={lr:g}")
            ax.set(xscale="log", title=f"{task}, {regime}: held-out loss vs {x}", xlabel=x, ylabel="held-out loss")
            if col == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def distance_vs_loss(distances: pd.DataFrame):
    """Median TV distance at equal loss against the loss level, per kind of pair; one panel per (task, regime)."""
    plt = _plt()
    cells = sorted({(t, r) for t, r in zip(distances["task"], distances["regime"], strict=True)})
    fig, axes = plt.subplots(1, len(cells), figsize=(4.3 * len(cells), 3.4), squeeze=False)
    for ax, (task, regime) in zip(axes[0], cells, strict=True):
        cell = distances[(distances["task"] == task) & (distances["regime"] == regime)]
        for kind, sub in cell.groupby("kind"):
            med = sub.groupby("loss_level")[["tv_equal_loss", "tv_equal_step"]].median().reset_index()
            line, = ax.plot(med["loss_level"], med["tv_equal_loss"], "o-", ms=3, label=f"{kind} (equal loss)")
            if kind != "seed":
                ax.plot(med["loss_level"], med["tv_equal_step"], "x:", ms=3, color=line.get_color(),
                        label=f"{kind} (equal step)")
        ax.invert_xaxis()
        ax.set(title=f"{task}, {regime}", xlabel="held-out loss level (training ->)", ylabel="TV distance")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def noise_reduction(curves: pd.DataFrame, reduction: pd.DataFrame):
    """Parent (continue) vs branch (noise cut) held-out loss after the cut, one panel per (task, regime)."""
    plt = _plt()
    cells = sorted({(t, r) for t, r in zip(reduction["task"], reduction["regime"], strict=True)}) or [("", "")]
    fig, axes = plt.subplots(1, len(cells), figsize=(4.3 * len(cells), 3.3), squeeze=False)
    for ax, (task, regime) in zip(axes[0], cells, strict=True):
        for row in reduction[(reduction["task"] == task) & (reduction["regime"] == regime)].itertuples():
            for key, style, label in ((row.parent_run, "-", "continue"), (row.run_key, "--", "noise cut")):
                c = curves[(curves["run_key"] == key) & (curves["step"] >= row.cut_step * 0.5)]
                ax.plot(c["step"], c["eval_loss"], style, lw=1.2, label=f"{label} s{row.seed}")
            ax.axvline(row.cut_step, color="grey", lw=0.6)
        ax.set(title=f"{task}, {regime}: noise reduction", xlabel="step", ylabel="held-out loss")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig
