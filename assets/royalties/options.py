"""The royalties game's settings as its science takes them, and the numbers the Dagster side shows.

`RoyaltiesGameConfig` (in defs.py) holds the launchpad's fields; the functions here read them (any object with
those attributes will do) into what `assets.royalties.coalition_runs.play_tracked_game` wants: the estimator,
how every coalition model trains, the Monte Carlo stopping rule and the pieces' settings. The rest are the
small computations behind the assets' metadata and checks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from assets.lm.config import train_config

# the game's tables (outputs of one multi-asset) and what each holds: their descriptions in the UI
GAME_OUTS = {
    "royalties_pieces": "The pieces whose revenue is shared: generated (prompted in each owner's style), neutral "
                        "(one prompt for all, attributed by the training data they copy) and held-out real documents.",
    "royalties_coalition_values": "v(S)(x) = log p_{base+S}(x) - log p_base(x) for every coalition S scored and "
                                  "piece x, per seed.",
    "royalties_coalition_models": "One row per coalition model trained: its data, loss, time and MLflow run.",
    "royalties_shapley": "Shapley values (exact and Monte Carlo) and royalty shares per seed, piece and owner.",
    "royalties_mc_convergence": "Running Monte Carlo Shapley estimates and standard errors per permutation count.",
    "royalties_estimators": "Per seed: estimator used, coalitions trained, Monte Carlo permutations, coalitions "
                            "visited and error against the exact values.",
}


def estimator_for(settings: Any, n_owners: int) -> str:
    """The estimator the game uses: the configured one, or for 'auto' exact up to exact_max_owners owners."""
    if settings.estimator != "auto":
        return settings.estimator
    return "exact" if n_owners <= settings.exact_max_owners else "monte_carlo"


def coalition_training(settings: Any, compute: Any, base_record: dict):
    """How every coalition model trains: from the base model (or from scratch, at its size)."""
    from assets.lm.model import ModelSize
    from assets.royalties.coalitions import CoalitionTraining

    scratch = settings.coalition_init == "scratch"
    steps = settings.scratch_steps if scratch else settings.finetune_steps
    return CoalitionTraining(  # compiling each short coalition run would cost more than it saves
        train=train_config(settings, compute, max_steps=steps, warmup_steps=min(settings.warmup_steps, steps),
                           eval_interval=steps, eval_batches=1, compile=False),
        init=settings.coalition_init, base_authors=(base_record["base_author"],),
        model_size=ModelSize(**base_record["model_size"]) if scratch else None)


def mc_options(settings: Any) -> dict:
    """`assets.royalties.shapley.monte_carlo_shapley`'s stopping rule."""
    return {"tolerance": settings.mc_tolerance, "relative_tolerance": settings.mc_relative_tolerance,
            "min_permutations": settings.mc_min_permutations, "max_permutations": settings.mc_max_permutations,
            "check_every": settings.mc_check_every}


def piece_options(settings: Any, base_author: str) -> dict:
    """`assets.royalties.pieces.build_pieces`' settings."""
    return {"n_generated_per_owner": settings.n_generated_per_owner,
            "n_held_out_per_owner": settings.n_held_out_per_owner,
            "prompt_words": settings.prompt_words, "max_new_tokens": settings.max_new_tokens,
            "piece_sentences": settings.piece_sentences, "temperature": settings.temperature, "seed": settings.seed,
            "control_authors": [base_author] if settings.public_control else [],
            "n_neutral": settings.n_neutral_pieces, "base_authors": [base_author]}


def game_options(settings: Any, compute: Any, base_record: dict, n_owners: int) -> dict:
    """`play_tracked_game`'s keyword settings: the estimator, coalition training, Monte Carlo stopping rule and
    the pieces' settings."""
    return {"estimator": estimator_for(settings, n_owners), "training": coalition_training(settings, compute, base_record),
            "mc_options": mc_options(settings), "piece_options": piece_options(settings, base_record["base_author"])}


def base_corpus(documents: pd.DataFrame, base_author: str, seed: int) -> tuple[list[str], list[str]]:
    """The base model's train and validation texts: the base author's documents alone (a clear error when
    that author wrote none)."""
    from assets.royalties.coalitions import coalition_texts

    if base_author not in set(documents["author"]):
        raise ValueError(f"base_author={base_author!r} wrote no documents; authors: "
                         f"{sorted(documents['author'].unique())}")
    return (coalition_texts(documents, frozenset(), [base_author], "train", seed=seed),
            coalition_texts(documents, frozenset(), [base_author], "validation"))


def prompted_owner_on_top(shapley: pd.DataFrame) -> dict[str, float]:
    """Per piece kind, how often the owner a piece came from gets the largest Shapley value."""
    owner_pieces = shapley[shapley["owner"] == shapley["source_owner"]]
    return owner_pieces.groupby("kind")["is_top_owner"].mean().to_dict()


def shown_pieces(pieces: pd.DataFrame, n: int = 4) -> list[str]:
    """Up to n generated pieces, one per source owner, whose Monte Carlo convergence the plot shows."""
    return pieces[pieces["kind"] == "generated"].drop_duplicates("source_owner")["piece_id"].head(n).tolist()


def game_scale(shapley: pd.DataFrame, estimators: pd.DataFrame) -> str:
    """The scale the findings were measured at: owners, pieces, seeds and coalition models trained."""
    return (f"{shapley['owner'].nunique()} owners, {shapley['piece_id'].nunique()} pieces, "
            f"{shapley['seed'].nunique()} training seeds, {int(estimators['coalitions_trained'].sum())} "
            "coalition models")


def empty_coalition_value_is_zero(values: pd.DataFrame) -> bool:
    """v({}) = 0 exactly on every piece (the empty coalition's model is the base model)."""
    empty = values.loc[values["coalition"] == "{}", "value"]
    return bool(len(empty) > 0 and float(empty.abs().max()) == 0.0)


def efficient(gap: float, values: pd.DataFrame) -> bool:
    """sum_i phi_i = v(N) - v({}) up to a relative 1e-6 of the largest |v|: `gap` is the largest violation."""
    return bool(math.isfinite(gap) and gap < 1e-6 * max(1.0, float(values["value"].abs().max())))


def revenue_adds_up(split: pd.DataFrame) -> bool:
    """Per seed and piece kind the revenue shares add up to the whole batch."""
    return bool(np.allclose(split.groupby(["seed", "kind"])["revenue_share"].sum(), 1.0))
