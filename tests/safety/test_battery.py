"""The battery end to end on scripted responders: a policy-following oracle, an always-refuse one, an
always-comply one, one broken only by held-out jailbreak families, and an endpoint through the chat client."""

from types import SimpleNamespace

import pandas as pd
import pytest

from assets.chat.client import Endpoint
from assets.safety.battery import RESULT_COLUMNS, endpoint_responder, run_battery
from assets.safety.jailbreaks import FAMILIES, HELD_OUT
from assets.safety.oracle import ideal_response, leaky_response, scripted_responder
from assets.safety.policy import REFUSAL


def _values(table):
    return dict(zip(table["metric"], table["value"], strict=True))


def test_the_policy_oracle_scores_perfectly(suite):
    results, table = run_battery(scripted_responder(suite, ideal_response), suite, model="oracle")
    assert list(results.columns) == RESULT_COLUMNS
    assert len(results) == int((suite["split"] == "eval").sum())
    assert set(results["evaluation"]) == set(suite["evaluation"])
    assert (results["score"] == 1.0).all(), results[results["score"] < 1][["item_id", "response"]]
    v = _values(table)
    for metric in ("not_unsafe_standard", "not_overrefuse_standard", "not_unsafe_challenging",
                   "not_overrefuse_challenging", "not_overrefuse_lookalike", "goodness@0.1",
                   "goodness@0.1_held_out", "accuracy", "accuracy_ambiguous", "accuracy_disambiguated",
                   "win_rate"):
        assert v[metric] == 1.0, metric
    assert v["hallucination_rate"] == 0.0 and v["regurgitation_rate"] == 0.0
    assert (table["model"] == "oracle").all() and (table["n"] > 0).any()


def test_always_refusing_is_safe_and_useless(suite):
    _, table = run_battery(lambda batch: [REFUSAL] * len(batch), suite)
    v = _values(table)
    assert v["not_unsafe_standard"] == 1.0 and v["goodness@0.1"] == 1.0
    assert v["not_overrefuse_standard"] == 0.0 and v["not_overrefuse_lookalike"] == 0.0
    assert v["win_rate_developer_topic"] == 1.0 and v["win_rate_system_format"] == 0.0
    assert v["accuracy_ambiguous"] == 0.0  # a refusal is not "unknown"


def test_always_complying_leaks_and_stereotypes(suite):
    _, table = run_battery(scripted_responder(suite, leaky_response), suite)
    v = _values(table)
    assert v["not_unsafe_standard"] == 0.0 and v["not_unsafe_challenging"] == 0.0
    assert v["goodness@0.1"] == 0.0 and v["not_unsafe_jailbreak"] == 0.0
    assert v["not_overrefuse_standard"] == 1.0
    assert v["win_rate"] == 0.0 and v["regurgitation_rate"] == 1.0
    assert v["stereotyped_answer_rate"] == 1.0 and v["accuracy_ambiguous"] == 0.0
    assert v["accuracy_disambiguated"] == pytest.approx(0.5)
    assert v["hallucination_rate"] > 0


def test_goodness_sees_the_worst_family(suite):
    def rule(item):
        return leaky_response(item) if FAMILIES.get(item["family"]) == HELD_OUT else ideal_response(item)

    _, table = run_battery(scripted_responder(suite, rule), suite)
    v = _values(table)
    assert v["goodness@0.1_seen"] == 1.0 and v["goodness@0.1_held_out"] == 0.0 and v["goodness@0.1"] == 0.0
    assert v["not_unsafe_jailbreak"] == pytest.approx(0.5)
    assert v["not_unsafe_standard"] == 1.0  # unwrapped requests are still refused


def test_responses_with_reasoning_and_bad_batches(suite):
    refusals = suite[(suite["evaluation"] == "refusal") & (suite["expected"] == "refuse")]

    forbidden = refusals[refusals["split"] == "eval"]["forbidden"].tolist()

    def thinks_aloud(batch):  # one batch holds every item, in order
        return [{"content": REFUSAL, "reasoning": f"the value is {value}"} for value in forbidden]

    results, _ = run_battery(thinks_aloud, refusals, batch_size=len(forbidden))
    assert results["leaked_in_reasoning"].all() and not results["leaked"].any()
    with pytest.raises(ValueError, match="responses for"):
        run_battery(lambda batch: [REFUSAL], refusals, batch_size=4)
    with pytest.raises(ValueError, match="no items in splits"):
        run_battery(lambda batch: [REFUSAL] * len(batch), refusals, splits=("validation",))
    train, _ = run_battery(lambda batch: [REFUSAL] * len(batch), suite, splits=("train",))
    assert set(train["split"]) == {"train"} and "regurgitation" not in set(train["evaluation"])


def test_the_battery_is_deterministic(suite):
    respond = scripted_responder(suite, ideal_response)
    a, ta = run_battery(respond, suite, batch_size=7)
    b, tb = run_battery(respond, suite, batch_size=64)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(ta, tb)


class _FakeCompletions:
    """Stands in for an OpenAI client's chat.completions: answers as the oracle, with some reasoning."""

    def __init__(self, oracle):
        self.oracle, self.calls = oracle, []

    def create(self, **kwargs):
        self.calls.append(kwargs)
        answer = self.oracle([kwargs["messages"]])[0]
        message = SimpleNamespace(content=answer, reasoning_content="thinking", model_extra=None)
        return SimpleNamespace(model=kwargs["model"], usage=None,
                               choices=[SimpleNamespace(index=0, message=message, finish_reason="stop")])


def test_the_battery_runs_through_the_chat_client(suite):
    items = suite[suite["split"] == "eval"].groupby("evaluation").head(4)
    completions = _FakeCompletions(scripted_responder(suite, ideal_response))
    client = SimpleNamespace(chat=SimpleNamespace(completions=completions))
    respond = endpoint_responder(Endpoint("http://127.0.0.1:9/v1", model="fake-model"), client=client,
                                 temperature=0.0)
    results, table = run_battery(respond, items, model="fake-model")
    assert (results["score"] == 1.0).all() and (results["reasoning"] == "thinking").all()
    assert completions.calls and all(c["model"] == "fake-model" and c["temperature"] == 0.0
                                     for c in completions.calls)
    assert set(table["evaluation"]) == set(results["evaluation"])
