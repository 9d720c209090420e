"""The chat room's study pieces: vocabulary, pretraining text, the rises-with-budget rule, missing answers."""

import numpy as np
import pandas as pd
import pytest

from assets.chat.budget import majority_vote
from assets.chat.study import (
    accuracy_rises,
    budget_accuracy,
    chat_vocabulary,
    evaluation_settings,
    pretraining_texts,
    rows_of_tasks,
    task_text,
)
from assets.chat.tasks import check_answer, score_answers, task_words
from tests.chat.conftest import make_model


def _curve(model, accuracies, budgets=(0, 4, 16, 64)):
    return pd.DataFrame({"model": model, "task": "arithmetic", "effort": "", "requested_budget": list(budgets),
                         "accuracy": accuracies})


def test_accuracy_rises_needs_a_gain_and_no_real_drop():
    table = pd.concat([
        _curve("rising", [0.0, 0.1, 0.3, 0.6]),
        _curve("noisy", [0.0, 0.12, 0.09, 0.5]),  # a 0.03 dip is noise
        _curve("flat", [0.1, 0.1, 0.12, 0.15]),
        _curve("dropping", [0.0, 0.4, 0.2, 0.5]),
        _curve("rising", [0.9], budgets=(16,)).assign(effort="low"),  # effort rows are not part of the curve
    ])
    out = accuracy_rises(table, "arithmetic", min_gain=0.1, max_drop=0.05)
    assert {m: r["passed"] for m, r in out.items()} == {"rising": True, "noisy": True, "flat": False,
                                                         "dropping": False}
    assert out["rising"]["accuracy_by_budget"] == {0: 0.0, 4: 0.1, 16: 0.3, 64: 0.6}
    assert out["dropping"]["worst_drop"] == pytest.approx(0.2)
    assert out["rising"]["gain"] == pytest.approx(0.6)


def test_vocabulary_and_pretraining_text_cover_the_tasks(arithmetic):
    words = chat_vocabulary(["Ann", "paris"], arithmetic)
    assert len(words) == len(set(words)) and words[:2] == ["Ann", "paris"]
    assert set(task_words(arithmetic)) | {str(i) for i in range(100)} <= set(words)
    texts = pretraining_texts(["a b", "c d"], [arithmetic], "train", seed=0)
    train = arithmetic[arithmetic.split == "train"]
    assert len(texts) == 2 + len(train) and set(texts) >= {"a b", "c d", task_text(train.iloc[0])}
    assert texts == pretraining_texts(["a b", "c d"], [arithmetic], "train", seed=0)  # seeded
    row = train.iloc[0]
    assert task_text(row) == f"{row['prompt']} {row['reasoning']} {row['answer']}"  # no system message


def test_rows_of_tasks_names_the_field(arithmetic):
    assert len(rows_of_tasks(arithmetic, ["arithmetic"])) == len(arithmetic)
    with pytest.raises(ValueError, match=r"tasks must be a non-empty subset of \['arithmetic'\]"):
        rows_of_tasks(arithmetic, ["poetry"])
    with pytest.raises(ValueError, match="tasks must be"):
        rows_of_tasks(arithmetic, [])


def test_missing_answers_neither_vote_nor_score(arithmetic):
    # pandas turns a None in a frame built from rows into NaN: neither may count as an answer
    assert majority_vote([float("nan"), None, " "]) == (None, 0)
    assert majority_vote([float("nan"), "3", "3", "4"]) == ("3", 2)
    row = arithmetic.iloc[0]
    assert not check_answer(row, float("nan")) and not check_answer(row, None)
    assert score_answers(arithmetic.head(2), [np.nan, row["answer"]]).tolist() == [False, False]


def test_budget_accuracy_rows_and_effort_reuse(tokenizer, arithmetic):
    model = make_model(tokenizer, seed=1, init_std=0.5)
    problems = arithmetic[arithmetic.split == "test"].head(6)
    efforts = {"low": 2, "high": 500}
    table = budget_accuracy({"m": model}, tokenizer, problems, [0, 2], efforts, max_answer_tokens=2)
    assert [s for s, _, _ in evaluation_settings([0, 2], efforts)] == list(table["setting"])
    assert (table["max_reasoning_tokens"] <= table["budget"]).all() and (table["n"] == 6).all()
    by = table.set_index("setting")
    assert by.loc["effort low"].drop(["setting", "effort"], errors="ignore").equals(
        by.loc["budget 2"].drop(["setting", "effort"], errors="ignore"))  # the same answers, not a new run
    assert by.loc["effort high", "budget"] < 500 == by.loc["effort high", "requested_budget"]  # fit to positions
    assert by.loc["budget 0", "mean_reasoning_tokens"] == 0
    assert by.loc["budget 0", "flops_per_answer"] < by.loc["effort high", "flops_per_answer"]
