"""From coalition values to royalties: Shapley values and shares per piece, the revenue split, and the
numbers the findings compare with the paper (does the prompted owner, or the owner whose data a neutral-prompt
piece copies, get the largest share? are shares stable across seeds?).

Tables (long format, one row per seed and piece and coalition/owner):
- coalition values: seed, piece_id, coalition, n_members, log_likelihood, value
- Shapley: seed, piece_id, kind, source_owner, owner, phi_exact, phi_monte_carlo, monte_carlo_se, phi,
  royalty_share, is_top_owner
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from assets.royalties.shapley import (
    coalition_key,
    exact_shapley,
    monte_carlo_shapley,
    parse_coalition,
    royalty_shares,
)

VALUE_COLUMNS = ["seed", "piece_id", "coalition", "n_members", "log_likelihood", "value"]
SHAPLEY_COLUMNS = ["seed", "piece_id", "kind", "source_owner", "owner", "phi_exact", "phi_monte_carlo",
                   "monte_carlo_se", "phi", "royalty_share", "is_top_owner"]


def coalition_values_frame(seed: int, piece_ids: Sequence[str], players: Sequence[str],
                           log_likelihoods: dict[frozenset[str], np.ndarray]) -> pd.DataFrame:
    """One row per (piece, coalition scored): the log-likelihood and v(S) = ll(S) - ll({})."""
    if frozenset() not in log_likelihoods:
        raise ValueError("log_likelihoods must include the empty coalition (the base model)")
    base = log_likelihoods[frozenset()]
    frames = []
    for coalition in sorted(log_likelihoods, key=lambda c: (len(c), coalition_key(c, players))):
        ll = log_likelihoods[coalition]
        frames.append(pd.DataFrame({"seed": seed, "piece_id": list(piece_ids),
                                    "coalition": coalition_key(coalition, players), "n_members": len(coalition),
                                    "log_likelihood": ll, "value": ll - base}))
    return pd.concat(frames, ignore_index=True)[VALUE_COLUMNS]


def value_lookup(values: pd.DataFrame, piece_ids: Sequence[str]):
    """A vector-valued game over `piece_ids` read from a coalition-values table of one seed.

    Asking for a coalition that was never scored raises KeyError naming it.
    """
    wide = values.pivot(index="coalition", columns="piece_id", values="value")[list(piece_ids)]
    table = {parse_coalition(k): row.to_numpy(dtype=np.float64) for k, row in wide.iterrows()}

    def value(coalition: frozenset[str]) -> np.ndarray:
        if coalition not in table:
            raise KeyError(f"coalition {sorted(coalition)} has no value in the table")
        return table[coalition]

    return value, len(table)


def shapley_frame(values: pd.DataFrame, pieces: pd.DataFrame, players: Sequence[str], *,
                  tolerance: float = 0.0, relative_tolerance: float = 0.01, min_permutations: int = 10,
                  max_permutations: int = 1000, check_every: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Shapley values and royalty shares per (seed, piece, owner), with the Monte Carlo run behind them.

    Exact values are computed when every coalition was scored; `phi` (what shares are made of) is the exact
    value then, the Monte Carlo estimate otherwise. The Monte Carlo run of training seed s uses permutation
    seed s (as `game.play_game` does, so it asks only for coalitions that were trained). Returns (shapley table, Monte Carlo history, Monte Carlo
    summary per seed).
    """
    players = list(players)
    piece_ids = pieces["piece_id"].tolist()
    meta = pieces.set_index("piece_id")[["kind", "source_owner"]]
    frames, histories, summaries = [], [], []
    for seed, seed_values in values.groupby("seed", sort=True):
        value, n_scored = value_lookup(seed_values, piece_ids)
        complete = n_scored == 2 ** len(players)
        exact = exact_shapley(players, value) if complete else None
        mc = monte_carlo_shapley(players, value, seed=int(seed), tolerance=tolerance,
                                 relative_tolerance=relative_tolerance, min_permutations=min_permutations,
                                 max_permutations=max_permutations, check_every=check_every)
        phi = exact if exact is not None else mc.phi  # (n_players, n_pieces)
        shares = royalty_shares(phi, axis=0)
        top = _top_mask(shares)
        frame = pd.DataFrame({
            "seed": int(seed),
            "piece_id": np.tile(piece_ids, len(players)),
            "owner": np.repeat(players, len(piece_ids)),
            "phi_exact": (exact if exact is not None else np.full_like(phi, np.nan)).ravel(),
            "phi_monte_carlo": mc.phi.ravel(),
            "monte_carlo_se": mc.standard_error.ravel(),
            "phi": phi.ravel(),
            "royalty_share": shares.ravel(),
            "is_top_owner": top.ravel(),
        })
        frame = frame.join(meta, on="piece_id")
        frames.append(frame)
        history = mc.history.assign(seed=int(seed), piece_id=np.asarray(piece_ids)[mc.history["item"].to_numpy()])
        histories.append(history.drop(columns="item"))
        max_error = float(np.max(np.abs(mc.phi - exact))) if exact is not None else float("nan")
        summaries.append({"seed": int(seed), "n_permutations": mc.n_permutations, "converged": mc.converged,
                          "coalitions_visited": mc.n_coalitions, "coalitions_total": 2 ** len(players),
                          "exact_available": complete, "max_abs_error_vs_exact": max_error,
                          "max_standard_error": float(np.max(mc.standard_error))})
    table = pd.concat(frames, ignore_index=True)[SHAPLEY_COLUMNS]
    history_cols = ["seed", "piece_id", "player", "n_permutations", "estimate", "standard_error"]
    return table, pd.concat(histories, ignore_index=True)[history_cols], pd.DataFrame(summaries)


def _top_mask(shares: np.ndarray) -> np.ndarray:
    """True for the owner with the largest share of each piece (column); none when every share is 0.
    Ties go to the first owner in order, so at most one owner per piece is the top owner."""
    top = np.zeros_like(shares, dtype=bool)
    best = shares.argmax(axis=0)
    paid = shares.max(axis=0) > 0
    top[best[paid], np.flatnonzero(paid)] = True
    return top


def top_owner_fraction(shapley: pd.DataFrame, kind: str | None = None) -> pd.DataFrame:
    """Per seed: the fraction of owner-sourced pieces whose source owner receives the largest share."""
    table = shapley[shapley["source_owner"] == shapley["owner"]]
    if kind is not None:
        table = table[table["kind"] == kind]
    return (table.groupby("seed")["is_top_owner"].agg(["mean", "size"])
            .rename(columns={"mean": "fraction", "size": "n_pieces"}).reset_index())


def seed_stability(shapley: pd.DataFrame) -> dict[str, float]:
    """How much the shares move between seeds, over every pair of seeds and every piece.

    mean_abs_share_difference: mean over pieces and owners of |share(seed a) - share(seed b)|;
    top_owner_agreement: fraction of owner-sourced pieces (the source is one of the owners: public-control
    pieces and neutral pieces attributed to no owner are left out) whose top owner is the same under both
    seeds, over the pieces paid under at least one of the two (two "nobody" results are not an agreement);
    NaN when no piece counts; n_agreement_pieces: how many pieces that is (the first pair of seeds);
    share_correlation: Pearson correlation of the shares.
    """
    seeds = sorted(shapley["seed"].unique())
    if len(seeds) < 2:
        return {"n_seeds": len(seeds), "mean_abs_share_difference": float("nan"),
                "top_owner_agreement": float("nan"), "n_agreement_pieces": 0, "share_correlation": float("nan")}
    wide = shapley.pivot_table(index=["piece_id", "owner"], columns="seed", values="royalty_share")
    pieces = wide.index.get_level_values("piece_id").unique()
    tops = (shapley[shapley["is_top_owner"]].pivot(index="piece_id", columns="seed", values="owner")
            .reindex(index=pieces, columns=seeds))
    owner_sourced = shapley.groupby("piece_id")["source_owner"].first().reindex(pieces).isin(set(shapley["owner"]))
    diffs, agreements, counted, correlations = [], [], [], []
    for i, a in enumerate(seeds):
        for b in seeds[i + 1:]:
            diffs.append(float((wide[a] - wide[b]).abs().mean()))
            paid = owner_sourced & (tops[a].notna() | tops[b].notna())
            agreements.append(float((tops.loc[paid, a] == tops.loc[paid, b]).mean()) if paid.any() else float("nan"))
            counted.append(int(paid.sum()))
            correlations.append(float(np.corrcoef(wide[a], wide[b])[0, 1]))
    return {"n_seeds": len(seeds), "mean_abs_share_difference": float(np.mean(diffs)),
            "top_owner_agreement": float(np.mean(agreements)), "n_agreement_pieces": counted[0],
            "share_correlation": float(np.mean(correlations))}


def revenue_split(shapley: pd.DataFrame, revenue_per_piece: float = 1.0) -> pd.DataFrame:
    """The revenue of a batch of pieces split among owners by royalty share, per seed and piece kind.

    Each piece earns `revenue_per_piece`; owners get revenue * share; what no owner is owed (pieces with no
    positive Shapley value) is reported as owner "(unpaid)". Columns: seed, kind, owner, n_pieces,
    revenue, revenue_share (of the batch's revenue), top_owner_pieces, prompted_pieces.
    """
    if not revenue_per_piece > 0:
        raise ValueError(f"revenue_per_piece must be > 0, got {revenue_per_piece!r}")
    rows = []
    for (seed, kind), group in shapley.groupby(["seed", "kind"], sort=True):
        n_pieces = group["piece_id"].nunique()
        batch = n_pieces * revenue_per_piece
        paid = 0.0
        for owner, g in group.groupby("owner", sort=True):
            revenue = float(g["royalty_share"].sum() * revenue_per_piece)
            paid += revenue
            rows.append({"seed": int(seed), "kind": kind, "owner": owner, "n_pieces": n_pieces, "revenue": revenue,
                         "revenue_share": revenue / batch, "top_owner_pieces": int(g["is_top_owner"].sum()),
                         "prompted_pieces": int(g.loc[g["source_owner"] == owner, "piece_id"].nunique())})
        rows.append({"seed": int(seed), "kind": kind, "owner": "(unpaid)", "n_pieces": n_pieces,
                     "revenue": max(batch - paid, 0.0), "revenue_share": max(batch - paid, 0.0) / batch,
                     "top_owner_pieces": 0, "prompted_pieces": 0})
    return pd.DataFrame(rows)


def headline_numbers(shapley: pd.DataFrame, pieces: pd.DataFrame) -> dict:
    """The numbers the findings report, from the Shapley table and the pieces.

    fraction_generated / fraction_held_out / fraction_neutral: mean over seeds of the fraction of
    owner-sourced pieces whose source owner gets the largest share (per_seed_* lists them per seed; for neutral
    pieces the source is the owner whose data the piece copies most, and pieces attributed to a non-owner or to
    no one are left out: neutral_sources counts them); owner_share: mean share of the prompted owner on
    generated pieces; pure_*: the same fraction split by whether the generated piece is wholly in the prompted
    owner's templates; attribution_agreement: the fraction of prompted pieces whose data attribution names the
    prompted owner; control_gain / owner_gain: mean v(N) - v({}) (= sum of phi) of pieces prompted in a
    non-owner's style and in an owner's style; plus `seed_stability`.
    """
    owners = set(shapley["owner"])
    generated = top_owner_fraction(shapley, "generated")
    held_out = top_owner_fraction(shapley, "held_out")
    neutral = top_owner_fraction(shapley, "neutral")
    own = shapley[(shapley["source_owner"] == shapley["owner"]) & (shapley["kind"] == "generated")]
    own = own.merge(pieces[["piece_id", "prompted_style_fraction"]], on="piece_id")
    pure = own["prompted_style_fraction"] == 1.0
    gain = shapley.groupby(["seed", "piece_id", "kind", "source_owner"])["phi"].sum().reset_index()
    prompted = gain["kind"] == "generated"
    control = prompted & ~gain["source_owner"].isin(owners)
    neutral_pieces = pieces[pieces["kind"] == "neutral"]
    prompted_owned = pieces[(pieces["kind"] == "generated") & pieces["source_owner"].isin(owners)]
    agreement = (prompted_owned["attributed_source"] == prompted_owned["source_owner"]
                 if "attributed_source" in pieces else pd.Series(dtype=bool))

    def mean(series: pd.Series) -> float:
        return float(series.mean()) if len(series) else float("nan")

    sources = neutral_pieces["source_owner"].map(lambda s: s if s in owners else ("(none)" if not s else "non-owner"))
    return {
        "fraction_generated": mean(generated["fraction"]), "fraction_held_out": mean(held_out["fraction"]),
        "fraction_neutral": mean(neutral["fraction"]), "per_seed_generated": generated.to_dict("records"),
        "per_seed_neutral": neutral.to_dict("records"), "per_seed_held_out": held_out.to_dict("records"),
        "n_neutral": len(neutral_pieces),
        "n_neutral_owner_sourced": int(neutral_pieces["source_owner"].isin(owners).sum()),
        "neutral_sources": {k: int(v) for k, v in sources.value_counts().sort_index().items()},
        "neutral_copied_words": mean(neutral_pieces.get("copied_words", pd.Series(dtype=float))),
        "attribution_agreement": mean(agreement),
        "owner_share": mean(own["royalty_share"]),
        "sentence_limit": int(pieces.loc[pieces["kind"] != "held_out", "sentence_limit"].max()),
        "pure_pieces": mean(pure), "mean_style_fraction": mean(own["prompted_style_fraction"]),
        "fraction_pure": mean(own.loc[pure, "is_top_owner"]), "fraction_impure": mean(own.loc[~pure, "is_top_owner"]),
        "control_gain": mean(gain.loc[control, "phi"]),
        "owner_gain": mean(gain.loc[prompted & ~control, "phi"]),
        **seed_stability(shapley),
    }


def shares_and_efficiency(shapley: pd.DataFrame, values: pd.DataFrame, players: Sequence[str]) -> tuple[bool, float]:
    """(every piece's shares sum to 1, or to 0 when no owner is owed; the largest |sum_i phi_i - v(N)| over
    seeds and pieces, NaN if v(N) is missing)."""
    per_piece = shapley.groupby(["seed", "piece_id"]).agg(share=("royalty_share", "sum"), phi=("phi", "sum"))
    share_ok = bool(np.all(np.isclose(per_piece["share"], 1.0) | np.isclose(per_piece["share"], 0.0)))
    total = values[values["coalition"] == coalition_key(players, players)].set_index(["seed", "piece_id"])["value"]
    gap = float((per_piece["phi"] - total.reindex(per_piece.index)).abs().max())
    return share_ok, gap
