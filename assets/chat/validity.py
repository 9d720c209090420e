"""The rules the chat room's data checks hold its tables to: one function per table, returning the table the
rules read (with any derived columns) and its Great Expectations rules.

``gxe`` is the ``great_expectations.expectations`` module, passed in by the Dagster side (which imports it
lazily, with GX's usage statistics off), so this module stays free of the platform.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

TASK_TABLE_RULES = ("ids unique, one task, valid splits, 1-20 steps, no empty or missing prompt/solution/answer, "
                    "each problem in one split only")
BUDGET_ACCURACY_RULES = "accuracies in [0, 1], reasoning tokens within the budget, FLOPs positive, none missing"
TASK_REQUIRED = ("task", "split", "n_steps", "prompt", "reasoning", "answer")
"""A task table's columns present on every problem (GX's set, range and length rules skip missing values)."""
ACCURACY_RISES = ("On multi-step arithmetic, accuracy at the largest budget exceeds accuracy at budget 0 by "
                  "min_gain, for every model (WARN: a finding, not a bug)")


def task_table(gxe: Any, frame: pd.DataFrame, task: str) -> tuple[pd.DataFrame, list]:
    """A task world's problems: see TASK_TABLE_RULES."""
    return frame, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeUnique(column="task_id"),
        gxe.ExpectColumnValuesToBeInSet(column="task", value_set=[task]),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "validation", "test"]),
        gxe.ExpectColumnValuesToBeBetween(column="n_steps", min_value=1, max_value=20),
        *[gxe.ExpectColumnValueLengthsToBeBetween(column=c, min_value=1) for c in ("prompt", "reasoning", "answer")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["system", "prompt"]),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in TASK_REQUIRED],
    ]


def budget_accuracy(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Accuracy against the reasoning budget: see BUDGET_ACCURACY_RULES (`over_budget`: the most reasoning
    tokens an answer spent beyond its budget, at most 0)."""
    return table.assign(over_budget=table["max_reasoning_tokens"] - table["budget"]), [
        gxe.ExpectColumnValuesToBeBetween(column="accuracy", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="over_budget", max_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="flops_per_answer", min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("accuracy", "over_budget", "flops_per_answer")],
    ]
