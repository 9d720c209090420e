"""`build_findings` on hand-made system cards: the reference responders' code checks are judged, our models'
rows are descriptive, and each records its helpful_accuracy against HELPFUL_BAR (a condition and the note)."""

import json
import math

import pandas as pd

from assets.findings import Condition, Rule, check_findings_frame, findings_frame
from assets.safety import findings as f


def _rows(responder, model, values, endpoint=""):
    return [{"responder": responder, "model": model, "endpoint": endpoint, "evaluation": f.EVALUATION[metric],
             "metric": metric, "value": value, "n": 10 + i} for i, (metric, value) in enumerate(values.items())]


def card(models: dict[str, float]) -> pd.DataFrame:
    """One reference responder (the policy oracle, all 1.0 but a broken not_unsafe) and a model per entry of
    ``models`` (name -> helpful_accuracy; its not_unsafe 0.9, as if it refused well)."""
    oracle = {"not_unsafe_standard": 0.75, "not_overrefuse_standard": 1.0, "helpful_accuracy": 1.0,
              "helpful_accuracy_lookalike": 1.0}
    rows = _rows("reference", "policy_oracle", oracle)
    for name, helpful in models.items():
        rows += _rows("model", name, {"not_unsafe_standard": 0.9, "helpful_accuracy": helpful})
    # a user benchmark's row reusing a metric name under another evaluation is not the suite's number
    rows.append({"responder": "model", "model": "able", "endpoint": "", "evaluation": "xstest",
                 "metric": "goodness@0.1", "value": 0.1, "n": 2})
    return pd.DataFrame(rows)


def _helpful(row) -> dict:
    (condition,) = json.loads(row["conditions"])
    return condition


def test_model_rows_are_descriptive_and_record_whether_the_model_could_answer():
    out = f.build_findings(card({"able": 1.0, "unable": 0.0, "borderline": f.HELPFUL_BAR}), "unit", post_hoc="budget 2")
    frame = findings_frame(out)
    assert check_findings_frame(frame) == []
    by = frame.set_index("metric")
    for model, helpful, grade, word in (("able", 1.0, "reproduced", "meets"), ("unable", 0.0, "not reproduced", "is below"),
                                        ("borderline", f.HELPFUL_BAR, "reproduced", "meets")):
        row = by.loc[f"{model}:not_unsafe_standard"]
        # descriptive: no rule, so "not comparable" whether or not the model could answer
        assert row["verdict"] == "not comparable" and row["rule"] == "descriptive (no rule)", model
        assert row["ours"] == 0.9 and row["source"] == "none" and math.isnan(row["reference"])
        stored = _helpful(row)
        assert (stored["name"], stored["value"], stored["comparison"], stored["bar"]) == (
            "helpful_accuracy", helpful, "at_least", f.HELPFUL_BAR)
        rebuilt = Condition(stored["name"], stored["value"], Rule(stored["comparison"], stored["bar"], stored["partial"]))
        assert rebuilt.grade() == grade, model
        assert "n=10; descriptive" in row["note"]
        assert f"helpful_accuracy {helpful:.2f} {word} the bar {f.HELPFUL_BAR}" in row["note"], model
        assert ("cannot answer the allowed questions" in row["note"]) == (word == "is below"), model
        assert row["post_hoc"] == f"budget 2; {f.HELPFUL_REVIEW}"
        # helpful_accuracy itself is a row too, with the same condition on itself
        assert by.loc[f"{model}:helpful_accuracy", "ours"] == helpful
    # only the metrics the card has, under the suite's own evaluation (the xstest row is not goodness@0.1)
    assert {m for m in by.index if m.startswith("able:")} == {"able:not_unsafe_standard", "able:helpful_accuracy"}


def test_reference_code_checks_are_judged_and_missing_ones_are_not_comparable():
    by = findings_frame(f.build_findings(card({}), "unit")).set_index("metric")
    assert list(by.index) == [f"{who}_{metric}" for who, metric, _, _ in f.CODE_CHECKS.values()]
    assert (by["source"] == "code check").all() and (by["post_hoc"] == "").all()
    assert by.loc["policy_oracle_helpful_accuracy", "verdict"] == "verified"
    assert by.loc["policy_oracle_not_unsafe_standard", "verdict"] == "not verified"  # 0.75 < 1.0: a broken grader
    assert by.loc["policy_oracle_not_unsafe_standard", "ours"] == 0.75
    assert by.loc["always_comply_not_unsafe_standard", "verdict"] == "not comparable"  # not in the card: NaN


def test_one_endpoint_at_two_budgets_keeps_two_findings_and_two_card_columns():
    """An endpoint evaluated at budgets 4 and 16 (rows kept side by side) is two responders everywhere: its
    findings, the card's pivot and the figure; the registered model of the same name is a third."""
    from assets.safety.tables import card_by_model, responder_label

    url = "http://127.0.0.1:8000/v1"
    table = card({"chat-sft/3": 1.0}).assign(requested_budget="4")
    for budget, value in (("4", 0.2), ("16", 0.7)):
        rows = pd.DataFrame(_rows("endpoint", "chat-sft/3", {"not_unsafe_standard": value, "helpful_accuracy": 1.0},
                                  endpoint=url)).assign(requested_budget=budget)
        table = pd.concat([table, rows], ignore_index=True)
    labels = set(responder_label(table))
    assert {"chat-sft/3", f"chat-sft/3@{url} (budget 4)", f"chat-sft/3@{url} (budget 16)"} <= labels
    frame = findings_frame(f.build_findings(table, "unit"))
    assert check_findings_frame(frame) == []
    values = frame.set_index("metric")["ours"]
    assert values[f"chat-sft/3@{url} (budget 4):not_unsafe_standard"] == 0.2
    assert values[f"chat-sft/3@{url} (budget 16):not_unsafe_standard"] == 0.7
    assert values["chat-sft/3:not_unsafe_standard"] == 0.9
    pivot = card_by_model(table).set_index("metric")
    assert pivot.loc["not_unsafe_standard", f"chat-sft/3@{url} (budget 16)"] == 0.7  # not averaged with budget 4
    assert pivot.loc["not_unsafe_standard", "chat-sft/3"] == 0.9
    # a user benchmark reusing a suite metric's name is its own row, not a clash in the pivot
    doubled = pd.concat([table, table[table["evaluation"] == "xstest"].assign(evaluation="refusal", value=0.5)])
    by_evaluation = card_by_model(doubled).set_index(["evaluation", "metric"])
    assert by_evaluation.loc[("xstest", "goodness@0.1"), "able"] == 0.1
    assert by_evaluation.loc[("refusal", "goodness@0.1"), "able"] == 0.5
    f.system_card_figure(table)  # one bar group per label; draws without error
