"""The SGD-noise Dagster side's plain helpers: the checks' GX rules and the metadata summaries, each shown to
fail."""

import pandas as pd

from assets.sgd_noise import tables, validity
from resources.validation import expectations, gx_check


def test_share_not_worse_counts_ties_apart():
    table = pd.DataFrame({"task": "t", "regime": "online", "knob": ["batch", "batch", "batch", "lr"],
                          "tie": [False, False, True, False], "less_noise_not_worse": [True, False, False, True]})
    share = tables.share_not_worse(table).set_index("knob")
    assert share.loc["batch", "ties"] == 1 and share.loc["batch", "decided"] == 2
    assert share.loc["batch", "share_not_worse_of_decided"] == 0.5
    assert share.loc["lr", "share_not_worse_of_decided"] == 1


def test_synthetic_run_numbers():
    runs = pd.DataFrame({"teacher_entropy": [0.7, 0.7], "steps": [100, 300]})
    assert tables.synthetic_run_numbers(runs, 2.0) == {"runs": 2, "seconds": 2.0, "teacher_entropy": 0.7,
                                                       "network_steps_per_second": 200.0}


def test_curve_and_distance_rules_fail_on_bad_tables():
    curves = pd.DataFrame({"eval_loss": [1.0, 0.5], "step": [0, 10], "examples": [0, 40],
                           "eval_excess": [0.3, 0.0], "eval_agreement": [0.2, 0.9]})
    assert gx_check(curves, validity.synthetic_curves(expectations()), name="c").passed
    assert not gx_check(curves.assign(eval_excess=[0.3, -0.1]), validity.synthetic_curves(expectations()),
                        name="c").passed
    assert not gx_check(curves.assign(step=[-1, 10]), validity.curves(expectations()), name="c").passed
    summary = pd.DataFrame({"median_tv_equal_loss": [0.1], "median_tv_equal_step": [0.2], "kind": ["seed"],
                            "pairs": [3]})
    assert gx_check(summary, validity.distance_summary(expectations()), name="d").passed
    assert not gx_check(summary.assign(kind=["other"]), validity.distance_summary(expectations()), name="d").passed
