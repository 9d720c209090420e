"""The in-process responder on a tiny chat model (prompts too long for its positions are left unanswered, not
graded as safe), the vocabulary coverage of a word-level tokenizer, keys, the card per responder, and an
endpoint re-run replacing only its own rows."""

import json
from types import SimpleNamespace

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
    graded = n["helpful_accuracy"] + n["helpful_accuracy_lookalike"]  # the allowed questions and the look-alikes
    assert 0 < n["helpful_accuracy"] and graded == int((asked["expected"] == "comply").sum())
    assert graded < (results["expected"] == "comply").sum()
    with pytest.raises(ValueError, match="budget"):
        model_responder(model, tokenizer, budget="huge")


def test_each_prompt_gets_its_own_largest_budget_that_fits(small):
    """Prompts that fit only with less than the budget asked each get the most they fit, not the budget of the
    longest such prompt in their batch (the old responder gave a whole batch its smallest)."""
    items, tokenizer, model = small
    positions, room, asked = model.config.max_position_embeddings, 2 + 4 + 1, 12
    generate = model_responder(model, tokenizer, budget=asked, max_answer_tokens=4)
    results = run_model(generate, items, model="tiny", model_uri="models:/tiny/1", batch_size=64)
    lengths = items.set_index("item_id")["messages"].map(lambda m: len(prompt_ids(tokenizer, json.loads(m))))
    fits = results["item_id"].map(lengths).map(lambda n: min(asked, positions - n - room))
    got = results["applied_budget"]
    assert (got[fits >= 0] == fits[fits >= 0]).all() and got[fits < 0].isna().all()
    assert fits[(fits >= 0) & (fits < asked)].nunique() >= 3  # several lowered budgets in one batch


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


class _Rejecting:
    """An OpenAI client's chat.completions that answers as the oracle, but rejects (HTTP 400, as `reprolab serve`
    does a prompt too long for the model) the requests `reject` picks and fails (HTTP 500) those `fail` picks."""

    def __init__(self, oracle, reject, fail=lambda messages: False, status: int = 400):
        self.oracle, self.reject, self.fail, self.status = oracle, reject, fail, status

    def create(self, **kwargs):
        import openai

        from tests.safety.test_battery import _FakeCompletions

        messages = kwargs["messages"]
        for pick, status, kind in ((self.reject, self.status, openai.APIStatusError),
                                   (self.fail, 500, openai.InternalServerError)):
            if pick(messages):
                response = SimpleNamespace(status_code=status, headers={}, request=None)
                cls = {400: openai.BadRequestError, 401: openai.AuthenticationError}.get(status, kind)
                raise cls(f"Error code: {status}", response=response, body={
                    "message": "messages: a prompt of 13 tokens leaves no room for an answer of 64 tokens within "
                               "the model's 64 positions" if status == 400 else "boom", "type": "x"})
        return _FakeCompletions(self.oracle).create(**kwargs)


def _endpoint_rows(suite, completions):
    from assets.chat.client import Endpoint
    from assets.safety.responders import run_endpoint

    items = suite[suite["split"] == "eval"].groupby("evaluation").head(6).reset_index(drop=True)
    client = SimpleNamespace(chat=SimpleNamespace(completions=completions))
    return items, run_endpoint(Endpoint("http://127.0.0.1:9/v1", model="m"), items, client=client, temperature=0.0)


def test_an_endpoints_rejected_requests_are_counted_apart_not_graded(suite):
    from assets.safety.oracle import ideal_response, scripted_responder
    from assets.safety.responders import request_counts

    oracle = scripted_responder(suite, ideal_response)
    refusal = {json.dumps(json.loads(m)) for m in suite.loc[suite["evaluation"] == "refusal", "messages"]}
    hierarchy = {json.dumps(json.loads(m)) for m in suite.loc[suite["evaluation"] == "hierarchy", "messages"]}
    items, rows = _endpoint_rows(suite, _Rejecting(oracle, lambda m: json.dumps(m) in refusal,
                                                   lambda m: json.dumps(m) in hierarchy))
    rejected, failed = rows["evaluation"] == "refusal", rows["evaluation"] == "hierarchy"
    assert (rows.loc[rejected, "outcome"] == "rejected").all() and (rows.loc[failed, "outcome"] == "failed").all()
    assert not rows.loc[rejected | failed, ["answered", "refused"]].any().any()  # no answer, and no refusal
    assert rows.loc[rejected, "request_error"].str.contains("HTTP 400: messages: a prompt of 13 tokens").all()
    assert rows.loc[failed, "request_error"].str.startswith("HTTP 500").all()
    assert (rows.loc[~(rejected | failed), "request_error"] == "").all() and rows.loc[~(rejected | failed), "answered"].all()
    counts = request_counts(rows).iloc[0]
    assert (counts["asked"], counts["answered"], counts["rejected"], counts["failed"]) == (
        len(rows), int((~(rejected | failed)).sum()), int(rejected.sum()), int(failed.sum()))
    assert counts["first_error"].startswith("HTTP 400")
    card = system_card(rows).set_index("metric")
    assert card.loc["request_error_rate", "value"] == pytest.approx((rejected | failed).mean())
    assert card.loc["not_unsafe_standard", "n"] == 0  # the rejected refusal items are in no metric
    # an error of the endpoint as a whole (a wrong key) stops the evaluation
    with pytest.raises(Exception, match="401"):
        _endpoint_rows(suite, _Rejecting(oracle, lambda m: True, status=401))


def test_carry_forward_keeps_other_endpoints_latest_rows_with_their_provenance(suite):
    from datetime import UTC, datetime

    from assets.safety.responders import PROVENANCE_COLUMNS, carry_forward, with_provenance

    refs = run_references(suite, names=("policy_oracle",))
    oracle = refs.drop(columns=["responder", "model_uri", "endpoint", "answered", "request_error"])

    def endpoint(url, model):
        return keyed(oracle.assign(model=model), responder="endpoint", model=model, endpoint=url)

    then, now = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)
    evaluated = with_provenance(pd.concat([refs, endpoint("http://a/v1", "a"), endpoint("http://b/v1", "b")],
                                          ignore_index=True), "evaluate-1", then)
    tonight = with_provenance(pd.concat([refs, endpoint("http://b/v1", "b")], ignore_index=True), "run-2", now)
    table, carried = carry_forward(evaluated, tonight)
    by = table.groupby(["responder", "endpoint", "evaluated_run_id"]).size().to_dict()
    assert by == {("endpoint", "http://a/v1", "evaluate-1"): len(oracle), ("endpoint", "http://b/v1", "run-2"): len(oracle),
                  ("reference", "", "run-2"): len(refs)}  # a carried, b evaluated again, references not doubled
    assert set(carried["endpoint"]) == {"http://a/v1"} and (carried["evaluated_at"] == pd.Timestamp(then)).all()
    assert carry_forward(None, tonight)[0].equals(tonight.reset_index(drop=True))
    card = system_card(table)
    assert list(card.columns[-2:]) == PROVENANCE_COLUMNS
    assert set(card.loc[card["endpoint"] == "http://a/v1", "evaluated_run_id"]) == {"evaluate-1"}
    # a table stored before the columns existed: its rows are stamped by the run that wrote it
    old = with_provenance(evaluated.drop(columns=PROVENANCE_COLUMNS), "old-run", now)
    assert set(old["evaluated_run_id"]) == {"old-run"} and with_provenance(evaluated, "x", now).equals(evaluated)


def test_reprolab_evaluate_reports_rejections_and_refuses_when_nothing_was_answered(suite, tmp_path, monkeypatch,
                                                                                    capsys):
    from assets.chat.client import Endpoint
    from assets.safety.oracle import ideal_response, scripted_responder
    from pipelines.cli import main
    from resources.tables import Lineage, materialization_files, write_table

    root = tmp_path / "warehouse"
    write_table(root, "safety", "safety_items", suite, Lineage(run_id="items", code_version="1"))
    regurgitation = {json.dumps(json.loads(m)) for m in suite.loc[suite["evaluation"] == "regurgitation", "messages"]}
    picks = {"every": lambda m: True, "regurgitation": lambda m: json.dumps(m) in regurgitation}
    oracle = scripted_responder(suite, ideal_response)

    def evaluate(reject, *extra):
        client = SimpleNamespace(chat=SimpleNamespace(completions=_Rejecting(oracle, picks[reject])))
        monkeypatch.setattr(Endpoint, "client", lambda self: client)
        code = main(["--warehouse", str(root), "evaluate", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                     *extra])
        return code, capsys.readouterr()

    n = int((suite["split"] == "eval").sum())
    code, out = evaluate("every")  # the walkthrough: every request rejected by a 64-position model
    assert code == 1 and f"{n} requests: 0 answered, 0 answered empty, {n} rejected, 0 failed" in out.err
    assert "HTTP 400: messages: a prompt of 13 tokens leaves no room" in out.err
    assert "fit with --max-tokens 48 (now 64)" in out.err and "--regurgitation-max-tokens 48 (now 64)" in out.err
    assert not materialization_files(root, "safety", "safety_results")  # nothing written
    code, out = evaluate("regurgitation")  # a share rejected: written, with a warning
    n_rejected = int(((suite["split"] == "eval") & (suite["evaluation"] == "regurgitation")).sum())
    assert code == 0 and f"{n - n_rejected} answered, 0 answered empty, {n_rejected} rejected" in out.err
    assert f"warning: {n_rejected} of {n} requests got no reply" in out.err
    assert f"{n - n_rejected} of {n} items answered and graded" in out.out
    with pytest.raises(SystemExit) as refused:  # an unknown effort, before any request
        evaluate("every", "--budget", "extreme")
    assert refused.value.code == 2 and "low, medium, high" in capsys.readouterr().err
