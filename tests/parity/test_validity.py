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
