"""The safety Dagster side's plain helpers: the checks' rules beyond GX (held-out templates, every responder
present, the judge's trust), the metadata summaries, and the choice of judge, each shown to fail."""

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from assets.safety import validity
from assets.safety.tables import (
    card_by_model,
    chosen_judge,
    findings_scale,
    items_by_evaluation,
    model_run_numbers,
    parse_budget,
    words_by_source,
)
from resources.validation import expectations, gx_check, validate_frame


def test_held_out_templates_and_evaluations_on_eval():
    items = pd.DataFrame({"split": ["train", "eval", "eval"], "template_id": ["t1", "t2", "t3"],
                          "evaluation": ["refusal", "refusal", "bias"]})
    assert validity.templates_in_both_splits(items) == [] and validity.every_evaluation_on_eval(items)
    leaky = items.assign(template_id=["t1", "t1", "t3"])
    assert validity.templates_in_both_splits(leaky) == ["t1"]
    assert not validity.every_evaluation_on_eval(items.assign(split=["train", "eval", "train"]))
    assert items_by_evaluation(items).set_index("evaluation").loc["refusal"].to_dict() == {"eval": 1, "train": 1}


def test_results_and_card_rules():
    results = pd.DataFrame({"responder": ["model", "reference", "reference"], "endpoint": "", "item_id": "i1",
                            "model": ["chat-sft", "policy_oracle", "always_comply"], "model_uri": "",
                            "score": [0.5, 1.0, 0.0]})
    assert gx_check(*validity.results(expectations(), results), name="r").passed
    assert not gx_check(*validity.results(expectations(), results.assign(score=[1.5, 1, 0])), name="r").passed
    assert validity.every_responder_present(results, ["chat-sft"], ["policy_oracle", "always_comply"])
    assert not validity.every_responder_present(results, ["chat-sft", "chat-rl"], ["policy_oracle"])
    assert not validity.every_responder_present(results, ["chat-sft"])  # the degenerate scripts are missing
    card = pd.DataFrame({"responder": "model", "model": ["a", "a"], "model_uri": "", "endpoint": "",
                         "metric": ["not_unsafe", "bias"], "value": [0.9, float("nan")], "n": [4, 0]})
    finite, _ = validity.card(expectations(), card)
    assert len(finite) == 1 and gx_check(*validity.card(expectations(), card), name="c").passed
    assert list(card_by_model(card)["metric"]) == ["not_unsafe"]
    # a rate above 1 fails (the old rule let values up to 1e6 pass); a mean word count may exceed 1, not go below 0
    assert not gx_check(*validity.card(expectations(), card.assign(value=[1.5, float("nan")])), name="c").passed
    words = card.assign(metric=["mean_lcs_words", "bias"], value=[7.5, float("nan")])
    assert gx_check(*validity.card(expectations(), words), name="c").passed
    assert not gx_check(*validity.card(expectations(), words.assign(value=[-1.0, 0.5])), name="c").passed
    assert "all five references" in validity.DESCRIPTIONS["results_valid"]
    assert findings_scale(card, "tiny") == "tiny profile: a on the eval split"
    assert findings_scale(card, "demo", budget="32", max_answer_tokens=16) == (
        "demo profile: a on the eval split, reasoning budget 32, answers of at most 16 tokens")
    assert findings_scale(card.assign(responder="reference"), "demo") == "demo profile: no models on the eval split"


def test_judge_trust_and_small_numbers():
    agreement = pd.DataFrame({"rubric": ["refusal", "refusal", "leak"], "kappa": [0.9, 0.7, 0.65]})
    kappas = validity.min_kappa_by_rubric(agreement)
    assert kappas.to_dict() == {"leak": 0.65, "refusal": 0.7} and validity.judge_trusted(kappas, 1.0)
    assert not validity.judge_trusted(kappas.replace(0.65, float("nan")), 1.0)
    assert not validity.judge_trusted(kappas.iloc[:0], 1.0)
    # agreeing on the few verdicts it gives is not enough: it must give them
    assert validity.judge_trusted(kappas, 0.9) and not validity.judge_trusted(kappas, 0.5)
    assert not validity.judge_trusted(kappas, float("nan"))
    judged = pd.DataFrame({"judged": [True, None, False, True]})  # a verdict on 3 of 4
    trusted, worst, rate = validity.judge_agreement(agreement, judged)
    assert not trusted and worst.equals(kappas) and rate == 0.75
    assert validity.judge_agreement(agreement, judged.fillna(True))[0]
    assert parse_budget(" 16 ") == 16 and parse_budget("medium") == "medium"
    words = pd.DataFrame({"word": ["a", "b", "c"], "source": ["policy", "eval", "eval"]})
    assert words_by_source(words) == {"eval_words": 2, "policy_words": 1}
    answered = pd.DataFrame({"answered": [True, False, False]})
    assert model_run_numbers("sft", 1.26, {"oov_rate": 0.1}, answered) == {
        "sft_seconds": 1.3, "sft_oov_rate": 0.1, "sft_items_unanswered": 2}


def test_the_judge_is_the_endpoint_or_a_named_chat_model():
    endpoint = SimpleNamespace(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="NONE")
    judge, name = chosen_judge(endpoint, "chat_rl", {}, "", "cpu", seed=0, max_answer_tokens=4)
    assert name == endpoint.base_url and judge.endpoint.model == "m" and judge.request["max_tokens"] == 4
    with pytest.raises(ValueError, match="judge must be one of \\['chat_sft'\\]"):
        chosen_judge(None, "chat_rl", {"chat_sft": {}}, "", "cpu", seed=0, max_answer_tokens=4)


def test_the_held_out_battery_drops_training_repeats(world, documents):
    from assets.safety.tables import held_out_battery, overlap_numbers
    from tests.safety.conftest import SUITE

    documents = documents.assign(protected=documents["protected"].astype(bool))
    clean, overlap, _ = held_out_battery(world, documents, pd.DataFrame({"split": [], "prompt": []}), SUITE)
    assert overlap.empty and validity.items_held_out(clean, pd.Series([], dtype=str))[0]
    repeated = clean[(clean["split"] == "eval") & (clean["evaluation"] == "hallucination")].iloc[0]
    prompt = " ".join(m["content"] for m in json.loads(repeated["messages"]) if m["role"] == "user")
    tasks = pd.DataFrame({"split": ["train", "eval"], "prompt": [prompt, "never asked"]})
    held_out, numbers = validity.items_held_out(clean, tasks["prompt"].iloc[:1])
    assert not held_out and numbers["of_them_outside_hierarchy"] >= 1  # the check sees the repeat
    items, overlap, prompts = held_out_battery(world, documents, tasks, SUITE)
    assert list(prompts) == [prompt] and repeated["request_id"] not in set(items["request_id"])
    assert overlap_numbers(overlap)["training_overlap_dropped"] >= 1 and validity.items_held_out(items, prompts)[0]


def test_references_alone_and_the_budget_note(suite):
    from assets.safety.tables import (
        BUDGET_POST_HOC,
        DEMO_BUDGET,
        DEMO_PHRASINGS_POST_HOC,
        ask_responders,
        budget_post_hoc,
    )

    settings = SimpleNamespace(splits=["eval"], cpu_threads=1, endpoints=[], regurgitation_answer_tokens=24,
                               max_answer_tokens=8)
    results, numbers, missing = ask_responders(suite, {}, settings, device="cpu", tracking_uri="")
    assert numbers == {} and missing is None and validity.every_responder_present(results, [])
    assert budget_post_hoc("demo", DEMO_BUDGET) == f"{BUDGET_POST_HOC}; {DEMO_PHRASINGS_POST_HOC}"
    assert budget_post_hoc("demo", "8") == DEMO_PHRASINGS_POST_HOC and budget_post_hoc("tiny", DEMO_BUDGET) == ""
    judged = pd.DataFrame({"judged": [True, None, False, True]})
    assert validity.verdict_rate(judged) == 0.75 and validity.verdict_rate(judged.iloc[:0]) == 0.0


def test_a_missing_count_or_responder_fails_its_check_a_nan_card_value_over_an_empty_set_does_not():
    card = pd.DataFrame({"responder": "model", "model": ["a", "a"], "model_uri": "", "endpoint": "",
                         "metric": ["not_unsafe", "bias"], "value": [0.9, float("nan")], "n": [4, 0]})
    assert validate_frame(*validity.card(expectations(), card), name="c")[0]
    ok, outcomes = validate_frame(*validity.card(expectations(), card.assign(n=[float("nan"), 0])), name="c")
    assert not ok and [o["expectation"] for o in outcomes if not o["success"]] == [
        "expect_column_values_to_not_be_null(column='n')"]
    results = pd.DataFrame({"responder": ["model", None], "endpoint": "", "item_id": "i1", "model_uri": "",
                            "model": ["chat-sft", "policy_oracle"], "score": [0.5, 1.0]})
    ok, outcomes = validate_frame(*validity.results(expectations(), results), name="r")
    assert not ok and [o["expectation"] for o in outcomes if not o["success"]] == [
        "expect_column_values_to_not_be_null(column='responder')"]
