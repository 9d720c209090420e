"""Figures of the royalties study: shares per piece grouped by the prompted owner, and Monte Carlo convergence."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def shares_plot(shapley: pd.DataFrame, owners: list[str], seed: int) -> Any:
    """Stacked royalty shares of each piece (one bar per piece), one panel per source (the owner whose style was
    prompted, whose data a neutral piece copies, or whose document was held out); rows: generated pieces,
    neutral-prompt pieces, held-out documents."""
    plt = _pyplot()
    table = shapley[shapley["seed"] == seed]
    sources = list(dict.fromkeys([*owners, *sorted(table["source_owner"].unique())]))
    sources = [s for s in sources if s in set(table["source_owner"])]
    kinds = [k for k in ("generated", "neutral", "held_out") if k in set(table["kind"])]
    colours = {o: plt.cm.tab10(i % 10) for i, o in enumerate(owners)}
    fig, axes = plt.subplots(len(kinds), len(sources), figsize=(2.6 * len(sources) + 1, 2.6 * len(kinds)),
                             squeeze=False, sharey=True)
    for r, kind in enumerate(kinds):
        for c, source in enumerate(sources):
            ax = axes[r][c]
            sub = table[(table["kind"] == kind) & (table["source_owner"] == source)]
            if sub.empty:
                ax.axis("off")
                continue
            wide = sub.pivot(index="piece_id", columns="owner", values="royalty_share").reindex(columns=owners)
            bottom = np.zeros(len(wide))
            for owner in owners:
                ax.bar(range(len(wide)), wide[owner].to_numpy(), bottom=bottom, color=colours[owner],
                       label=owner if (r, c) == (0, 0) else None)
                bottom += wide[owner].fillna(0).to_numpy()
            unpaid = int((wide.fillna(0).sum(axis=1) == 0).sum())
            ax.set_title(f"{kind}: {source or '(unattributed)'}" + (f" ({unpaid} unpaid)" if unpaid else ""), fontsize=9)
            ax.set_xticks([])
            ax.set_ylim(0, 1.02)
            if c == 0:
                ax.set_ylabel("royalty share")
    fig.legend(loc="upper center", ncol=len(owners), fontsize=8, bbox_to_anchor=(0.5, 1.06))
    fig.suptitle(f"royalty shares per piece, grouped by the source owner (seed {seed})", y=1.12, fontsize=10)
    fig.tight_layout()
    return fig


def convergence_plot(history: pd.DataFrame, shapley: pd.DataFrame, piece_ids: list[str], seed: int) -> Any:
    """Running Monte Carlo estimate of each owner's Shapley value (±2 standard errors) against the number of
    permutations, for a few pieces; dashed lines are the exact values where they were computed."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(piece_ids), figsize=(3.6 * len(piece_ids), 3.2), squeeze=False)
    for ax, piece in zip(axes[0], piece_ids, strict=True):
        h = history[(history["seed"] == seed) & (history["piece_id"] == piece)]
        exact = shapley[(shapley["seed"] == seed) & (shapley["piece_id"] == piece)].set_index("owner")["phi_exact"]
        for i, (owner, g) in enumerate(h.groupby("player", sort=True)):
            colour = plt.cm.tab10(i % 10)
            ax.plot(g["n_permutations"], g["estimate"], color=colour, label=owner)
            ax.fill_between(g["n_permutations"], g["estimate"] - 2 * g["standard_error"],
                            g["estimate"] + 2 * g["standard_error"], color=colour, alpha=0.2)
            if owner in exact and np.isfinite(exact[owner]):
                ax.axhline(exact[owner], color=colour, linestyle="--", linewidth=0.8)
        ax.set(title=piece, xlabel="permutations", ylabel="Shapley value (nats)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig
