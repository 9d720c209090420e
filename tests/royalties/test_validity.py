"""The royalties data checks' rules (assets.royalties.validity) on a small additive game: every rule passes the
game's own tables and fails the table doctored the way it guards against."""

import numpy as np
import pandas as pd
import pytest

from assets.royalties import validity
from assets.royalties.royalty_shares import coalition_values_frame, revenue_split, shapley_frame
from assets.royalties.shapley import all_coalitions
from resources.validation import expectations, gx_check, validate_frame

OWNERS = ["owner_1", "owner_2"]


@pytest.fixture(scope="module")
def game():
    """Two owners, two pieces, one seed; v(S) adds the members' contributions, so the shares are known."""
    contributions, base = np.array([[3.0, 1.0], [1.0, 2.0]]), np.array([-20.0, -15.0])
    lls = {s: base + sum((contributions[OWNERS.index(o)] for o in s), np.zeros_like(base))
           for s in all_coalitions(OWNERS)}
    values = coalition_values_frame(0, ["p0", "p1"], OWNERS, lls)
    pieces = pd.DataFrame({"piece_id": ["p0", "p1"], "kind": ["generated", "held_out"], "text": ["a b", "c"],
                           "n_tokens": [3, 2], "source_owner": OWNERS})
    shapley, _, _ = shapley_frame(values, pieces, OWNERS, max_permutations=20)
    return pieces, values, shapley


def passes(rules) -> bool:
    return gx_check(*rules, name="royalties_table").passed


def test_every_check_is_described():
    assert set(validity.DESCRIPTIONS) == {"pieces_valid", "coalition_values_valid", "shapley_valid",
                                          "revenue_split_valid"}


def test_pieces_rules(game):
    pieces, gxe = game[0], expectations()
    assert passes(validity.pieces(gxe, pieces, context_length=4))
    assert not passes(validity.pieces(gxe, pieces, context_length=3))  # a piece fills the whole context
    assert not passes(validity.pieces(gxe, pieces.assign(kind=["generated", "copied"]), context_length=4))
    assert not passes(validity.pieces(gxe, pieces.assign(piece_id="p0"), context_length=4))


def test_coalition_values_rules(game):
    values, gxe = game[1], expectations()
    assert passes(validity.coalition_values(gxe, values, n_owners=2))
    assert not passes(validity.coalition_values(gxe, values, n_owners=1))  # a coalition larger than the game
    assert not passes(validity.coalition_values(gxe, values.assign(log_likelihood=1.0), n_owners=2))
    assert validity.coalition_values_hold(values) == (True, {"empty_coalition_value_is_zero": True})
    shifted = values.assign(value=values["value"] + 0.5)  # v({}) != 0
    assert validity.coalition_values_hold(shifted) == (False, {"empty_coalition_value_is_zero": False})


def test_shapley_rules(game):
    _, values, shapley = game
    gxe = expectations()
    assert passes(validity.shapley(gxe, shapley, OWNERS))
    assert not passes(validity.shapley(gxe, shapley, OWNERS[:1]))  # an owner outside the game
    assert not passes(validity.shapley(gxe, shapley.assign(royalty_share=1.5), OWNERS))
    holds, numbers = validity.shapley_holds(shapley, values, OWNERS)
    assert holds and numbers["shares_sum_to_one_or_zero"] and numbers["max_efficiency_gap"] < 1e-9
    inefficient = shapley.assign(phi=shapley["phi"] + 0.1)  # sum_i phi_i != v(N) - v({})
    holds, numbers = validity.shapley_holds(inefficient, values, OWNERS)
    assert not holds and numbers["max_efficiency_gap"] == pytest.approx(0.2)
    assert not validity.shapley_holds(shapley.assign(royalty_share=0.4), values, OWNERS)[0]  # shares sum to 0.8


def test_revenue_split_rules(game):
    split, gxe = revenue_split(game[2]), expectations()
    assert passes(validity.revenue_split(gxe, split))
    assert not passes(validity.revenue_split(gxe, split.assign(revenue=-1.0)))
    assert validity.revenue_split_holds(split) == (True, {"split_adds_up": True})
    assert not validity.revenue_split_holds(split.assign(revenue_share=split["revenue_share"] / 2))[0]


def test_a_missing_share_or_revenue_fails_its_check(game):
    split, shapley, gxe = revenue_split(game[2]), game[2], expectations()

    def failed(rules):
        return [o["expectation"] for o in validate_frame(*rules, name="t")[1] if not o["success"]]

    assert failed(validity.shapley(gxe, shapley.assign(royalty_share=np.nan), OWNERS)) == [
        "expect_column_values_to_not_be_null(column='royalty_share')"]
    broken = split.assign(revenue=np.nan, revenue_share=np.nan)
    assert failed(validity.revenue_split(gxe, broken)) == [
        "expect_column_values_to_not_be_null(column='revenue')",
        "expect_column_values_to_not_be_null(column='revenue_share')"]
