"""The rules the SGD-noise study's data checks hold its tables to, as Great Expectations rule lists.

``gxe`` is the ``great_expectations.expectations`` module, passed in by the Dagster side (which imports it
lazily, with GX's usage statistics off), so this module stays free of the platform.
"""

from __future__ import annotations

from typing import Any

CURVE_COLUMNS = ("eval_loss", "step", "examples")
"""Any run's curve columns: present and >= 0 on every row (GX's range rules skip missing values)."""
DISTANCE_COLUMNS = ("median_tv_equal_loss", "median_tv_equal_step", "kind", "pairs")
"""The distance summary's columns present on every row (medians over at least one pair)."""


def curves(gxe: Any) -> list:
    """Any run's curves: at least one row, held-out loss, steps and examples present and >= 0."""
    return [gxe.ExpectTableRowCountToBeBetween(min_value=1),
            *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in CURVE_COLUMNS),
            *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in CURVE_COLUMNS)]


def synthetic_curves(gxe: Any) -> list:
    """The synthetic curves: those of any run, and excess over the teacher's entropy >= 0 (the cross-entropy
    bound, up to rounding), agreement in [0, 1], both present."""
    return curves(gxe) + [
        gxe.ExpectColumnValuesToBeBetween(column="eval_excess", min_value=-1e-4),
        gxe.ExpectColumnValuesToBeBetween(column="eval_agreement", min_value=0, max_value=1),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("eval_excess", "eval_agreement"))]


def distance_summary(gxe: Any) -> list:
    """TV distances in [0, 1], known pair kinds, every row over at least one pair, none missing."""
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="median_tv_equal_loss", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="median_tv_equal_step", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=["noise_same_seed", "noise_cross_seed", "seed"]),
        gxe.ExpectColumnValuesToBeBetween(column="pairs", min_value=1),
        *(gxe.ExpectColumnValuesToNotBeNull(column=c) for c in DISTANCE_COLUMNS)]
