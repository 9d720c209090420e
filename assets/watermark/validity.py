"""The rules the watermark study's data checks hold its tables to: one function per table, returning the table
the rules read and its Great Expectations rules.

``gxe`` is the ``great_expectations.expectations`` module, passed in by the Dagster side (which imports it
lazily, with GX's usage statistics off), so this module stays free of the platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd


def texts(gxe: Any, table: pd.DataFrame, schemes: Sequence[str]) -> tuple[pd.DataFrame, list]:
    """Known schemes and roles, p-values in [0, 1], every text scored, the oracle's log-probabilities <= 0."""
    return table, [
        gxe.ExpectColumnValuesToBeInSet(column="scheme", value_set=list(schemes)),
        gxe.ExpectColumnValuesToBeInSet(column="role", value_set=["watermarked", "unwatermarked"]),
        gxe.ExpectColumnValuesToBeBetween(column="p_value", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="score"),
        gxe.ExpectColumnValuesToBeBetween(column="oracle_logprob", max_value=0),
    ]


def attack(gxe: Any, table: pd.DataFrame, steps: int) -> tuple[pd.DataFrame, list]:
    """Every attacked text keeps the oracle's quality; shares and p-values in [0, 1]; at most ``steps`` steps;
    the judge scored every text after the attack."""
    return table, [
        gxe.ExpectColumnValuesToBeInSet(column="quality_kept", value_set=[True]),
        gxe.ExpectColumnValuesToBeBetween(column="tokens_changed", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="p_value_after", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="steps", min_value=0, max_value=steps),
        gxe.ExpectColumnValuesToNotBeNull(column="judge_bits_per_byte_after"),
    ]
