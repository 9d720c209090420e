"""Playing the royalties game: for each training seed, train the coalition models the estimator needs (every
coalition for the exact Shapley value, only those the permutations visit for Monte Carlo), each once, and
score the pieces under them. The pieces are sampled once, from the first seed's all-owners model."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from assets.royalties.coalitions import CoalitionCache
from assets.royalties.royalty_shares import coalition_values_frame
from assets.royalties.shapley import all_coalitions, monte_carlo_shapley

ESTIMATORS = ("exact", "monte_carlo")


@dataclass
class GameResult:
    """pieces: the scored batch; values: coalition values per seed (`royalties.VALUE_COLUMNS`); estimators: per
    seed the estimator, coalition models trained and seconds."""

    pieces: pd.DataFrame
    values: pd.DataFrame
    estimators: pd.DataFrame


def play_game(
    owners: Sequence[str],
    fit_for_seed: Callable[[int], Callable[[frozenset[str]], Any]],
    seeds: Sequence[int],
    make_pieces: Callable[[Any], pd.DataFrame],
    score: Callable[[Any, list[str]], np.ndarray],
    *,
    estimator: str = "exact",
    mc_options: dict | None = None,
) -> GameResult:
    """Train, sample and score (module docstring).

    fit_for_seed(seed) gives the `fit` of that seed's CoalitionCache (fit(frozenset()) must return the base
    model); make_pieces(all-owners fit result) samples the batch (a frame with piece_id and text);
    score(fit result, texts) gives one log-likelihood per text. mc_options are `monte_carlo_shapley`'s keyword
    arguments; with estimator "monte_carlo" the run with seed s uses permutation seed s.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if not seeds:
        raise ValueError("seeds must name at least one training seed")
    owners = list(owners)
    grand = frozenset(owners)
    pieces = None
    frames, rows = [], []
    for seed in seeds:
        started = time.perf_counter()
        cache = CoalitionCache(owners, fit_for_seed(seed))
        if pieces is None:
            pieces = make_pieces(cache.model(grand))
        texts = pieces["text"].tolist()

        def scorer(fitted, texts=texts):
            return score(fitted, texts)

        if estimator == "exact":
            for coalition in all_coalitions(owners):
                cache.log_likelihoods(coalition, scorer)
        else:  # only the coalitions the permutations visit are ever trained
            monte_carlo_shapley(owners, lambda s, c=cache, f=scorer: c.value(s, f), seed=seed, **(mc_options or {}))
        cache.release(grand)
        frames.append(coalition_values_frame(seed, pieces["piece_id"].tolist(), owners, cache.scored()))
        rows.append({"seed": seed, "estimator": estimator,
                     "coalitions_trained": sum(1 for key in cache.fit_order if key != "{}"),
                     "game_seconds": time.perf_counter() - started})
    return GameResult(pieces=pieces, values=pd.concat(frames, ignore_index=True), estimators=pd.DataFrame(rows))
