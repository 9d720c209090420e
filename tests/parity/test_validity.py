"""The parity curves' data check: a NaN accuracy fails it (GX's range rules skip missing values)."""

import math

import pandas as pd

from assets.parity import validity
from resources.validation import expectations, validate_frame


def _curves(accuracy: float) -> pd.DataFrame:
    return pd.DataFrame({"eval_loss": [0.7, 0.5], "eval_accuracy": [0.5, accuracy], "step": [0, 10],
                         "linf_change": [0.0, 0.1], "relevant_weight_share": [0.1, 0.4]})


def test_a_nan_accuracy_fails_the_curves_check():
    assert validate_frame(*validity.curves(expectations(), _curves(0.9)), name="curves")[0]
    ok, outcomes = validate_frame(*validity.curves(expectations(), _curves(math.nan)), name="curves")
    failed = [o["expectation"] for o in outcomes if not o["success"]]
    assert not ok and failed == ["expect_column_values_to_not_be_null(column='eval_accuracy')"], failed


def _runs(**change) -> pd.DataFrame:
    return pd.DataFrame({"run_key": ["a", "b"], "n": [20, 20], "k": [3, 3], "converged": [True, False],
                         "t_c": [120.0, math.nan], "arch": ["mlp", "polynet"],
                         "final_eval_accuracy": [1.0, 0.5]}).assign(**change)


def test_a_missing_architecture_or_final_accuracy_fails_the_runs_check_a_censored_t_c_does_not():
    assert validate_frame(*validity.runs(expectations(), _runs()), name="runs")[0]  # t_c NaN: censored
    ok, outcomes = validate_frame(*validity.runs(expectations(), _runs(arch=["mlp", None], final_eval_accuracy=[
        1.0, math.nan], k=[3.0, math.nan])), name="runs")
    failed = [o["expectation"] for o in outcomes if not o["success"]]
    assert not ok and failed == [f"expect_column_values_to_not_be_null(column='{c}')"
                                 for c in validity.RUNS_REQUIRED], failed
