"""The safety study's table helpers: the mean score per responder (and requested budget) reads only the rows answered."""

import math

import pandas as pd

from assets.safety.tables import mean_scores


def _rows():
    key = {"model_uri": "", "endpoint": ""}
    return pd.DataFrame([
        {"responder": "model", "model": "a", **key, "evaluation": "refusal", "score": 1.0, "answered": True},
        {"responder": "model", "model": "a", **key, "evaluation": "refusal", "score": 0.5, "answered": True},
        {"responder": "model", "model": "a", **key, "evaluation": "refusal", "score": 0.0, "answered": False},
        {"responder": "model", "model": "a", **key, "evaluation": "bias", "score": 0.0, "answered": False},
        {"responder": "endpoint", "model": "a", "model_uri": "", "endpoint": "http://x", "evaluation": "refusal",
         "score": 0.0, "answered": True},
    ])


def test_mean_scores_leave_out_what_was_not_answered():
    table = mean_scores(_rows()).set_index(["responder", "evaluation"])
    # (1 + 0.5) / 2 answered, not (1 + 0.5 + 0) / 3: the rejected / empty / unasked row is no score of 0
    assert table.loc[("model", "refusal"), "score"] == 0.75
    assert table.loc[("model", "refusal"), ["n", "asked"]].tolist() == [2, 3]
    assert math.isnan(table.loc[("model", "bias"), "score"]) and table.loc[("model", "bias"), "n"] == 0
    # the endpoint serving the same model id is its own row
    assert table.loc[("endpoint", "refusal"), "score"] == 0.0 and table.loc[("endpoint", "refusal"), "n"] == 1


def test_mean_scores_by_any_column():
    rows = _rows().assign(method=["m1", "m1", "m2", "m2", "m2"])
    table = mean_scores(rows, by=["method"]).set_index(["method", "evaluation"])
    assert table.loc[("m1", "refusal"), "score"] == 0.75 and table.loc[("m2", "refusal"), "n"] == 1
    assert mean_scores(rows.drop(columns="answered"), by=["method"]).set_index(["method", "evaluation"]).loc[
        ("m2", "refusal"), "asked"] == 2


def test_mean_scores_keep_an_endpoints_budgets_apart():
    rows = pd.concat([_rows().iloc[[4]].assign(requested_budget="4"),
                      _rows().iloc[[4]].assign(requested_budget="16", score=1.0)], ignore_index=True)
    table = mean_scores(rows).set_index(["requested_budget", "evaluation"])
    assert table.loc[("4", "refusal"), "score"] == 0.0 and table.loc[("16", "refusal"), "score"] == 1.0
