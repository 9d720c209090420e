"""The rules the scaling study's data checks hold its tables to: one function per table, returning the table
with any derived columns the rules need (D / (U_D x epochs), 6ND / C, ...) and its Great Expectations rules.

``gxe`` is the ``great_expectations.expectations`` module, passed in by the Dagster side (which imports it
lazily, with GX's usage statistics off), so this module stays free of the platform.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def runs(gxe: Any, table: pd.DataFrame, n_cells: int) -> tuple[pd.DataFrame, list]:
    """One row per grid cell, finite positive losses, D = U_D x epochs, none of them missing."""
    table = table.assign(d_over_ud_epochs=table["tokens"] / (table["unique_tokens"] * table["epochs"]))
    return table, [
        gxe.ExpectTableRowCountToEqual(value=n_cells),
        gxe.ExpectColumnValuesToBeUnique(column="run"),
        gxe.ExpectColumnValuesToBeUnique(column="mlflow_run_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="held_out_loss"),
        gxe.ExpectColumnValuesToBeBetween(column="held_out_loss", min_value=0, max_value=50),
        gxe.ExpectColumnValuesToBeBetween(column="parameters", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="epochs", min_value=0.5),
        gxe.ExpectColumnValuesToBeBetween(column="d_over_ud_epochs", min_value=0.999, max_value=1.001),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("parameters", "epochs", "d_over_ud_epochs")],
    ]


def tokens(gxe: Any, chunks: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Both splits present (none missing), token ids >= 0, every chunk as long as it says (its tokens replaced by
    their smallest id and length)."""
    chunks = chunks.assign(min_id=chunks["tokens"].map(lambda t: int(np.min(t))),
                           length=chunks["tokens"].map(len)).drop(columns=["tokens"])
    return chunks, [
        gxe.ExpectColumnDistinctValuesToEqualSet(column="split", value_set=["train", "validation"]),
        gxe.ExpectColumnValuesToBeBetween(column="min_id", min_value=0),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="length", column_B="n_tokens"),
        gxe.ExpectColumnValuesToNotBeNull(column="split"),
    ]


def train_chunk_sizes(chunks: pd.DataFrame) -> int:
    """How many different sizes the train chunks have (1: unique pools are whole chunks)."""
    return int(chunks.loc[chunks["split"] == "train", "n_tokens"].nunique())


def law_fit(gxe: Any, fit: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """The ten constants, every one finite."""
    return fit, [
        gxe.ExpectTableRowCountToEqual(value=10),
        gxe.ExpectColumnValuesToNotBeNull(column="value"),
        gxe.ExpectColumnValuesToBeBetween(column="value", min_value=-1e6, max_value=1e12),
    ]


def law_constants_ordered(fit: pd.DataFrame) -> bool:
    """R_D*, R_N* (the decay stage) positive and every bootstrap interval ordered low <= high."""
    decay = fit[fit["stage"] == "decay"]
    ordered = fit.dropna(subset=["ci_low", "ci_high"])
    return bool((decay["value"] > 0).all()) and bool((ordered["ci_low"] <= ordered["ci_high"]).all())


def r2(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Four forms on each of two datasets, R² at most 1, Huber objectives non-negative, none missing."""
    return table, [
        gxe.ExpectTableRowCountToEqual(value=8),
        gxe.ExpectColumnValuesToBeBetween(column="r2", max_value=1.0),
        gxe.ExpectColumnValuesToBeBetween(column="huber", min_value=0),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("r2", "huber")],
    ]


def effective_data(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """1 <= D'/U_D <= epochs (present), and below the limit 1 + R_D* (a missing multiple fails both
    comparisons too)."""
    multiple = table["effective_data_multiple"]
    table = table.assign(below_epochs=multiple <= table["epochs"] + 1e-9,
                         below_limit=multiple <= table["limit_multiple"] + 1e-9)
    return table, [
        gxe.ExpectColumnValuesToBeBetween(column="effective_data_multiple", min_value=1.0),
        gxe.ExpectColumnValuesToNotBeNull(column="effective_data_multiple"),
        gxe.ExpectColumnValuesToBeInSet(column="below_epochs", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="below_limit", value_set=[True]),
    ]


def allocation(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Positive N and D, C = 6ND (all present), and a loss no worse than Chinchilla's split under the same
    cap."""
    table = table.assign(flops_ratio=6 * table["parameters"] * table["tokens"] / table["compute"],
                         no_worse=table["loss"] <= table["chinchilla_loss_with_cap"] + 1e-9)
    return table, [
        gxe.ExpectColumnValuesToBeBetween(column="parameters", min_value=0, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column="tokens", min_value=0, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column="flops_ratio", min_value=0.999, max_value=1.001),
        gxe.ExpectColumnValuesToBeInSet(column="no_worse", value_set=[True]),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("parameters", "tokens", "flops_ratio")],
    ]
