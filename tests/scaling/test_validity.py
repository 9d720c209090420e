"""The scaling study's data checks (assets.scaling.validity) on planted tables: a missing value in a required
column fails them (GX's range rules skip missing values)."""

import math

import pandas as pd

from assets.scaling import validity
from resources.validation import expectations, validate_frame


def _failed(checked: tuple) -> list[str]:
    return [o["expectation"] for o in validate_frame(*checked, name="t")[1] if not o["success"]]


def test_a_missing_r2_or_compute_fails_its_check():
    r2 = pd.DataFrame({"r2": [0.9] * 8, "huber": [0.01] * 8})
    assert _failed(validity.r2(expectations(), r2)) == []
    assert _failed(validity.r2(expectations(), r2.assign(r2=[math.nan] + [0.9] * 7))) == [
        "expect_column_values_to_not_be_null(column='r2')"]
    allocation = pd.DataFrame({"parameters": [1e6, 2e6], "tokens": [1e7, 1e7], "compute": [6e13, 1.2e14],
                               "loss": [3.0, 2.9], "chinchilla_loss_with_cap": [3.0, 3.0]})
    assert _failed(validity.allocation(expectations(), allocation)) == []
    assert _failed(validity.allocation(expectations(), allocation.assign(compute=[6e13, math.nan]))) == [
        "expect_column_values_to_not_be_null(column='flops_ratio')"]
