"""The SGD-noise study's data checks (assets.sgd_noise.validity) on planted tables: a missing value in a
required column fails them (GX's range rules skip missing values)."""

import math

import pandas as pd

from assets.sgd_noise import validity
from resources.validation import expectations, validate_frame


def _failed(table: pd.DataFrame, rules: list) -> list[str]:
    return [o["expectation"] for o in validate_frame(table, rules, name="t")[1] if not o["success"]]


def test_a_missing_distance_or_agreement_fails_its_check():
    summary = pd.DataFrame({"kind": ["seed", "noise_same_seed"], "median_tv_equal_loss": [0.2, 0.05],
                            "median_tv_equal_step": [0.3, 0.1], "pairs": [1, 2]})
    assert _failed(summary, validity.distance_summary(expectations())) == []
    assert _failed(summary.assign(median_tv_equal_loss=[0.2, math.nan]), validity.distance_summary(expectations())) == [
        "expect_column_values_to_not_be_null(column='median_tv_equal_loss')"]
    curves = pd.DataFrame({"eval_loss": [2.0, 1.5], "step": [0, 10], "examples": [0, 640], "eval_excess": [0.5, 0.1],
                           "eval_agreement": [0.4, 0.8]})
    assert _failed(curves, validity.synthetic_curves(expectations())) == []
    broken = curves.assign(examples=[0, math.nan], eval_agreement=[math.nan, 0.8])
    assert _failed(broken, validity.synthetic_curves(expectations())) == [
        "expect_column_values_to_not_be_null(column='examples')",
        "expect_column_values_to_not_be_null(column='eval_agreement')"]
