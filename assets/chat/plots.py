"""Figures of the chat room: accuracy against reasoning budget (and against compute), and training curves."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def budget_accuracy_figure(table: pd.DataFrame):
    """Top row: accuracy against the reasoning budget per task (one line per model, ±1 standard error;
    effort levels as open markers at their applied budget). Bottom row: accuracy against FLOPs per answer."""
    plt = _pyplot()
    tasks = sorted(table["task"].unique())
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.2 * len(tasks), 6.4), squeeze=False)
    for j, task in enumerate(tasks):
        top, bottom = axes[0, j], axes[1, j]
        rows_of_task = table[table["task"] == task]
        for i, (model, rows) in enumerate(rows_of_task.groupby("model", sort=True)):
            budgets = rows[rows["effort"] == ""].sort_values("requested_budget")
            line = top.errorbar(
                budgets["budget"],
                budgets["accuracy"],
                yerr=budgets["accuracy_se"],
                marker="o",
                capsize=3,
                label=str(model),
            )
            color = line[0].get_color()
            efforts = rows[rows["effort"] != ""]
            top.scatter(
                efforts["budget"], efforts["accuracy"], facecolors="none", edgecolors=color, s=70, zorder=3
            )
            for r in efforts.itertuples() if i == 0 else ():  # one label per effort level
                top.annotate(
                    r.effort, (r.budget, r.accuracy), fontsize=7, xytext=(4, 6), textcoords="offset points"
                )
            bottom.plot(budgets["flops_per_answer"], budgets["accuracy"], "o-", color=color, label=str(model))
        ticks = sorted(set(rows_of_task["budget"]))
        top.set_xscale("symlog", linthresh=max(1, min([b for b in ticks if b > 0], default=1)))
        top.set_xticks(ticks, [str(b) for b in ticks], fontsize=8)
        top.minorticks_off()
        top.set(
            title=f"{task}: accuracy vs reasoning budget",
            xlabel="reasoning budget (tokens; open: effort levels)",
            ylabel="accuracy",
            ylim=(-0.03, 1.03),
        )
        bottom.set_xscale("log")
        bottom.set(
            title=f"{task}: accuracy vs compute",
            xlabel="forward FLOPs per answer",
            ylabel="accuracy",
            ylim=(-0.03, 1.03),
        )
        top.legend(fontsize=8)
    fig.tight_layout()
    return fig


def training_figure(curves: Mapping[str, pd.DataFrame], y: str, ylabel: str, title: str):
    """One line per curve (x = step)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, curve in curves.items():
        rows = curve.dropna(subset=[y])
        ax.plot(rows["step"], rows[y], label=name)
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
