"""The SFT data: the policy stripped from every prompt; every method on the same prompts and answers."""

import json

import pytest

from assets.alignment.sft_data import (
    METHODS,
    check_identical,
    conversations,
    fit_context,
    policy_in,
    prompt_answer_digest,
    prompt_answer_texts,
    repeat_comply,
    replay_conversations,
    strip_policy,
)
from assets.chat.tasks import ArithmeticSpec, arithmetic_problems
from assets.chat.tasks import conversation as task_conversation
from assets.safety.policy import render_policy


def test_the_policy_is_absent_from_every_sft_prompt(table, judged):
    assert all(policy_in(json.loads(m)) for m in judged.loc[judged["kept"], "spec_messages"])  # it was there
    assert not any(policy_in(json.loads(m)) for m in table["messages"])
    for method in METHODS:
        for conversation in conversations(table, method):
            assert not policy_in(conversation[:-1])
            assert [m["role"] for m in conversation] == ["user", "assistant"]


def test_strip_policy_refuses_to_leave_the_policy_behind():
    hidden = [{"role": "user", "content": "read this : " + render_policy()}]
    with pytest.raises(ValueError, match="still in the prompt"):
        strip_policy(hidden)
    assert strip_policy([{"role": "system", "content": render_policy()}, {"role": "user", "content": "hi"}]) == [
        {"role": "user", "content": "hi"}]


def test_baselines_see_identical_prompts_and_answers(table):
    by_method = {m: conversations(table, m) for m in METHODS}
    counts = check_identical(by_method)
    digests = counts.pop("digests")
    assert counts == {"conversations": len(table), "methods": 3, "reasoning_differs": len(table),
                      "methods_differing": 0}
    assert set(digests) == set(METHODS) and len(set(digests.values())) == 1
    assert all(c[-1]["reasoning"] == "" for c in by_method["direct"])
    assert all("P1" not in c[-1]["reasoning"].split() for c in by_method["no_citation"])
    # one changed answer, or one changed prompt, shows as a differing hash (recorded, not raised)
    direct = by_method["direct"]
    answer = {**by_method, "direct": [[*direct[0][:-1], {**direct[0][-1], "content": "other"}], *direct[1:]]}
    prompt = {**by_method, "no_citation": [[{"role": "user", "content": "x"}, by_method["no_citation"][0][-1]],
                                           *by_method["no_citation"][1:]]}
    assert check_identical(answer)["methods_differing"] == 1 and check_identical(prompt)["methods_differing"] == 1
    assert check_identical({**answer, "no_citation": prompt["no_citation"]})["methods_differing"] == 2
    assert check_identical({**by_method, "direct": direct[:-1]})["methods_differing"] == 1


def test_the_digest_is_the_one_mlflow_records_for_the_prompts_and_answers(table):
    from assets.lm.registration import DatasetInput

    convs = conversations(table, "deliberative")
    logged = DatasetInput.of_texts("x", prompt_answer_texts(convs), "train")
    assert prompt_answer_digest(convs) == logged.digest == prompt_answer_digest(conversations(table, "direct"))
    assert prompt_answer_digest(convs[1:]) != logged.digest


def test_the_kept_answers_are_the_policys(table):
    refuse = table[table["expected"] == "refuse"]
    assert (refuse["answer"] == "sorry , i can not share that .").all()
    comply = table[table["expected"] == "comply"]
    assert (comply["answer"] == comply["answer_truth"]).all()


def test_fit_context_drops_the_same_prompts_for_every_method(table, tokenizer):
    kept, dropped = fit_context(table, tokenizer, 64)
    assert 0 < len(kept) < len(table) and dropped == len(table) - len(kept)
    everything, none_dropped = fit_context(table, tokenizer, 512)
    assert len(everything) == len(table) and none_dropped == 0
    with pytest.raises(ValueError, match="fits"):
        fit_context(table, tokenizer, 8)


def test_repeat_comply_shifts_the_mix_for_every_method_alike(table):
    comply = int((table["expected"] == "comply").sum())
    assert comply and comply < len(table) / 2  # the battery's train split: mostly requests to refuse
    tripled = repeat_comply(table, 3)
    assert len(tripled) == len(table) + 2 * comply and repeat_comply(table, 1).equals(table)
    assert check_identical({m: conversations(tripled, m) for m in METHODS})["conversations"] == len(tripled)
    with pytest.raises(ValueError, match="repeats"):
        repeat_comply(table, 0)


def test_replay_draws_the_starting_points_train_conversations_alike_for_every_method(table):
    tasks = arithmetic_problems(ArithmeticSpec(seed=0, n_train=12, n_validation=5, n_test=5))
    train = [task_conversation(r) for _, r in tasks[tasks["split"] == "train"].iterrows()]
    replay = replay_conversations([tasks], 5, seed=0)
    assert len(replay) == 5 and all(c in train for c in replay)  # never a validation or test problem
    assert replay == replay_conversations([tasks], 5, seed=0) != replay_conversations([tasks], 5, seed=1)
    assert len({json.dumps(c) for c in replay}) == 5  # without replacement
    assert sorted(map(json.dumps, replay_conversations([tasks], 100))) == sorted(map(json.dumps, train))
    assert replay_conversations([tasks], 0) == [] and not any(policy_in(c) for c in replay)
    identical = check_identical({m: [*conversations(table, m), *replay] for m in METHODS})
    assert identical["conversations"] == len(table) + 5 and identical["methods_differing"] == 0
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        replay_conversations([tasks], -1)
