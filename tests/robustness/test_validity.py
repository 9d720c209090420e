"""The data checks' rules (assets.robustness.validity) on planted tables: each rule passes a good table and
fails the one broken the way it guards against."""

import pandas as pd
import pytest

from assets.robustness import validity
from assets.robustness.items import THINK_LESS
from resources.validation import expectations, gx_check, validate_frame


def _items(**change) -> pd.DataFrame:
    rows = [{"item_id": f"{p}:{g}", "task": "arithmetic", "problem_id": p, "goal": g,
             "target": "" if g == THINK_LESS else "42"} for p in ("p0", "p1") for g in ("answer_42", THINK_LESS)]
    table = pd.DataFrame(rows)
    for column, (row, value) in change.items():
        table.loc[row, column] = value
    return table


def _runs(**change) -> pd.DataFrame:
    table = pd.DataFrame({"compute_level": [0, 4, 4], "reasoning_tokens": [0, 3, 4],
                          "soft_norm": [float("nan"), 1.0, 2.0], "soft_cap": [float("nan"), 2.0, 2.0]})
    for column, (row, value) in change.items():
        table.loc[row, column] = value
    return table


def test_items_rules():
    assert validity.same_problems_under_every_goal(_items()) and validity.targets_present(_items())
    assert not validity.same_problems_under_every_goal(_items(problem_id=(3, "p2")))
    assert not validity.targets_present(_items(target=(0, "")))
    assert validity.targets_present(_items(target=(1, "")))  # think-less has no target
    assert gx_check(*validity.items(expectations(), _items()), name="items").passed
    assert not gx_check(*validity.items(expectations(), _items(goal=(0, "answer_43"))), name="items").passed


@pytest.mark.parametrize("change", [{"reasoning_tokens": (1, 5)}, {"soft_norm": (2, 2.01)}])
def test_runs_rules_catch_reasoning_over_budget_and_soft_tokens_over_the_cap(change):
    assert gx_check(*validity.runs(expectations(), _runs(), [0, 4]), name="runs").passed
    assert not gx_check(*validity.runs(expectations(), _runs(**change), [0, 4]), name="runs").passed
    assert not gx_check(*validity.runs(expectations(), _runs(), [0, 4, 8]), name="runs").passed  # a level missing


def test_success_rules_skip_unrated_cells_and_catch_a_rate_outside_its_interval():
    grid = pd.DataFrame({"success_rate": [0.5, float("nan")], "ci_low": [0.2, float("nan")],
                         "ci_high": [0.8, float("nan")], "n": [4, 0], "successes": [2, 0]})
    table, rules = validity.success(expectations(), grid)
    assert len(table) == 1 and gx_check(table, rules, name="success").passed
    assert not gx_check(*validity.success(expectations(), grid.assign(ci_high=0.4)), name="success").passed
    assert not gx_check(*validity.success(expectations(), grid.assign(successes=5)), name="success").passed


def test_a_rated_cell_without_its_interval_fails_the_success_check():
    grid = pd.DataFrame({"success_rate": [0.5, float("nan")], "ci_low": [float("nan"), float("nan")],
                         "ci_high": [0.8, float("nan")], "n": [4, 0], "successes": [2, 0]})
    ok, outcomes = validate_frame(*validity.success(expectations(), grid), name="success")
    assert not ok and [o["expectation"] for o in outcomes if not o["success"]] == [
        "expect_column_values_to_not_be_null(column='below')"]
