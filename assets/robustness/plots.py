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
    """One row of panels per attack, one column per goal: x = defender reasoning budget, y = adversary
    budget, colour = success probability (pooled over tasks; each cell's n in its text), as the paper's
    figures plot them."""
    plt = _pyplot()
    attacks = list(dict.fromkeys(grid["attack"]))
    goals = list(dict.fromkeys(grid.loc[grid["goal"] != "think_less", "goal"])) or ["think_less"]
    fig, axes = plt.subplots(len(attacks), len(goals), figsize=(2.9 * len(goals), 2.6 * len(attacks)),
                             squeeze=False)
    image = None
    for r, attack in enumerate(attacks):
        for c, goal in enumerate(goals):
            ax = axes[r, c]
            wanted = "think_less" if attack == "think_less" else goal
            cells = grid[(grid["attack"] == attack) & (grid["goal"] == wanted)]
            if cells.empty or (attack == "think_less" and c > 0):
                ax.axis("off")
                continue
            image = _panel(ax, cells, f"{attack}: {wanted}")
    fig.subplots_adjust(hspace=0.75, wspace=0.45, right=0.88)
    if image is not None:
        fig.colorbar(image, cax=fig.add_axes([0.91, 0.3, 0.015, 0.4]), label="attack success probability")
    return fig


def _panel(ax, cells: pd.DataFrame, title: str):
    pooled = cells.groupby(["adversary_budget", "compute_level"])[["successes", "n"]].sum().reset_index()
    pooled["rate"] = pooled["successes"] / pooled["n"].replace(0, np.nan)
    table = pooled.pivot(index="adversary_budget", columns="compute_level", values="rate")
    counts = pooled.pivot(index="adversary_budget", columns="compute_level", values="n")
    values = table.to_numpy(dtype=float)
    image = ax.imshow(values, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(values):
        text = "-" if np.isnan(value) else f"{value:.2f}\nn={int(counts.iloc[i, j])}"
        ax.text(j, i, text, ha="center", va="center", fontsize=6,
                color="black" if not np.isnan(value) and value > 0.6 else "white")
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns], fontsize=7)
    ax.set_yticks(range(len(table.index)), [str(i) for i in table.index], fontsize=7)
    ax.set_xlabel("defender reasoning budget", fontsize=7)
    ax.set_ylabel(str(cells["budget_unit"].iloc[0]), fontsize=7)
    ax.set_title(title, fontsize=8)
    return image


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
