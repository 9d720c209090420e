"""Task worlds: seeded splits, worked solutions that are right, and a checker per task that can say no."""

import json

import numpy as np
import pytest

from assets.chat.format import encode_conversation
from assets.chat.instructions import check_constraint
from assets.chat.tasks import (
    TASK_COLUMNS,
    ArithmeticSpec,
    FactsQuestionSpec,
    InstructionSpec,
    arithmetic_problems,
    check_answer,
    conversation,
    facts_questions,
    instruction_problems,
    score_answers,
    task_words,
    verifiable_reward,
)
from assets.corpora.facts_world import FactsWorldSpec, build_world
from tests.chat.conftest import make_tokenizer

WORLD = FactsWorldSpec(
    seed=3,
    n_people=40,
    n_cities=4,
    n_organisations=5,
    n_professions=4,
    n_train_documents=0,
    n_validation_documents=0,
    n_test_documents=0,
    n_protected=0,
)


@pytest.fixture(scope="module")
def world():
    return build_world(WORLD)


@pytest.fixture(scope="module")
def facts(world):
    return facts_questions(
        world, FactsQuestionSpec(seed=1, people_pool=20, n_train=120, n_validation=20, n_test=20)
    )


def _splits_are_clean(frame, sizes):
    assert list(frame.columns) == TASK_COLUMNS
    assert frame["split"].value_counts().to_dict() == sizes
    assert frame["task_id"].is_unique
    assert not frame.duplicated(["system", "prompt"]).any()  # no problem in two splits
    assert (frame["n_steps"] >= 1).all()


def test_arithmetic_traces_are_correct_and_steps_counted(arithmetic):
    _splits_are_clean(arithmetic, {"train": 200, "validation": 40, "test": 40})
    assert set(arithmetic["kind"]) == {"chain", "sum"}
    for _, row in arithmetic.iterrows():
        if row["kind"] == "chain":
            expression = row["prompt"].removeprefix("compute ")
            assert int(row["answer"]) == eval(expression)  # noqa: S307 - our own digits and + / -
            assert row["n_steps"] == row["reasoning"].count("=") == expression.count(" ") // 2
        else:
            a, b = row["prompt"].removeprefix("add ").split(" + ")
            assert int(row["answer"].replace(" ", "")) == int(a.replace(" ", "")) + int(b.replace(" ", ""))
            assert row["n_steps"] == len(a.split()) == row["reasoning"].count("write")
    again = arithmetic_problems(
        ArithmeticSpec(seed=0, chain_ops=(1, 3), sum_digits=(1, 2), n_train=200, n_validation=40, n_test=40)
    )
    assert again.equals(arithmetic)


def test_arithmetic_checker(arithmetic):
    row = arithmetic[arithmetic["kind"] == "sum"].iloc[0]
    assert check_answer(row, row["answer"]) and check_answer(row, row["answer"].replace(" ", ""))
    wrong = str(int(row["answer"].replace(" ", "")) + 1)
    assert not check_answer(row, wrong) and not check_answer(row, "") and not check_answer(row, None)


def test_too_many_problems_asked_is_a_clear_error():
    with pytest.raises(ValueError, match="only .* distinct problems"):
        arithmetic_problems(ArithmeticSpec(chain_ops=(1, 1), sum_digits=(1, 1), sum_share=1.0, n_train=500))
    with pytest.raises(ValueError, match="ArithmeticSpec.chain_ops"):
        ArithmeticSpec(chain_ops=(3, 2))


def test_facts_questions_match_the_world(world, facts):
    _splits_are_clean(facts, {"train": 120, "validation": 20, "test": 20})
    people = world.people.set_index("person")
    assert {"single_hop", "earlier_born", "same_employer", "same_birth_city"} <= set(facts["kind"])
    for _, row in facts.iterrows():
        names = [w for w in row["prompt"].split() if w in people.index]
        if row["kind"] == "single_hop":
            assert row["n_steps"] == 1 and row["answer"] in set(people.loc[names[0]].astype(str))
        elif row["kind"] == "earlier_born":
            years = people.loc[names, "birth_year"].astype(int)
            assert row["answer"] == years.idxmin() and row["n_steps"] == 3
        else:
            attribute = "employer" if row["kind"] == "same_employer" else "birth_city"
            same = people.loc[names[0], attribute] == people.loc[names[1], attribute]
            assert row["answer"] == ("yes" if same else "no")
    yes_no = facts[facts["kind"].str.startswith("same")]["answer"].value_counts()
    assert yes_no.get("yes", 0) >= 5 and yes_no.get("no", 0) >= 5


def test_facts_checker(facts):
    row = facts[facts["kind"] == "single_hop"].iloc[0]
    assert check_answer(row, row["answer"]) and check_answer(row, f" {row['answer'].lower()} ")
    assert not check_answer(row, "nobody") and not check_answer(row, f"{row['answer']} extra")


def test_instruction_constraints_and_checker(facts):
    problems = instruction_problems(facts, InstructionSpec(seed=2))
    assert (problems["split"] == facts["split"]).all() and problems["task_id"].is_unique
    assert set(problems["kind"]) == {"upper_case", "n_words", "end_word", "start_word"}
    assert all(check_answer(row, row["answer"]) for _, row in problems.iterrows())
    assert json.loads(problems["messages"].iloc[0])[0]["role"] == "system"
    by_kind = {kind: problems[problems["kind"] == kind].iloc[0] for kind in set(problems["kind"])}
    upper = by_kind["upper_case"]
    base = json.loads(upper["constraint"])["base_answer"]
    assert not check_answer(upper, base.lower()) and check_answer(upper, base.upper())
    n_words = by_kind["n_words"]
    assert not check_answer(n_words, n_words["answer"] + " more")
    end = by_kind["end_word"]
    assert not check_answer(end, json.loads(end["constraint"])["base_answer"])  # right content, wrong form
    assert check_constraint({"kind": "start_word", "word": "okay"}, "okay wrong") is True
    assert not check_answer(by_kind["start_word"], by_kind["start_word"]["answer"].split()[0] + " wrong")


def test_conversations_tokenise_without_unknown_words(arithmetic, facts):
    problems = instruction_problems(facts, InstructionSpec(seed=2))
    tokenizer = make_tokenizer(arithmetic, facts, problems)
    for frame in (arithmetic, facts, problems):
        ids, mask = encode_conversation(tokenizer, conversation(frame.iloc[0]))
        assert tokenizer.unk_token_id not in ids and sum(mask) > 0
    assert "<|end|>" not in task_words(arithmetic)


def test_rewards_are_the_checker(arithmetic):
    rows = arithmetic.head(4)
    answers = [rows["answer"].iloc[0], "nonsense", None, rows["answer"].iloc[3]]
    assert score_answers(rows, answers).tolist() == [True, False, False, True]
    np.testing.assert_array_equal(verifiable_reward(rows, answers), [1.0, 0.0, 0.0, 1.0])
