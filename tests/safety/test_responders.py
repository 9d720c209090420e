"""The in-process responder on a tiny chat model (prompts too long for its positions are left unanswered, not
graded as safe), the vocabulary coverage of a word-level tokenizer, keys, the card per responder, and an
endpoint re-run replacing only its own rows."""

import json

import pandas as pd
import pytest

from assets.chat.format import prompt_ids
from assets.lm.model import ModelSize
from assets.safety.policy import REFUSAL
from assets.safety.responders import (
    KEY_COLUMNS,
    REFERENCES,
    keyed,
    model_responder,
    replace_rows,
    run_model,
    run_references,
    system_card,
    vocabulary_coverage,
)
from tests.chat.conftest import make_model, make_tokenizer


@pytest.fixture(scope="module")
def small(suite):
    """A refusal-and-hierarchy slice of the suite, a tokenizer knowing only part of its words, a model whose
    positions fit only the shorter half of the prompts."""
    items = suite[suite["evaluation"].isin(["refusal", "hierarchy"])].reset_index(drop=True)
    words = sorted({w for m in items["messages"] for x in json.loads(m) for w in x["content"].split()})
    tokenizer = make_tokenizer(extra=words[: len(words) // 2] + REFUSAL.split())
    lengths = sorted(len(prompt_ids(tokenizer, json.loads(m))) for m in items.loc[items["split"] == "eval", "messages"])
    positions = lengths[len(lengths) // 2] + 2 + 4 + 1  # the median prompt fits an answer of 4 tokens, no reasoning
    model = make_model(tokenizer, size=ModelSize("safety-tiny", d_model=16, n_layers=1, n_heads=2, d_ff=32,
                                                 context_length=positions))
    return items, tokenizer, model


def test_the_model_responder_leaves_out_what_does_not_fit(small):
    items, tokenizer, model = small
    generate = model_responder(model, tokenizer, budget=4, max_answer_tokens=4)

    def respond(batch):  # the untrained model writes words it cannot spell (""): give what it generated words
        return [{**r, "content": r["content"] or ("sure" if r["finish_reason"] else "")} for r in generate(batch)]

    respond.unanswered = generate.unanswered
    results = run_model(respond, items, model="tiny", model_uri="models:/tiny/1", batch_size=16)
    assert list(results.columns[:4]) == KEY_COLUMNS and (results["responder"] == "model").all()
    assert len(results) == int((items["split"] == "eval").sum())
    assert results["answered"].any() and not results["answered"].all()
    assert (results.loc[~results["answered"], "response"] == "").all()
    # what was generated says why it ended; what did not fit was never generated
    assert set(results.loc[results["answered"], "finish_reason"]) <= {"stop", "length"}
    assert (results.loc[~results["answered"], "finish_reason"] == "").all()
    # the budget each reply got: the 4 asked, or less where the prompt fits only with less; none if not asked
    asked = results.loc[results["answered"], "applied_budget"]
    assert asked.between(0, 4).all() and (asked == 4).any()
    assert results.loc[~results["answered"], "applied_budget"].isna().all()
    # an empty generation is unanswered too, not a safe refusal
    bare = run_model(generate, items, model="tiny", model_uri="models:/tiny/1", batch_size=16)
    assert not bare.loc[bare["response"] == "", "answered"].any()
    card = system_card(results).set_index("metric")
    n = card["n"]  # the card counts only what the model was asked
    assert card.loc["answered_rate", "value"] == results["answered"].mean() and n["answered_rate"] == len(results)
    asked = results[results["answered"] & (results["evaluation"] == "refusal")]
    assert 0 < n["helpful_accuracy"] == int((asked["expected"] == "comply").sum()) < (results["expected"] == "comply").sum()
    with pytest.raises(ValueError, match="budget"):
        model_responder(model, tokenizer, budget="huge")


def test_vocabulary_coverage_counts_unknown_words(small):
    items, tokenizer, _ = small
    coverage = vocabulary_coverage(tokenizer, items)
    assert 0 < coverage["oov_rate"] < 1 and coverage["missing_words"] == sorted(coverage["missing_words"])
    assert all(w not in tokenizer.get_vocab() for w in coverage["missing_words"])
    full = make_tokenizer(extra=coverage["missing_words"] + list(tokenizer.get_vocab()))
    assert vocabulary_coverage(full, items)["oov_rate"] == 0.0


def test_references_keys_and_replacing_an_endpoints_rows(suite):
    refs = run_references(suite)
    card = system_card(refs)
    assert set(card["model"]) == {"policy_oracle", "always_comply"} and (card["responder"] == "reference").all()
    every = system_card(run_references(suite, names=tuple(REFERENCES))).set_index(["model", "metric"])["value"]
    assert every[("always_refuse", "not_overrefuse_standard")] == 0.0
    assert every[("always_abstain", "not_overrefuse_standard")] == 0.0 and every[("always_abstain", "accuracy")] == 0.0
    assert every[("empty", "answered_rate")] == 0.0 and every[("always_comply", "goodness@0.1")] == 0.0
    with pytest.raises(ValueError, match="unknown reference"):
        run_references(suite, names=("oracle",))
    oracle = card[card["model"] == "policy_oracle"].set_index("metric")["value"]
    assert oracle["not_unsafe_standard"] == 1.0 and oracle["not_overrefuse_standard"] == 1.0
    oracle_rows = refs[refs["model"] == "policy_oracle"].drop(columns=["responder", "model_uri", "endpoint", "answered"])
    first = keyed(oracle_rows.assign(model="m"),
                  responder="endpoint", model="m", endpoint="http://a/v1")
    again = first.assign(score=0.0)
    merged = replace_rows(pd.concat([refs, first], ignore_index=True), again)
    assert len(merged) == len(refs) + len(first) and (merged.loc[merged["endpoint"] == "http://a/v1", "score"] == 0).all()
    assert replace_rows(None, again).equals(again.reset_index(drop=True))
    with pytest.raises(ValueError, match="responder must be one of"):
        keyed(first.drop(columns=KEY_COLUMNS + ["answered"]).assign(model="x"), responder="someone", model="x")


def test_goodness_reads_only_requests_answered_in_every_family(suite):
    rows = run_references(suite, names=("always_comply",))
    jailbreak = rows[rows["evaluation"] == "jailbreak"]
    requests = jailbreak["request_id"].unique()
    # one family of one request not answered (too long): without it that request's worst family is unknown
    rows.loc[jailbreak.index[0], "answered"] = False
    card = system_card(rows).set_index("metric")
    assert card.loc["goodness@0.1", "n"] == len(requests) - 1
    assert card.loc["goodness_request_coverage", "value"] == pytest.approx((len(requests) - 1) / len(requests))
    assert card.loc["goodness_request_coverage", "n"] == len(requests)


def test_regurgitation_items_get_room_to_regurgitate(suite):
    from types import SimpleNamespace

    from assets.safety.regurgitation import MIN_MATCH_WORDS
    from assets.safety.tables import answer_caps

    settings = SimpleNamespace(splits=["eval"], max_answer_tokens=8, regurgitation_answer_tokens=2 * MIN_MATCH_WORDS)
    groups = answer_caps(suite, settings)
    assert [cap for _, cap in groups] == [8, 24]
    assert set(groups[1][0]["evaluation"]) == {"regurgitation"} and "regurgitation" not in set(groups[0][0]["evaluation"])
    assert sum(len(part) for part, _ in groups) == int((suite["split"] == "eval").sum())
    with pytest.raises(ValueError, match="must exceed MIN_MATCH_WORDS"):
        answer_caps(suite, SimpleNamespace(**{**settings.__dict__, "regurgitation_answer_tokens": MIN_MATCH_WORDS}))
