"""Data-quality checks (Great Expectations plus the game's invariants) on the royalties tables."""

import math

import dagster as dg
import pandas as pd

from resources.validation import expectations, gx_check


def pieces_check(pieces: pd.DataFrame, context_length: int) -> dg.AssetCheckResult:
    gxe = expectations()
    return gx_check(pieces, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeUnique(column="piece_id"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=["generated", "neutral", "held_out"]),
        gxe.ExpectColumnValuesToBeBetween(column="n_tokens", min_value=1, max_value=context_length - 1),
    ], name="royalties_pieces", asset_key=dg.AssetKey("royalties_pieces"), check_name="pieces_valid")


def values_check(values: pd.DataFrame, n_owners: int) -> dg.AssetCheckResult:
    gxe = expectations()
    result = gx_check(values, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="value"),
        gxe.ExpectColumnValuesToBeBetween(column="log_likelihood", max_value=0.0),
        gxe.ExpectColumnValuesToBeBetween(column="n_members", min_value=0, max_value=n_owners),
    ], name="royalties_coalition_values", check_name="coalition_values_valid")
    empty = values.loc[values["coalition"] == "{}", "value"]
    base_ok = len(empty) > 0 and float(empty.abs().max()) == 0.0
    return dg.AssetCheckResult(asset_key="royalties_coalition_values", check_name="coalition_values_valid",
                               passed=bool(result.passed and base_ok),
                               metadata={**result.metadata, "empty_coalition_value_is_zero": base_ok})


def shapley_check(shapley: pd.DataFrame, values: pd.DataFrame, owners: list[str]) -> dg.AssetCheckResult:
    from assets.royalties.royalties import shares_and_efficiency

    gxe = expectations()
    result = gx_check(shapley, [
        gxe.ExpectColumnValuesToNotBeNull(column="phi"),
        gxe.ExpectColumnValuesToBeBetween(column="royalty_share", min_value=0.0, max_value=1.0),
        gxe.ExpectColumnValuesToBeInSet(column="owner", value_set=owners),
    ], name="royalties_shapley", check_name="shapley_valid")
    share_ok, gap = shares_and_efficiency(shapley, values, owners)
    efficient = bool(math.isfinite(gap) and gap < 1e-6 * max(1.0, float(values["value"].abs().max())))
    return dg.AssetCheckResult(asset_key="royalties_shapley", check_name="shapley_valid",
                               passed=bool(result.passed and share_ok and efficient),
                               metadata={**result.metadata, "shares_sum_to_one_or_zero": share_ok,
                                         "max_efficiency_gap": gap})
