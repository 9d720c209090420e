"""The study's figures (matplotlib; the Dagster side embeds them with `resources.presentation.figure_metadata`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from assets.scaling.law import PAPER_C4, ScalingLaw, predict_loss


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_vs_epochs_figure(runs: pd.DataFrame, law: ScalingLaw | None = None, title: str = ""):
    """Held-out loss vs epochs, one panel per model size and one colour per unique-data budget U_D.

    Filled markers: repeated data (U_D fixed, D = U_D × epochs). Hollow markers: unique-data runs with the
    same D (all tokens fresh), where the grid has them. With ``law``: solid lines are the fitted
    data-constrained law L(N, U_D·e, U_D); dotted lines what the same tokens would give if all were unique.
    """
    plt = _pyplot()
    sizes = list(dict.fromkeys(runs.sort_values("parameters")["size"]))
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.2 * len(sizes), 3.8), squeeze=False, sharey=True)
    repeated_budgets = sorted(runs.loc[runs["nominal_epochs"] > 1, "unique_tokens"].unique())
    colours = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, max(len(repeated_budgets), 1)))
    for ax, size in zip(axes[0], sizes, strict=True):
        own = runs[runs["size"] == size]
        n = float(own["parameters"].iloc[0])
        unique = own[own["nominal_epochs"] == 1].set_index("tokens")["held_out_loss"]
        for colour, u in zip(colours, repeated_budgets, strict=False):
            series = own[own["unique_tokens"] == u].sort_values("epochs")
            if series.empty:
                continue
            ax.plot(series["epochs"], series["held_out_loss"], "o", color=colour, label=f"U_D = {u:,.0f}")
            same_d = [(t / u, unique[t]) for t in series["tokens"] if t in unique.index]
            if same_d:
                xs, ys = zip(*same_d, strict=True)
                ax.plot(xs, ys, "o", mfc="none", color=colour, ms=9)
            if law is not None:
                grid = np.geomspace(1, max(series["epochs"].max(), 1.0), 60)
                ax.plot(grid, predict_loss(n, u * grid, u, law), "-", color=colour, lw=1.2)
                ax.plot(grid, predict_loss(n, u * grid, u * grid, law.chinchilla()), ":", color=colour, lw=1)
        ax.set_xscale("log", base=2)
        ax.set(title=f"{size}: N = {n:,.0f}", xlabel="epochs (D / U_D)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out loss (nats/token)")
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def effective_data_figure(table: pd.DataFrame):
    """D'/U_D vs epochs per source (ours, the paper), against fresh data (D'/U_D = epochs)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    top = float(table["epochs"].max())
    ax.plot([1, top], [1, top], "k--", lw=1, label="unique data (D' = D)")
    for source, rows in table.groupby("source", sort=False):
        rows = rows.sort_values("epochs")
        rd = float(rows["rd_star"].iloc[0])
        line, = ax.plot(rows["epochs"], rows["effective_data_multiple"], "o-", ms=3,
                        label=f"{source}: R_D* = {rd:.3g}")
        ax.axhline(1 + rd, color=line.get_color(), lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="epochs over U_D", ylabel="effective data D' / U_D",
           title="What repeated data is worth (dotted: limit 1 + R_D*)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def allocation_figure(table: pd.DataFrame):
    """Compute-optimal N and D over budgets C, data-constrained (solid) vs Chinchilla unconstrained (dotted)."""
    plt = _pyplot()
    sources = list(dict.fromkeys(table["source"]))
    fig, axes = plt.subplots(1, len(sources), figsize=(5.6 * len(sources), 4), squeeze=False)
    for ax, source in zip(axes[0], sources, strict=True):
        rows = table[table["source"] == source].sort_values("compute")
        ax.loglog(rows["compute"], rows["parameters"], "o-", color="C0", ms=3, label="N (data-constrained)")
        ax.loglog(rows["compute"], rows["tokens"], "s-", color="C1", ms=3, label="D (data-constrained)")
        ax.loglog(rows["compute"], rows["chinchilla_parameters"], ":", color="C0", label="N (Chinchilla)")
        ax.loglog(rows["compute"], rows["chinchilla_tokens"], ":", color="C1", label="D (Chinchilla)")
        ax.axhline(float(rows["unique_tokens"].iloc[0]), color="grey", lw=0.8, ls="--", label="U_D")
        ax.set(title=f"{source}: U_D = {float(rows['unique_tokens'].iloc[0]):.3g} tokens",
               xlabel="compute C = 6ND (FLOPs)", ylabel="parameters / tokens")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def reference_fit_figure(runs: pd.DataFrame, laws: dict[str, ScalingLaw]):
    """Predicted vs observed loss of the paper's C4 runs under each law, coloured by epochs."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(laws), figsize=(4.6 * len(laws), 4), squeeze=False, sharey=True)
    lo, hi = float(runs["loss"].min()) * 0.95, float(runs["loss"].max()) * 1.05
    for ax, (name, law) in zip(axes[0], laws.items(), strict=True):
        pred = predict_loss(runs["parameters"], runs["tokens"], runs["unique_tokens"], law)
        points = ax.scatter(pred, runs["loss"], c=np.log2(runs["epochs"]), s=10, cmap="plasma")
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="predicted loss", title=name)
    axes[0][0].set_ylabel("observed loss")
    fig.colorbar(points, ax=axes[0].tolist(), label="log2 epochs")
    return fig


def refit_figure(runs: pd.DataFrame, best: Any):
    """`reference_fit_figure` of Chinchilla's form and of the best refit (``best``: a row with rd_star, rn_star)."""
    label = f"refit: R_D* = {best.rd_star:.3g}, R_N* = {best.rn_star:.3g}"
    return reference_fit_figure(runs, {"Chinchilla (D = tokens)": PAPER_C4.chinchilla(),
                                       label: PAPER_C4.with_decay(best.rd_star, best.rn_star)})
