"""Data-quality checks (Great Expectations) on the scaling study's tables."""

import dagster as dg
import numpy as np
import pandas as pd

from resources.validation import expectations, gx_check


@dg.asset_check(asset="scaling_tokens", description="train chunks of equal size, a validation row, ids >= 0")
def scaling_tokens_valid(scaling_tokens: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    chunks = scaling_tokens.assign(min_id=scaling_tokens["tokens"].map(lambda t: int(np.min(t))),
                                   length=scaling_tokens["tokens"].map(len)).drop(columns=["tokens"])
    result = gx_check(chunks, [
        gxe.ExpectColumnDistinctValuesToEqualSet(column="split", value_set=["train", "validation"]),
        gxe.ExpectColumnValuesToBeBetween(column="min_id", min_value=0),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="length", column_B="n_tokens"),
    ], name="scaling_tokens")
    train_sizes = chunks.loc[chunks["split"] == "train", "n_tokens"].nunique()
    return dg.AssetCheckResult(passed=bool(result.passed and train_sizes == 1),
                               metadata={**result.metadata, "train_chunk_sizes": int(train_sizes)})


@dg.asset_check(asset="scaling_law_fit", description="every constant finite; R_D*, R_N* positive; intervals ordered")
def scaling_law_fit_valid(scaling_law_fit: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    decay = scaling_law_fit[scaling_law_fit["stage"] == "decay"]
    ordered = scaling_law_fit.dropna(subset=["ci_low", "ci_high"])
    result = gx_check(scaling_law_fit, [
        gxe.ExpectTableRowCountToEqual(value=10),
        gxe.ExpectColumnValuesToNotBeNull(column="value"),
        gxe.ExpectColumnValuesToBeBetween(column="value", min_value=-1e6, max_value=1e12),
    ], name="scaling_law_fit")
    passed = result.passed and bool((decay["value"] > 0).all()) and bool((ordered["ci_low"] <= ordered["ci_high"]).all())
    return dg.AssetCheckResult(passed=passed, metadata=result.metadata)


@dg.asset_check(asset="scaling_r2", description="R² at most 1; Huber objectives non-negative; four forms per dataset")
def scaling_r2_valid(scaling_r2: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    return gx_check(scaling_r2, [
        gxe.ExpectTableRowCountToEqual(value=8),
        gxe.ExpectColumnValuesToBeBetween(column="r2", max_value=1.0),
        gxe.ExpectColumnValuesToBeBetween(column="huber", min_value=0),
    ], name="scaling_r2")


@dg.asset_check(asset="scaling_effective_data", description="1 <= D'/U_D <= epochs and below the limit 1 + R_D*")
def scaling_effective_data_valid(scaling_effective_data: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    table = scaling_effective_data.assign(
        below_epochs=scaling_effective_data["effective_data_multiple"] <= scaling_effective_data["epochs"] + 1e-9,
        below_limit=scaling_effective_data["effective_data_multiple"] <= scaling_effective_data["limit_multiple"] + 1e-9)
    return gx_check(table, [
        gxe.ExpectColumnValuesToBeBetween(column="effective_data_multiple", min_value=1.0),
        gxe.ExpectColumnValuesToBeInSet(column="below_epochs", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="below_limit", value_set=[True]),
    ], name="scaling_effective_data")


@dg.asset_check(asset="scaling_allocation", description="positive N, D; C = 6ND; no worse than Chinchilla's split under the cap")
def scaling_allocation_valid(scaling_allocation: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    table = scaling_allocation.assign(
        flops_ratio=6 * scaling_allocation["parameters"] * scaling_allocation["tokens"] / scaling_allocation["compute"],
        no_worse=scaling_allocation["loss"] <= scaling_allocation["chinchilla_loss_with_cap"] + 1e-9)
    return gx_check(table, [
        gxe.ExpectColumnValuesToBeBetween(column="parameters", min_value=0, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column="tokens", min_value=0, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column="flops_ratio", min_value=0.999, max_value=1.001),
        gxe.ExpectColumnValuesToBeInSet(column="no_worse", value_set=[True]),
    ], name="scaling_allocation")


CHECKS = [scaling_tokens_valid, scaling_law_fit_valid, scaling_r2_valid, scaling_effective_data_valid,
          scaling_allocation_valid]
