"""The rules the NAF study's data checks hold its tables to, as Great Expectations rule lists.

``gxe`` is the ``great_expectations.expectations`` module, passed in by the Dagster side (which imports it
lazily, with GX's usage statistics off), so this module stays free of the platform.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

RATES = ["p_exact", "sampled_exact_rate", "sampled_near_exact_rate", "mean_edit_distance"]
REGURGITATION_MODELS = ["p", "q1", "q2", "q_holder", "q_safe", "cp_delta", "cp_kl", "cp_k"]


def shards(gxe: Any) -> list:
    """The shard table: document ids unique, shards 0/1, at least one copy of every document, none missing."""
    return [
        gxe.ExpectColumnValuesToBeUnique(column="doc_id"),
        gxe.ExpectColumnValuesToBeInSet(column="shard", value_set=[0, 1]),
        gxe.ExpectColumnValuesToBeBetween(column="n_copies", min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("shard", "n_copies")],
    ]


def regurgitation(gxe: Any) -> list:
    """Per model and document: probabilities and rates in [0, 1] and present, log-probabilities <= 0, every
    model present.

    NaN allowed: ``logprob_bits`` of CP-k (its output is p conditioned on k_x <= k, with no per-token
    log-probability of the true continuation; its p_exact is set from p and the acceptance rate instead)."""
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=1) for c in RATES],
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in RATES],
        gxe.ExpectColumnValuesToBeBetween(column="logprob_bits", max_value=0),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="model", value_set=REGURGITATION_MODELS),
    ]


def regurgitation_by_duplication(gxe: Any) -> list:
    """Rates in [0, 1] and present, one row per (model, duplication count), every row over at least one
    document."""
    return [
        gxe.ExpectColumnValuesToBeBetween(column="sampled_exact_rate", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="mean_p_exact", min_value=0, max_value=1),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["model", "duplicate_count"]),
        gxe.ExpectColumnValuesToBeBetween(column="n_documents", min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("sampled_exact_rate", "mean_p_exact", "n_documents")],
    ]


def k_values(gxe: Any) -> list:
    """k_x of every sample: at least one row, present and finite, known models."""
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="k_bits"),
        gxe.ExpectColumnValuesToBeBetween(column="k_bits", min_value=-1e6, max_value=1e6),
        gxe.ExpectColumnValuesToBeInSet(column="model", value_set=["p", "cp_delta", "cp_kl", "cp_k"]),
        gxe.ExpectColumnValuesToNotBeNull(column="model"),
    ]


def perplexity(gxe: Any) -> list:
    """Perplexities present, finite and >= 1, one row for each of p, q1, q2, CP-Δ and CP-KL."""
    return [
        gxe.ExpectColumnValuesToBeBetween(column="perplexity", min_value=1, max_value=1e6),
        gxe.ExpectColumnValuesToNotBeNull(column="perplexity"),
        gxe.ExpectColumnValuesToBeUnique(column="model"),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="model", value_set=["p", "q1", "q2", "cp_delta", "cp_kl"]),
    ]


def cp_delta_slack(k_values: pd.DataFrame) -> float:
    """How far CP-Δ's k_x goes above its bound, in bits (0 when there are no CP-Δ samples). CP-Δ: every
    token's p/q_i <= 1/Z, so k_x never exceeds the summed normaliser bound; a check allows 1e-3 of rounding."""
    delta = k_values[k_values["model"] == "cp_delta"]
    return float((delta["k_bits"] - delta["log_normaliser_bits"]).max()) if len(delta) else 0.0
