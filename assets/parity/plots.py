"""Figures for the study: loss curves with the plateau and the drop, t_c against n on log-log axes, a
hidden-progress measure rising through the plateau, and the finite-sample (grokking-like) curves."""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_LINES = 8


def _plt():
    """matplotlib.pyplot on the Agg backend, imported when a figure is drawn (not when the code location loads)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _pick_runs(runs: pd.DataFrame, k: int, n: int, arch: str = "mlp") -> pd.DataFrame:
    chosen = runs[(runs["k"] == k) & (runs["n"] == n) & (runs["arch"] == arch) & runs["converged"].astype(bool)]
    return chosen.sort_values("seed").head(MAX_LINES)


def loss_curves(curves: pd.DataFrame, runs: pd.DataFrame, k: int, n: int, arch: str = "mlp"):
    """Evaluation loss and accuracy against step for a few seeds at (k, n); dots mark t_c."""
    plt = _plt()
    chosen = _pick_runs(runs, k, n, arch)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in chosen.itertuples():
        curve = curves[curves["run_key"] == run.run_key]
        line, = axes[0].plot(curve["step"], curve["eval_loss"], lw=1)
        axes[1].plot(curve["step"], curve["eval_accuracy"], lw=1, color=line.get_color())
        axes[1].plot([run.t_c], [1.0], "o", color=line.get_color(), ms=4)
    axes[0].set(title=f"{arch}, n={n}, k={k}: evaluation loss", xlabel="SGD step", ylabel="loss")
    axes[1].set(title="evaluation accuracy (dots: t_c)", xlabel="SGD step", ylabel="accuracy", ylim=(0.4, 1.02))
    return fig


def tc_vs_n(summary: pd.DataFrame, fit: pd.DataFrame):
    """Median t_c (bars: quartiles) against n per (arch, k, width) on log-log axes, with the fitted power laws."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    online = summary[summary["train_set_size"].isna()]
    keys = ["arch", "k", "width", "batch_size", "learning_rate", "loss", "init"]
    for values, cell in online.groupby(keys):
        arch, k, width = values[:3]
        cell = cell.dropna(subset=["median_t_c"]).sort_values("n")
        if cell["n"].nunique() < 2:  # single-n sweeps (widths, losses) are in the tables, not on this plot
            continue
        yerr = np.vstack([cell["median_t_c"] - cell["q25_t_c"], cell["q75_t_c"].fillna(cell["median_t_c"])
                          - cell["median_t_c"]]).clip(min=0)
        bars = ax.errorbar(cell["n"], cell["median_t_c"], yerr=yerr, fmt="o", ms=4, capsize=2,
                           label=f"{arch} w={width} k={k}")
        row = fit[np.logical_and.reduce([fit[c] == v for c, v in zip(keys, values, strict=True)])]
        if len(row):
            r = row.iloc[0]
            grid = np.linspace(cell["n"].min(), cell["n"].max(), 20)
            ax.plot(grid, r["prefactor"] * grid ** r["exponent"], "-", color=bars[0].get_color(), lw=1,
                    label=f"  fit n^{r['exponent']:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(title="convergence time t_c against n", xlabel="n (input bits)", ylabel="median t_c (SGD steps)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def progress_panels(runs: pd.DataFrame) -> list[tuple[str, int, int]]:
    """(arch, k, n) per architecture with converged runs: its largest k, and the largest n at that k."""
    panels = []
    for arch in ("mlp", "polynet"):
        cell = runs[(runs["arch"] == arch) & runs["converged"].astype(bool)]
        if len(cell):
            k = int(cell["k"].max())
            panels.append((arch, k, int(cell.loc[cell["k"] == k, "n"].max())))
    return panels


def progress_through_plateau(curves: pd.DataFrame, runs: pd.DataFrame, panels: list[tuple[str, int, int]],
                             measure: str):
    """``measure`` (left axis) and evaluation accuracy (right, dashed) against step / t_c, one panel per
    (arch, k, n): the measure climbs while accuracy sits at chance."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for ax, (arch, k, n) in zip(axes[0], panels, strict=True):
        twin = ax.twinx()
        for run in _pick_runs(runs, k, n, arch).itertuples():
            curve = curves[(curves["run_key"] == run.run_key) & (curves["step"] > 0)]
            x = curve["step"] / run.t_c
            line, = ax.plot(x, curve[measure], lw=1)
            twin.plot(x, curve["eval_accuracy"], "--", lw=0.8, color=line.get_color(), alpha=0.6)
        ax.set(title=f"{arch}, n={n}, k={k}", xlabel="step / t_c", ylabel=measure, xlim=(0, 1.05))
        twin.set(ylabel="evaluation accuracy (dashed)", ylim=(0.4, 1.02))
    fig.tight_layout()
    return fig


def finite_sample_curves(curves: pd.DataFrame):
    """Training-set and test accuracy against step, one panel per weight decay: memorise first, generalise later."""
    plt = _plt()
    decays = sorted(curves["weight_decay"].unique(), reverse=True)
    fig, axes = plt.subplots(1, len(decays), figsize=(5.2 * len(decays), 3.6), squeeze=False)
    for ax, wd in zip(axes[0], decays, strict=True):
        cell = curves[curves["weight_decay"] == wd]
        for _seed, curve in list(cell.groupby("seed"))[:MAX_LINES]:
            line, = ax.plot(curve["step"], curve["train_set_accuracy"], lw=1)
            ax.plot(curve["step"], curve["eval_accuracy"], "--", lw=1, color=line.get_color())
        ax.set(title=f"weight decay {wd:g}: train (solid) vs test (dashed)", xlabel="SGD step",
               ylabel="accuracy", ylim=(0.4, 1.02))
    return fig
