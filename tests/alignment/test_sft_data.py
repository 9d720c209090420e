"""The SFT data: the policy stripped from every prompt; every method on the same prompts and answers."""

import json

import pytest

from assets.alignment.sft_data import (
    METHODS,
    check_identical,
    conversations,
    fit_context,
    policy_in,
    repeat_comply,
    strip_policy,
)
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
    assert counts == {"conversations": len(table), "methods": 3, "reasoning_differs": len(table)}
    assert all(c[-1]["reasoning"] == "" for c in by_method["direct"])
    assert all("P1" not in c[-1]["reasoning"].split() for c in by_method["no_citation"])
    tampered = {**by_method, "direct": [[*c[:-1], {**c[-1], "content": "other"}] for c in by_method["direct"]]}
    with pytest.raises(ValueError, match="prompt or answer differs"):
        check_identical(tampered)


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
