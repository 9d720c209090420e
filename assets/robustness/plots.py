"""Figures in the paper's style: attack success as a heatmap over (defender compute x adversary budget), one
panel per attack and goal; beside them clean accuracy and reasoning length under the think-less attack."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def success_heatmaps(grid: pd.DataFrame):
    """One panel per (attack, goal): x = defender reasoning budget, y = adversary budget, colour = success
    probability (pooled over tasks; n in each cell's text), as the paper's figures plot them."""
    plt = _pyplot()
    panels = list(grid.groupby(["attack", "goal"], sort=False).groups)
    cols = min(5, max(1, len(panels)))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.8 * rows), squeeze=False)
    image = None
    for ax, (attack, goal) in zip(axes.flat, panels, strict=False):
        cells = grid[(grid["attack"] == attack) & (grid["goal"] == goal)]
        pooled = cells.groupby(["adversary_budget", "compute_level"])[["successes", "n"]].sum().reset_index()
        pooled["rate"] = pooled["successes"] / pooled["n"].replace(0, np.nan)
        table = pooled.pivot(index="adversary_budget", columns="compute_level", values="rate")
        counts = pooled.pivot(index="adversary_budget", columns="compute_level", values="n")
        image = ax.imshow(table.to_numpy(dtype=float), origin="lower", aspect="auto", cmap="viridis", vmin=0,
                          vmax=1)
        for (i, j), value in np.ndenumerate(table.to_numpy(dtype=float)):
            text = "–" if np.isnan(value) else f"{value:.2f}\nn={int(counts.iloc[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=6,
                    color="black" if not np.isnan(value) and value > 0.6 else "white")
        ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns], fontsize=7)
        ax.set_yticks(range(len(table.index)), [str(r) for r in table.index], fontsize=7)
        ax.set_xlabel("defender reasoning budget", fontsize=7)
        ax.set_ylabel(str(cells["budget_unit"].iloc[0]), fontsize=7)
        ax.set_title(f"{attack}: {goal}", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="attack success probability")
    return fig


def compute_figure(accuracy: pd.DataFrame, think_less: pd.DataFrame):
    """Left: clean accuracy against the reasoning budget per task (Wilson intervals). Right: mean reasoning
    tokens of clean and think-less-attacked responses per task."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for task, rows in accuracy.groupby("task", sort=True):
        err = np.vstack([rows["accuracy"] - rows["ci_low"], rows["ci_high"] - rows["accuracy"]])
        left.errorbar(rows["compute_level"], rows["accuracy"], yerr=err, marker="o", capsize=3, label=task)
    left.set(title="clean accuracy vs defender compute", xlabel="reasoning budget", ylabel="accuracy",
             ylim=(-0.03, 1.03))
    left.legend(fontsize=7)
    for task, rows in think_less.groupby("task", sort=True):
        line = right.plot(rows["compute_level"], rows["clean_reasoning_tokens"], "o-", label=f"{task} clean")
        right.plot(rows["compute_level"], rows["attacked_reasoning_tokens"], "x--", color=line[0].get_color(),
                   label=f"{task} think-less attack")
    right.set(title="reasoning length under the think-less attack", xlabel="reasoning budget",
              ylabel="mean reasoning tokens")
    right.legend(fontsize=6)
    fig.tight_layout()
    return fig
