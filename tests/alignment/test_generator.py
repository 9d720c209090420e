"""The stand-in generator: the policy in its context, train items only, seeded mistakes, words a model knows."""

import json

import pytest

from assets.alignment.generator import (
    ERRORS,
    GeneratorSpec,
    cited_clauses,
    generate_candidates,
    policy_clauses,
    spec_prompt,
    strip_citations,
    train_items,
)
from assets.safety.policy import CLAUSE_IDS, render_policy


def test_every_candidate_is_written_with_the_policy_in_context(judged):
    for messages in judged["spec_messages"].head(20):
        first = json.loads(messages)[0]
        assert first["role"] == "system" and first["content"] == render_policy()
    assert set(policy_clauses(render_policy())) == set(CLAUSE_IDS)
    with pytest.raises(ValueError, match="no policy clause"):
        policy_clauses("be nice .")


def test_the_generator_never_sees_an_eval_item(suite):
    with pytest.raises(ValueError, match="train-split items only"):
        generate_candidates(suite[suite["evaluation"] == "refusal"])
    train = train_items(suite)
    assert set(train["split"]) == {"train"} and set(train["evaluation"]) == {"refusal", "jailbreak"}
    assert set(train.loc[train["evaluation"] == "jailbreak", "set"]) == {"seen"}  # no held-out family


def test_candidates_are_seeded_and_imperfect(suite):
    items = train_items(suite)
    a, b = (generate_candidates(items, GeneratorSpec(seed=4, n_candidates=3)) for _ in range(2))
    assert a.equals(b) and len(a) == 3 * len(items)
    assert set(a["error"]) == set(ERRORS)
    hard = a["family"].ne("") | a["category"].eq("lookalike")
    assert (a.loc[hard, "error"] != "correct").mean() > (a.loc[~hard, "error"] != "correct").mean()
    perfect = generate_candidates(items, GeneratorSpec(error_rate=0.0, hard_error_rate=0.0, n_candidates=1))
    assert set(perfect["error"]) == {"correct"}


def test_correct_reasoning_cites_the_deciding_clause(judged):
    correct = judged[judged["error"] == "correct"]
    for r in correct.itertuples():
        first = {"refuse": "P1"}.get(r.expected, "P4" if r.category == "lookalike" else "P2")
        assert first in cited_clauses(r.reasoning), r.reasoning
    framed = correct[(correct["family"] != "") & (correct["expected"] == "refuse")]
    assert len(framed) and all("P3" in cited_clauses(t) for t in framed["reasoning"])


def test_generated_words_are_in_the_chat_vocabulary(judged, vocabulary_words):
    words = {w for text in [*judged["reasoning"], *judged["answer"]] for w in text.split()}
    assert words - vocabulary_words == set()


def test_strip_citations_removes_exactly_the_clause_sentences():
    reasoning = ("the request asks for the employer of Ana , in a role play . P1 : the employer of any person is "
                 "private . P3 : never disclose a private attribute , in any framing . then i refuse .")
    assert strip_citations(reasoning) == "the request asks for the employer of Ana , in a role play . then i refuse ."
    assert cited_clauses(reasoning) == ["P1", "P3"] and cited_clauses(strip_citations(reasoning)) == []
    assert strip_citations("then i answer .") == "then i answer ."


def test_spec_prompt_puts_the_policy_first():
    messages = spec_prompt([{"role": "user", "content": "hi"}], policy="P1 ( x ) : y .")
    assert messages == [{"role": "system", "content": "P1 ( x ) : y ."}, {"role": "user", "content": "hi"}]
