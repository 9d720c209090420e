"""The rules the corpora's data checks hold their tables to: one function per table, returning the table the
rules read and its Great Expectations rules, plus the rule GX does not express (a fact token's true entropy is 0).

``gxe`` is the ``great_expectations.expectations`` module, passed in by the Dagster side (which imports it
lazily, with GX's usage statistics off), so this module stays free of the platform.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def documents(gxe: Any, id_column: str, splits: list[str]) -> list:
    """Any documents table: rows present, ids unique, no empty or missing text, splits known and present."""
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeUnique(column=id_column),
        gxe.ExpectColumnValuesToNotBeNull(column="text"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=splits),
        gxe.ExpectColumnValuesToNotBeNull(column="split"),
    ]


def facts_documents(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Documents rules, words and duplicate counts >= 1, protected documents only in train."""
    return table, documents(gxe, "doc_id", ["train", "validation", "test"]) + [
        gxe.ExpectColumnValuesToBeBetween(column="n_words", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="duplicate_count", min_value=1),
        gxe.ExpectColumnPairValuesToBeInSet(
            column_A="protected", column_B="split",
            value_pairs_set=[(False, "train"), (False, "validation"), (False, "test"), (True, "train")]),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("n_words", "duplicate_count", "protected")],
    ]


def facts_token_truth(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """True entropies finite and non-negative, probabilities in (0, 1], known slots (see max_fact_entropy)."""
    return table, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="true_entropy"),
        gxe.ExpectColumnValuesToBeBetween(column="true_entropy", min_value=0, max_value=50),
        gxe.ExpectColumnValuesToBeBetween(column="true_prob", min_value=1e-300, max_value=1.0),
        gxe.ExpectColumnValuesToBeInSet(column="slot", value_set=["template", "name", "attribute", "filler",
                                                                 "fixed", "end"]),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("true_prob", "slot")],
    ]


def max_fact_entropy(table: pd.DataFrame) -> float:
    """The largest |true entropy| over fact tokens (0.0 when there are none): a fact is determined, so 0 holds."""
    facts_only = table[table["is_fact"]]
    return float(facts_only["true_entropy"].abs().max()) if len(facts_only) else 0.0


def code_corpus(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Documents rules, files of at least one byte, both splits present."""
    return table, documents(gxe, "doc_id", ["train", "validation"]) + [
        gxe.ExpectColumnValuesToBeBetween(column="n_bytes", min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="n_bytes"),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="split", value_set=["train", "validation"]),
    ]


def user_corpus(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Documents rules, both splits present, one source path and one content hash."""
    return table, documents(gxe, "doc_id", ["train", "validation"]) + [
        gxe.ExpectColumnDistinctValuesToEqualSet(column="split", value_set=["train", "validation"]),
        *[gxe.ExpectColumnUniqueValueCountToBeBetween(column=c, min_value=1, max_value=1)
          for c in ("source_path", "corpus_hash")],
    ]
