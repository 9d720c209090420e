"""The rules the alignment study's data checks hold its tables to: one function per table, returning the table
the rules read and its Great Expectations rules, plus the rules GX does not express (the filter keeps only
accepted candidates, every method trained on the same prompts and answers, every method measured).

``gxe`` is the ``great_expectations.expectations`` module, passed in by the Dagster side (which imports it
lazily, with GX's usage statistics off), so this module stays free of the platform.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def filter_keeps_only_accepted(judged: pd.DataFrame) -> bool:
    """At most one kept candidate per prompt, and every kept one accepted by the judge."""
    kept = judged[judged["kept"]]
    return bool(kept["accepted"].all() and kept["item_id"].is_unique)


def sft_data(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """One row per prompt, every row with an answer (present and not empty)."""
    return table, [gxe.ExpectColumnValuesToBeUnique(column="item_id"),
                   gxe.ExpectColumnValueLengthsToBeBetween(column="answer", min_value=1),
                   gxe.ExpectColumnValuesToNotBeNull(column="answer")]


def baselines_share_prompts_and_answers(records: dict, identical: dict, conversations: int, methods: int) -> bool:
    """Every method's record holds the same prompts-and-answers hash, and the identity check saw all the
    trained conversations of all the methods."""
    digests = {r["prompt_answer_digest"] for r in records.values()}
    return bool(len(digests) == 1 and identical["conversations"] == conversations
                and identical["methods"] == methods)


def methods(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Over the defined values: every value in [0, 1].

    NaN allowed: ``value`` of a metric over an empty set (those rows are dropped before the rule)."""
    return table.dropna(subset=["value"]), [gxe.ExpectColumnValuesToBeBetween(column="value", min_value=0,
                                                                              max_value=1)]


def every_method_present(table: pd.DataFrame, results: pd.DataFrame) -> bool:
    """Every method asked in the results has rows in the method table."""
    return set(table["method"]) >= set(results["method"])
