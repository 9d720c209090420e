"""The chat room's data checks (assets.chat.validity) on planted tables: a missing value in a required column
fails them (GX's range, set and length rules skip missing values)."""

import math

import pandas as pd

from assets.chat import validity
from resources.validation import expectations, validate_frame


def _failed(checked: tuple) -> list[str]:
    return [o["expectation"] for o in validate_frame(*checked, name="t")[1] if not o["success"]]


def test_a_missing_flop_count_or_reasoning_length_fails_the_budget_accuracy_check():
    table = pd.DataFrame({"budget": [0, 16], "accuracy": [0.2, 0.6], "max_reasoning_tokens": [0, 14],
                          "flops_per_answer": [1e6, 2e6]})
    assert _failed(validity.budget_accuracy(expectations(), table)) == []
    broken = table.assign(max_reasoning_tokens=[0, math.nan], flops_per_answer=[math.nan, 2e6])
    assert _failed(validity.budget_accuracy(expectations(), broken)) == [
        "expect_column_values_to_not_be_null(column='over_budget')",
        "expect_column_values_to_not_be_null(column='flops_per_answer')"]


def test_a_missing_split_or_step_count_fails_the_task_table_check():
    table = pd.DataFrame({"task_id": ["t0", "t1"], "task": "arithmetic", "split": ["train", "test"],
                          "n_steps": [1, 3], "system": "", "prompt": ["1+1", "2+3"], "reasoning": ["1+1=2", "2+3=5"],
                          "answer": ["2", "5"]})
    assert _failed(validity.task_table(expectations(), table, "arithmetic")) == []
    broken = table.assign(split=["train", None], n_steps=[1, math.nan], answer=[None, "5"])
    assert _failed(validity.task_table(expectations(), broken, "arithmetic")) == [
        f"expect_column_values_to_not_be_null(column='{c}')" for c in ("split", "n_steps", "answer")]
