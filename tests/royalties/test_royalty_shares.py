"""From coalition values to shares, revenue and the findings' numbers, on games with known answers."""

import numpy as np
import pandas as pd
import pytest

from assets.royalties.royalty_shares import (
    coalition_values_frame,
    revenue_split,
    seed_stability,
    shapley_frame,
    top_owner_fraction,
    value_lookup,
)
from assets.royalties.shapley import all_coalitions

OWNERS = ["owner_1", "owner_2", "owner_3"]


def additive_values(seed: int, contributions: np.ndarray, base: np.ndarray) -> pd.DataFrame:
    """An additive game per piece: v(S) = sum of members' contributions, so phi_i = contribution_i exactly."""
    lls = {s: base + sum((contributions[OWNERS.index(o)] for o in s), np.zeros_like(base))
           for s in all_coalitions(OWNERS)}
    return coalition_values_frame(seed, ["p0", "p1", "p2"], OWNERS, lls)


@pytest.fixture
def game():
    # pieces p0, p1 are owner_1's and owner_2's style; p2 is nobody's (every contribution negative)
    contributions = np.array([[5.0, 1.0, -1.0], [1.0, 4.0, -2.0], [0.5, -0.5, -0.5]])
    base = np.array([-30.0, -25.0, -20.0])
    values = pd.concat([additive_values(0, contributions, base), additive_values(1, contributions * 1.1, base)])
    pieces = pd.DataFrame({"piece_id": ["p0", "p1", "p2"], "kind": ["generated", "generated", "held_out"],
                           "source_owner": ["owner_1", "owner_2", "owner_3"]})
    return values, pieces, contributions


def test_values_frame(game):
    values, _, _ = game
    assert len(values) == 2 * 8 * 3
    assert (values.loc[values["coalition"] == "{}", "value"] == 0).all()
    row = values[(values["seed"] == 0) & (values["coalition"] == "{owner_1,owner_3}") & (values["piece_id"] == "p0")]
    assert row["value"].item() == pytest.approx(5.5) and row["log_likelihood"].item() == pytest.approx(-24.5)


def test_shapley_frame_recovers_an_additive_game(game):
    values, pieces, contributions = game
    table, history, summary = shapley_frame(values, pieces, OWNERS, max_permutations=50)
    seed0 = table[table["seed"] == 0].pivot(index="owner", columns="piece_id", values="phi_exact").loc[OWNERS]
    np.testing.assert_allclose(seed0.to_numpy(), contributions, atol=1e-12)
    # additive games have zero-variance marginals: Monte Carlo is exact and stops at min_permutations
    np.testing.assert_allclose(table["phi_monte_carlo"], table["phi_exact"], atol=1e-9)
    assert summary["converged"].all() and (summary["n_permutations"] == 10).all()
    shares = table[table["seed"] == 0].pivot(index="owner", columns="piece_id", values="royalty_share").loc[OWNERS]
    np.testing.assert_allclose(shares["p0"], np.array([5.0, 1.0, 0.5]) / 6.5)
    np.testing.assert_allclose(shares["p1"], [0.2, 0.8, 0.0])  # owner_3's negative phi clipped at 0
    np.testing.assert_allclose(shares["p2"], 0.0)  # nobody helped: nothing owed
    tops = table[table["is_top_owner"]].groupby(["seed", "piece_id"])["owner"].first()
    assert tops[(0, "p0")] == "owner_1" and tops[(0, "p1")] == "owner_2" and (0, "p2") not in tops
    assert set(history["piece_id"]) == {"p0", "p1", "p2"}


def test_top_owner_fraction_and_stability(game):
    values, pieces, _ = game
    table, _, _ = shapley_frame(values, pieces, OWNERS)
    gen = top_owner_fraction(table, "generated")
    assert gen["fraction"].tolist() == [1.0, 1.0] and gen["n_pieces"].tolist() == [2, 2]
    assert top_owner_fraction(table, "held_out")["fraction"].tolist() == [0.0, 0.0]  # p2 pays nobody
    stable = seed_stability(table)  # scaling all values by 1.1 leaves the shares unchanged
    assert stable["mean_abs_share_difference"] == pytest.approx(0.0, abs=1e-12)
    assert stable["top_owner_agreement"] == 1.0
    flipped = table.copy()
    flip = (flipped["seed"] == 1) & (flipped["piece_id"] == "p0")
    flipped.loc[flip, "is_top_owner"] = flipped.loc[flip, "owner"] == "owner_2"
    # p2 pays nobody under either seed: not an agreement, left out (it counted as one before the review)
    assert seed_stability(flipped)["top_owner_agreement"] == pytest.approx(1 / 2)
    assert seed_stability(flipped)["n_agreement_pieces"] == 2


def test_revenue_split_adds_up(game):
    values, pieces, _ = game
    table, _, _ = shapley_frame(values, pieces, OWNERS)
    split = revenue_split(table, revenue_per_piece=10.0)
    gen = split[(split["seed"] == 0) & (split["kind"] == "generated")].set_index("owner")
    assert gen.loc["owner_1", "revenue"] == pytest.approx(10 * (5 / 6.5 + 0.2))
    assert gen["revenue"].sum() == pytest.approx(20.0) and gen.loc["(unpaid)", "revenue"] == pytest.approx(0.0)
    held = split[(split["seed"] == 0) & (split["kind"] == "held_out")].set_index("owner")
    assert held.loc["(unpaid)", "revenue"] == pytest.approx(10.0)  # the piece nobody is owed for
    np.testing.assert_allclose(split.groupby(["seed", "kind"])["revenue_share"].sum(), 1.0)
    with pytest.raises(ValueError, match="revenue_per_piece"):
        revenue_split(table, 0.0)


def test_missing_coalition_is_named(game):
    values, pieces, _ = game
    partial = values[values["coalition"] != "{owner_2,owner_3}"]
    value, n = value_lookup(partial[partial["seed"] == 0], ["p0", "p1", "p2"])
    assert n == 7
    with pytest.raises(KeyError, match="owner_2"):
        value(frozenset({"owner_2", "owner_3"}))
    # without every coalition there is no exact value; Monte Carlo either finds all it needs or says which it lacks
    with pytest.raises(KeyError):
        shapley_frame(partial, pieces, OWNERS, max_permutations=200, min_permutations=50)


def test_headline_numbers(game):
    from assets.royalties.royalty_shares import headline_numbers

    values, pieces, _ = game
    table, _, _ = shapley_frame(values, pieces, OWNERS)
    pieces = pieces.assign(prompted_style_fraction=[1.0, 0.5, 1.0], sentence_limit=[1, 1, 0])
    h = headline_numbers(table, pieces)
    assert h["fraction_generated"] == 1.0 and h["fraction_held_out"] == 0.0 and h["sentence_limit"] == 1
    assert h["pure_pieces"] == 0.5 and h["fraction_pure"] == 1.0 and h["fraction_impure"] == 1.0
    assert h["owner_share"] == pytest.approx((5 / 6.5 + 0.8) / 2)
    assert h["owner_gain"] == pytest.approx(np.mean([6.5, 4.5, 6.5 * 1.1, 4.5 * 1.1]))
    assert np.isnan(h["control_gain"]) and h["top_owner_agreement"] == 1.0


def test_neutral_pieces_count_only_when_an_owner_is_their_source(game):
    """A neutral piece counts for its attributed owner; pieces attributed to a non-owner or to no one do not."""
    from assets.royalties.royalty_shares import headline_numbers

    values, pieces, _ = game
    pieces = pieces.assign(kind=["neutral", "neutral", "neutral"], source_owner=["owner_1", "public", ""],
                           attributed_source=["owner_1", "public", ""], copied_words=[4.0, 2.0, 1.0],
                           prompted_style_fraction=np.nan, sentence_limit=1)
    table, _, _ = shapley_frame(values, pieces, OWNERS)
    h = headline_numbers(table, pieces)
    assert h["fraction_neutral"] == 1.0 and h["per_seed_neutral"][0]["n_pieces"] == 1
    assert h["n_neutral"] == 3 and h["n_neutral_owner_sourced"] == 1 and h["neutral_sources"] == {"(none)": 1, "non-owner": 1, "owner_1": 1}
    assert h["neutral_copied_words"] == pytest.approx(7 / 3) and np.isnan(h["fraction_generated"])


def test_attribution_by_copied_words():
    from assets.royalties.pieces import attribute_source, copied_overlap, longest_shared_run, ngram_overlap

    corpora = {"a": "\n".join([" x y z w . ", " p q r . "]), "b": " y z w v . \n x y . "}
    assert longest_shared_run("x y z w v .".split(), corpora["a"]) == 4  # "x y z w"
    assert longest_shared_run("x y z w v .".split(), corpora["b"]) == 5  # "y z w v ."
    assert longest_shared_run(". p".split(), corpora["a"]) == 1  # runs never straddle two documents
    assert longest_shared_run("k".split(), corpora["a"]) == 0
    assert attribute_source("x y z w v .", corpora) == ("b", 5)
    assert attribute_source("p q r .", corpora) == ("a", 4)
    assert ngram_overlap("x y z k".split(), corpora["a"], 3) == 0.5 and np.isnan(ngram_overlap(["x"], corpora["a"], 2))
    assert copied_overlap("x y z k".split(), corpora["a"]) == pytest.approx((3 / 4 + 2 / 3 + 1 / 2) / 3)
    assert attribute_source("x y v", corpora) == ("b", 2)  # "v" is b's word: overlap decides, not the run
    assert attribute_source("x y", corpora) == ("", 2)  # tied on both measures: no source
    assert attribute_source("k l", corpora) == ("", 0)
