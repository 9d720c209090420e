"""The game's settings read from the Config, and the small numbers behind the royalties assets' checks."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from assets.royalties.options import (
    base_corpus,
    efficient,
    empty_coalition_value_is_zero,
    estimator_for,
    game_scale,
    mc_options,
    piece_options,
    prompted_owner_on_top,
    revenue_adds_up,
    shown_pieces,
)


def test_auto_estimator_is_exact_up_to_the_limit():
    auto = SimpleNamespace(estimator="auto", exact_max_owners=3)
    assert [estimator_for(auto, n) for n in (2, 3, 4)] == ["exact", "exact", "monte_carlo"]
    assert estimator_for(SimpleNamespace(estimator="monte_carlo", exact_max_owners=9), 2) == "monte_carlo"


def test_options_carry_the_config_fields():
    from assets.royalties.defs import RoyaltiesGameConfig

    cfg = RoyaltiesGameConfig(mc_tolerance=0.5, public_control=False, n_neutral_pieces=3)
    assert mc_options(cfg) == {"tolerance": 0.5, "relative_tolerance": cfg.mc_relative_tolerance,
                               "min_permutations": cfg.mc_min_permutations,
                               "max_permutations": cfg.mc_max_permutations, "check_every": cfg.mc_check_every}
    options = piece_options(cfg, "public")
    assert options["control_authors"] == [] and options["base_authors"] == ["public"] and options["n_neutral"] == 3
    assert piece_options(RoyaltiesGameConfig(), "public")["control_authors"] == ["public"]


def test_base_corpus_names_the_missing_author():
    documents = pd.DataFrame({"author": ["public", "owner_1"], "split": ["train", "validation"],
                              "text": ["a b", "c d"]})
    with pytest.raises(ValueError, match="base_author='nobody'.*owner_1"):
        base_corpus(documents, "nobody", 0)


def test_summaries_and_check_numbers():
    shapley = pd.DataFrame({"seed": [0, 0, 1, 1], "piece_id": ["p1", "p1", "p2", "p2"],
                            "owner": ["a", "b", "a", "b"], "source_owner": ["a", "a", "b", "b"],
                            "kind": ["generated", "generated", "held_out", "held_out"],
                            "is_top_owner": [True, False, False, True]})
    assert prompted_owner_on_top(shapley) == {"generated": 1.0, "held_out": 1.0}
    estimators = pd.DataFrame({"coalitions_trained": [3, 3]})
    assert game_scale(shapley, estimators) == "2 owners, 2 pieces, 2 training seeds, 6 coalition models"
    pieces = pd.DataFrame({"piece_id": ["x", "y", "z"], "kind": ["generated", "generated", "held_out"],
                           "source_owner": ["a", "a", "b"]})
    assert shown_pieces(pieces) == ["x"]

    values = pd.DataFrame({"coalition": ["{}", "{}", "{a}"], "value": [0.0, 0.0, -2.0]})
    assert empty_coalition_value_is_zero(values)
    assert not empty_coalition_value_is_zero(values.assign(value=[0.1, 0.0, -2.0]))
    assert not empty_coalition_value_is_zero(values.iloc[2:])
    assert efficient(1e-7, values) and not efficient(1e-5, values) and not efficient(math.nan, values)

    split = pd.DataFrame({"seed": [0, 0, 0], "kind": ["generated", "generated", "held_out"],
                          "revenue_share": [0.25, 0.75, 1.0]})
    assert revenue_adds_up(split) and not revenue_adds_up(split.assign(revenue_share=[0.25, 0.5, 1.0]))
