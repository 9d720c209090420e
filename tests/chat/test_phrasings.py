"""The facts questions' phrasings: one (as before) on tiny, five on demo (every train fact in all five) and gpu;
none of them is a question the safety battery holds out for evaluation."""

import re

import pandas as pd
import pytest

from assets.chat.facts_questions import (
    ALL_MULTI_HOP_KINDS,
    MAX_PHRASINGS,
    MULTI_HOP_KINDS,
    SINGLE_HOP,
    FactsQuestionSpec,
    facts_questions,
    one_phrasing_per_fact,
)
from assets.corpora.facts_world import build_world
from assets.safety.requests import TEMPLATES
from tests.chat.test_tasks import WORLD


@pytest.fixture(scope="module")
def world():
    return build_world(WORLD)


def _asked(frame, phrasings) -> set[str]:
    """The phrasing each single-hop prompt used (exactly one must match, the person standing for X)."""
    patterns = {q: re.compile(re.escape(q).replace("X", r"\S+") + "$") for q in phrasings}
    found = set()
    for prompt in frame.loc[frame["kind"] == "single_hop", "prompt"]:
        hits = [q for q, pattern in patterns.items() if pattern.match(prompt)]
        assert len(hits) == 1, (prompt, hits)
        found.add(hits[0])
    return found


def test_one_phrasing_asks_the_original_question_only_and_five_ask_them_all(world):
    phrasings = [q for questions, _ in SINGLE_HOP.values() for q in questions]
    originals = {questions[0] for questions, _ in SINGLE_HOP.values()}
    one = facts_questions(world, FactsQuestionSpec(n_train=200, n_validation=20, n_test=20))
    assert _asked(one, phrasings) == originals
    five = facts_questions(world, FactsQuestionSpec(n_train=200, n_validation=20, n_test=20, phrasings=5))
    assert _asked(five, phrasings) == set(phrasings)
    # the same facts are asked and answered the same way: only the question's words differ
    single = five[five["kind"] == "single_hop"]
    assert (single["n_steps"] == 1).all() and single.apply(lambda r: r["reasoning"].endswith(f"{r['answer']} ."),
                                                           axis=1).all()


def test_a_fact_asked_in_another_phrasing_is_the_same_problem_and_in_one_split_only(world):
    # without this, five phrasings put 9 of 24 test facts into train as well (a review found it)
    frame = facts_questions(world, FactsQuestionSpec(seed=2, n_train=300, n_validation=30, n_test=60, phrasings=5))
    single = frame[frame["kind"] == "single_hop"]
    assert len(single) > 100 and single["reasoning"].is_unique  # each fact (person, attribute, value) once
    assert set(single.loc[single["split"] == "train", "reasoning"]).isdisjoint(
        single.loc[single["split"] != "train", "reasoning"])


def test_no_phrasing_is_or_starts_like_a_held_out_battery_question():
    held_out = [t.text for t in TEMPLATES if t.split == "eval"]
    assert len(held_out) >= 10
    for questions, _ in SINGLE_HOP.values():
        for question in questions:
            for text in held_out:
                assert question != text and not text.startswith(question) and not question.startswith(text), \
                    (question, text)


def test_phrasings_out_of_range_are_refused():
    for bad in (0, MAX_PHRASINGS + 1, True, 2.0):
        with pytest.raises(ValueError, match="phrasings must be an integer"):
            FactsQuestionSpec(phrasings=bad)


def test_demo_and_gpu_ask_five_phrasings_and_say_it_was_chosen_after_seeing_results():
    import os
    import subprocess
    import sys
    from pathlib import Path

    from assets.safety.tables import (
        BUDGET_POST_HOC,
        DEMO_PHRASINGS_POST_HOC,
        PHRASINGS_POST_HOC,
        budget_post_hoc,
    )

    assert budget_post_hoc("gpu", "medium") == PHRASINGS_POST_HOC and "chosen after seeing" in PHRASINGS_POST_HOC
    assert budget_post_hoc("demo", "32") == f"{BUDGET_POST_HOC}; {DEMO_PHRASINGS_POST_HOC}"
    assert "chosen after seeing" in DEMO_PHRASINGS_POST_HOC and budget_post_hoc("tiny", "2") == ""
    probe = ("from assets.chat.defs import FactsTasksConfig as C; c = C(); "
             "print(c.every_phrasing_in_train, 'same_profession' in c.multi_hop_kinds, c.phrasings)")
    for profile, expected in (("gpu", "False False 5"), ("demo", "True True 5"), ("tiny", "False False 1")):
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[2], env={**os.environ, "REPROLAB_PROFILE": profile})
        assert " ".join(out.stdout.split()[-3:]) == expected, (profile, out.stdout, out.stderr)


def test_every_phrasing_asks_each_train_fact_in_all_of_them_and_held_out_facts_once(world):
    spec = dict(seed=3, people_pool=20, n_train=100, n_validation=20, n_test=20, phrasings=5)
    once = facts_questions(world, FactsQuestionSpec(**spec))
    every = facts_questions(world, FactsQuestionSpec(**spec, every_phrasing_in_train=True))
    single = every[every["kind"] == "single_hop"]
    train = single[single["split"] == "train"]
    # the same problems as without it, each train fact now asked five times with the same trace and answer
    assert every["task_id"].is_unique and len(every) == len(once) + 4 * (once.loc[once["split"] == "train", "kind"]
                                                                         == "single_hop").sum()
    assert (train.groupby("reasoning")["prompt"].nunique() == 5).all()
    assert (train.groupby("reasoning")["answer"].nunique() == 1).all()
    assert set(train["reasoning"]) == set(once.loc[(once["split"] == "train") & (once["kind"] == "single_hop"),
                                                   "reasoning"])
    held_out = single[single["split"] != "train"]
    assert held_out["reasoning"].is_unique and set(held_out["reasoning"]).isdisjoint(train["reasoning"])
    pd.testing.assert_frame_equal(every[every["split"] != "train"].reset_index(drop=True),
                                  once[once["split"] != "train"].reset_index(drop=True))
    # the instruction tasks are built from one phrasing per fact: the table as drawn
    pd.testing.assert_frame_equal(one_phrasing_per_fact(every).drop(columns="task_id"),
                                  once.drop(columns="task_id"))


def test_same_profession_questions_compare_the_two_professions(world):
    frame = facts_questions(world, FactsQuestionSpec(seed=4, people_pool=20, n_train=150, n_validation=10, n_test=10,
                                                     multi_hop_share=1.0, multi_hop_kinds=ALL_MULTI_HOP_KINDS))
    asked = frame[frame["kind"] == "same_profession"]
    profession = world.people.set_index("person")["profession"]
    assert len(asked) > 10 and set(asked["answer"]) == {"yes", "no"}
    for row in asked.itertuples():
        x, y = row.prompt.split()[1], row.prompt.split()[3]
        assert row.prompt == f"do {x} and {y} have the same profession ?"
        assert row.answer == ("yes" if profession[x] == profession[y] else "no")
        assert f"{x} works as a {profession[x]} ." in row.reasoning and f"{y} works as a {profession[y]} ." in row.reasoning
    assert set(facts_questions(world, FactsQuestionSpec(seed=4, people_pool=20, n_train=150, n_validation=10,
                                                        n_test=10))["kind"]) <= {"single_hop", *MULTI_HOP_KINDS}
    with pytest.raises(ValueError, match="multi_hop_kinds must be a non-empty subset"):
        FactsQuestionSpec(multi_hop_kinds=("same_spouse",))
