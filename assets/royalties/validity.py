"""The rules the royalties study's data checks hold its tables to: one function per table, returning the table
the rules read and its Great Expectations rules, plus the rules GX does not express (v({}) = 0, every piece's
shares adding up, efficiency, the revenue split adding up), each as (all hold, their numbers).

``gxe`` is the ``great_expectations.expectations`` module, passed in by the Dagster side (which imports it
lazily, with GX's usage statistics off), so this module stays free of the platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from assets.royalties.options import efficient, empty_coalition_value_is_zero, revenue_adds_up
from assets.royalties.royalty_shares import shares_and_efficiency

PIECE_KINDS = ["generated", "neutral", "held_out"]
"""Where a piece comes from: prompted in an owner's style, sampled from the neutral prompt, or held out."""

DESCRIPTIONS = {
    "pieces_valid": "ids unique, no empty piece, kinds generated/neutral/held_out, token counts within context, "
                    "none missing",
    "coalition_values_valid": "log-likelihoods finite and <= 0, v({}) = 0, coalition sizes in range, none missing",
    "shapley_valid": "shares in [0, 1] summing to 1 (or 0 when no owner is owed), efficiency "
                     "sum_i phi_i = v(N) - v({}), none missing",
    "revenue_split_valid": "revenue non-negative; per seed and kind the split adds up to the batch revenue, none "
                           "missing",
}
"""What each data check of the study holds its table to, by check name (the check specs' descriptions)."""


def pieces(gxe: Any, table: pd.DataFrame, context_length: int) -> tuple[pd.DataFrame, list]:
    """At least one piece, ids unique, no empty text, known kinds, every piece's tokens fit the context (one
    position is left for the next token the coalition models score)."""
    return table, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeUnique(column="piece_id"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=PIECE_KINDS),
        gxe.ExpectColumnValuesToBeBetween(column="n_tokens", min_value=1, max_value=context_length - 1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("text", "kind", "n_tokens")],
    ]


def coalition_values(gxe: Any, table: pd.DataFrame, n_owners: int) -> tuple[pd.DataFrame, list]:
    """At least one value, log-likelihoods <= 0, coalition sizes between 0 and ``n_owners``, none missing."""
    return table, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="value"),
        gxe.ExpectColumnValuesToBeBetween(column="log_likelihood", max_value=0.0),
        gxe.ExpectColumnValuesToBeBetween(column="n_members", min_value=0, max_value=n_owners),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("log_likelihood", "n_members")],
    ]


def coalition_values_hold(values: pd.DataFrame) -> tuple[bool, dict]:
    """The values' rule beyond GX, (it holds, its number): v({}) = 0 on every piece."""
    base_ok = empty_coalition_value_is_zero(values)
    return base_ok, {"empty_coalition_value_is_zero": base_ok}


def shapley(gxe: Any, table: pd.DataFrame, owners: Sequence[str]) -> tuple[pd.DataFrame, list]:
    """Every phi and share defined, royalty shares in [0, 1], only the game's owners (a piece no owner is owed
    has shares 0, not NaN: see shapley.royalty_shares)."""
    return table, [
        gxe.ExpectColumnValuesToNotBeNull(column="phi"),
        gxe.ExpectColumnValuesToBeBetween(column="royalty_share", min_value=0.0, max_value=1.0),
        gxe.ExpectColumnValuesToBeInSet(column="owner", value_set=list(owners)),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("royalty_share", "owner")],
    ]


def shapley_holds(shapley: pd.DataFrame, values: pd.DataFrame, owners: Sequence[str]) -> tuple[bool, dict]:
    """The Shapley table's rules beyond GX, (all hold, their numbers): every piece's shares sum to 1 (or 0 when
    no owner is owed) and the values are efficient, sum_i phi_i = v(N) - v({})."""
    share_ok, gap = shares_and_efficiency(shapley, values, owners)
    return bool(share_ok and efficient(gap, values)), {"shares_sum_to_one_or_zero": share_ok,
                                                       "max_efficiency_gap": gap}


def revenue_split(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Revenue non-negative, revenue shares in [0, 1], every row paid to an owner (or "(unpaid)"), none
    missing."""
    return table, [
        gxe.ExpectColumnValuesToBeBetween(column="revenue", min_value=0.0),
        gxe.ExpectColumnValuesToBeBetween(column="revenue_share", min_value=0.0, max_value=1.0),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("owner", "revenue", "revenue_share")],
    ]


def revenue_split_holds(split: pd.DataFrame) -> tuple[bool, dict]:
    """The split's rule beyond GX, (it holds, its number): per seed and piece kind the shares add up to the
    whole batch."""
    adds_up = revenue_adds_up(split)
    return adds_up, {"split_adds_up": adds_up}
