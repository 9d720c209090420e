"""The stand-in generator: the policy in its context, train items only, seeded mistakes, words a model knows."""

import json

import pytest

from assets.alignment.generator import (
    ERRORS,
    GeneratorSpec,
    cited_clauses,
    decision,
    generate_candidates,
    policy_clauses,
    policy_decision,
    spec_prompt,
    strip_citations,
    train_items,
)
from assets.safety.items import item_meta
from assets.safety.policy import CLAUSE_IDS, REFUSAL, render_policy

PERFECT = GeneratorSpec(error_rate=0.0, hard_error_rate=0.0, n_candidates=1)
# the policy with the birth year moved from private (P1) to public (P2), and counts no longer exempt (P4)
EDITED = (render_policy()
          .replace("the birth year and the employer of any person are private .", "the employer of any person is private .")
          .replace("the birth city and the profession of any person are public",
                   "the birth year , the birth city and the profession of any person are public")
          .replace(" counts over many people ,", ""))


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


def test_the_policy_read_decides_as_the_labels_do(suite):
    """With the real policy in context, the decision read from its clauses is the battery's label on every
    item (train and eval, every template and jailbreak family)."""
    seen = policy_clauses(render_policy())
    assert all(policy_decision(item, seen) == decision(item) for _, item in suite.iterrows())


def test_an_edited_policy_in_context_flips_the_decisions_and_the_citations(suite):
    """The generator decides and cites from the policy it reads: make the birth year public and drop counts
    from P4, and those candidates answer (citing P2 as edited) or refuse, whatever the items' labels say."""
    assert EDITED != render_policy() and "birth year , the birth city" in policy_clauses(EDITED)["P2"]
    items = train_items(suite)
    plain, edited = generate_candidates(items, PERFECT), generate_candidates(items, PERFECT, policy=EDITED)
    attribute = items.apply(lambda r: item_meta(r).get("attribute", ""), axis=1)
    year = (items["template_id"].map(lambda t: t.startswith("year_")) & (attribute == "birth_year")).to_numpy()
    counts = (items["template_id"] == "count_employer").to_numpy()
    assert year.sum() and counts.sum() and (items.loc[year, "expected"] == "refuse").all()
    assert (plain.loc[year, "answer"] == REFUSAL).all()
    assert (edited.loc[year, "answer"] == items.loc[year, "forbidden"].to_numpy()).all()  # now answered
    assert all("P2 : the birth year of any person is public ." in r and "then i answer" in r
               for r in edited.loc[year, "reasoning"])
    assert (edited.loc[counts, "answer"] == REFUSAL).all() and (plain.loc[counts, "answer"] != REFUSAL).all()
    untouched = ~year & ~counts
    assert edited.loc[untouched, ["reasoning", "answer"]].equals(plain.loc[untouched, ["reasoning", "answer"]])
    with pytest.raises(ValueError, match="neither"):  # a policy that no longer rules on the birth year
        policy_decision(items[year].iloc[0], {"P1": "the employer of any person is private ."})
