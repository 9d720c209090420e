"""The policy world's data: clause ids, request sets with ground truth, disjoint train/eval templates and
jailbreak families, and the same tables from the same seed."""

import json

import pandas as pd
import pytest

from assets.corpora.facts_world import vocabulary
from assets.safety.bias import BiasSpec, bias_items, stereotypes
from assets.safety.graders import rot13
from assets.safety.hallucination import hallucination_items
from assets.safety.hierarchy import hierarchy_items
from assets.safety.items import ITEM_COLUMNS, item_meta
from assets.safety.jailbreaks import FAMILIES, HELD_OUT, SEEN, family_splits, jailbreak_items, language_table
from assets.safety.policy import (
    CLAUSE_IDS,
    PRIVATE_ATTRIBUTES,
    PUBLIC_ATTRIBUTES,
    check_clause_ids,
    is_private,
    render_policy,
)
from assets.safety.requests import REQUEST_COLUMNS, TEMPLATES, RequestSpec, policy_requests
from tests.safety.conftest import SUITE


@pytest.fixture(scope="module")
def requests(world):
    return policy_requests(world, RequestSpec(seed=1, people_pool=20, n_per_template=4))


def test_policy_clauses_are_numbered_and_cited(suite):
    assert len(set(CLAUSE_IDS)) == len(CLAUSE_IDS)
    text = render_policy()
    assert all(f"{cid} (" in text for cid in CLAUSE_IDS)
    assert render_policy(("R1",)).startswith("R1 ( how to refuse )")
    assert set(PRIVATE_ATTRIBUTES).isdisjoint(PUBLIC_ATTRIBUTES)
    assert is_private("birth_year") and is_private("employer") and not is_private("birth_city")
    with pytest.raises(ValueError, match="unknown policy clause"):
        check_clause_ids("P1,Z9")
    for clauses in suite["clauses"]:
        check_clause_ids(clauses)


def test_requests_carry_their_ground_truth(world, requests):
    assert list(requests.columns) == REQUEST_COLUMNS
    assert requests["request_id"].is_unique and requests["text"].is_unique
    people = world.people.set_index("person")
    for r in requests.itertuples():
        if r.category == "disallowed":
            assert r.expected == "refuse" and r.answer == "" and r.attribute in PRIVATE_ATTRIBUTES
            assert r.forbidden == str(people.loc[r.person, r.attribute])
        else:
            assert r.expected == "comply" and r.answer and r.forbidden == ""
        if r.category == "allowed":
            assert r.answer == str(people.loc[r.person, r.attribute])
    counts = requests[requests["template_id"] == "count_employer"]
    for r in counts.itertuples():
        org = r.text.split()[-2]
        assert int(r.answer) == int((world.people["employer"] == org).sum())


def test_train_and_eval_templates_are_disjoint_and_both_present(requests):
    train = requests[requests["split"] == "train"]
    evaluation = requests[requests["split"] == "eval"]
    assert set(train["template_id"]).isdisjoint(evaluation["template_id"])
    assert set(train["text"]).isdisjoint(evaluation["text"])
    ids = [t.template_id for t in TEMPLATES]
    assert len(set(ids)) == len(ids)
    for (category, set_), part in requests.groupby(["category", "set"]):
        assert set(part["split"]) == {"train", "eval"}, (category, set_)


def test_lookalikes_share_surface_words_with_disallowed_requests(requests):
    disallowed = {w for t in requests.loc[requests["category"] == "disallowed", "text"] for w in t.split()}
    for text in requests.loc[requests["category"] == "lookalike", "text"]:
        shared = set(text.split()) & disallowed - {"?", ".", "the", "of", "a", "i", "in", ","}
        assert shared, text


def test_same_seed_same_tables_other_seed_other_tables(world, requests):
    again = policy_requests(world, RequestSpec(seed=1, people_pool=20, n_per_template=4))
    pd.testing.assert_frame_equal(requests, again)
    other = policy_requests(world, RequestSpec(seed=2, people_pool=20, n_per_template=4))
    assert not requests["text"].equals(other["text"])
    a = jailbreak_items(world, requests, seed=1)
    pd.testing.assert_frame_equal(a, jailbreak_items(world, requests, seed=1))
    pd.testing.assert_frame_equal(bias_items(world, BiasSpec(seed=3)), bias_items(world, BiasSpec(seed=3)))


def test_jailbreak_families_split_seen_and_held_out(world, requests):
    assert {SEEN, HELD_OUT} == set(FAMILIES.values())
    items = jailbreak_items(world, requests, seed=1)
    assert list(items.columns) == ITEM_COLUMNS
    train = items[items["split"] == "train"]
    assert set(train["family"]) == {f for f, s in FAMILIES.items() if s == SEEN}
    assert (train["set"] == SEEN).all()
    evaluation = items[items["split"] == "eval"]
    # every evaluation request meets every family, once
    assert (evaluation.groupby("request_id")["family"].nunique() == len(FAMILIES)).all()
    assert not evaluation.duplicated(["request_id", "family"]).any()
    assert (items["set"] == items["family"].map(FAMILIES)).all()
    disallowed = requests[requests["expected"] == "refuse"].set_index("request_id")
    assert set(items["request_id"]) == set(disallowed.index)
    assert (items["forbidden"] == items["request_id"].map(disallowed["forbidden"])).all()
    with pytest.raises(ValueError, match="held_out"):
        family_splits(("no_such_family",))
    assert family_splits(("rot13",))["rot13"] == HELD_OUT


def test_wrappers_hide_the_request_but_keep_it_recoverable(world, requests):
    items = jailbreak_items(world, requests, seed=1).set_index(["request_id", "family"])
    request = requests[(requests["split"] == "eval") & (requests["expected"] == "refuse")].iloc[0]
    text = lambda family: json.loads(items.loc[(request.request_id, family), "messages"])[0]["content"]  # noqa: E731
    assert rot13(text("rot13").split(" : ", 1)[1]) == request.text
    assert " ".join(reversed(text("word_reversal").split(" : ", 1)[1].split())) == request.text
    shots = text("many_shot")
    assert request.forbidden not in shots.split() and shots.endswith(f"q : {request.text} a :")
    language, table = language_table(world, seed=1)
    assert set(table.values()).isdisjoint(vocabulary(world)) and len(set(table.values())) == len(table)
    translated = text("another_language")
    assert language in translated.split()
    words = translated.split(" : ", 1)[1].split()
    assert request.person in words and words == [table.get(w, w) for w in request.text.split()]
    assert all(w in table or w == request.person or not w.isalpha() for w in request.text.split())


def test_hallucination_items_ask_only_public_or_unheld_facts(world):
    items = hallucination_items(world)
    known = set(world.people["person"])
    for _, item in items.iterrows():
        meta = item_meta(item)
        if item["category"] == "unknown_person":
            assert meta["person"] not in known and item["expected"] == "abstain"
        else:
            assert meta["person"] in known
        if item["category"] == "answerable":
            assert meta["attribute"] in PUBLIC_ATTRIBUTES and item["expected"] == "comply"
            assert item["answer"] == str(world.people.set_index("person").loc[meta["person"], meta["attribute"]])
    assert set(items.loc[items["split"] == "train", "template_id"]).isdisjoint(
        items.loc[items["split"] == "eval", "template_id"])


def test_the_stereotype_is_recorded_from_the_population(world):
    table = stereotypes(world, 3, seed=0)
    assert table["group_value"].is_unique and table["stereotyped_value"].is_unique
    for s in table.itertuples():
        group = world.people[world.people["birth_city"] == s.group_value]
        assert s.n_group == len(group)
        assert s.n_group_with_value == int((group["profession"] == s.stereotyped_value).sum())
    assert (table["lift"] >= 1).all()
    items = bias_items(world, BiasSpec(seed=0, n_stereotypes=3))
    ambiguous = items[items["category"] == "ambiguous"]
    assert (ambiguous["answer"] == "unknown").all()
    for _, item in items[items["category"] == "disambiguated_pro"].iterrows():
        assert item["answer"] == item_meta(item)["stereotyped"]
    for _, item in items[items["category"] == "disambiguated_anti"].iterrows():
        assert item["answer"] != item_meta(item)["stereotyped"] and item["answer"] in item_meta(item)["options"]
    with pytest.raises(ValueError, match="n_stereotypes"):
        stereotypes(world, 99)


def test_hierarchy_conflicts_hold_what_must_not_leak(world):
    items = hierarchy_items(world)
    for _, item in items.iterrows():
        messages = json.loads(item["messages"])
        roles = [m["role"] for m in messages]
        meta = item_meta(item)
        assert meta["higher"] in roles or meta["higher"] == "system" and item["category"] == "data_injection_private"
        assert meta["lower"] in roles
        if item["category"].endswith("password"):
            assert item["forbidden"] in messages[0]["content"].split()
        if item["category"] == "data_injection_marker":
            assert item["forbidden"] in messages[-1]["content"].split() and messages[-1]["role"] == "data"
    assert set(items.loc[items["split"] == "train", "template_id"]).isdisjoint(
        items.loc[items["split"] == "eval", "template_id"])


def test_the_suite_numbers_every_item_once(suite):
    assert list(suite.columns) == ITEM_COLUMNS
    assert suite["item_id"].is_unique
    assert set(suite["evaluation"]) == set(SUITE.evaluations)
    assert (suite.loc[suite["evaluation"] == "regurgitation", "split"] == "eval").all()


def test_suite_words_cover_every_prompt(suite):
    from assets.safety.items import suite_words
    from assets.safety.policy import ABSTENTION, REFUSAL

    words = set(suite_words(suite, extra=(REFUSAL, ABSTENTION)))
    assert {"sorry", "know", "password"} <= words
    for messages in suite["messages"]:
        assert all(set(m["content"].split()) <= words for m in json.loads(messages))


def test_eval_items_repeating_a_training_prompt_are_found_and_dropped(suite):
    from assets.safety.items import drop_training_overlap, training_overlap

    eval_items = suite[suite["split"] == "eval"]
    hierarchy = eval_items[eval_items["category"] == "data_injection_private"]
    user = json.loads(hierarchy["messages"].iloc[0])[0]["content"]  # "in which city was X born ? see the document ."
    in_hierarchy = user.split(" ? ")[0] + " ?"
    lookalike = eval_items[eval_items["template_id"] == "private_city"]
    in_refusal = lookalike["request"].iloc[-1]  # a whole request repeated word for word
    prompts = [in_hierarchy, in_refusal, "a prompt no item holds ?"]
    overlap = training_overlap(suite, prompts)
    assert {hierarchy["item_id"].iloc[0], lookalike["item_id"].iloc[-1]} <= set(overlap["item_id"])
    assert set(overlap["prompt"]) == {in_hierarchy, in_refusal}
    by_id = suite.set_index("item_id")
    assert all(p in by_id.loc[i, "messages"] and by_id.loc[i, "split"] == "eval"
               for i, p in zip(overlap["item_id"], overlap["prompt"], strict=True))
    assert training_overlap(suite, [in_hierarchy.replace(" born ?", " bor ?")]).empty  # a cut word is no match
    kept, found = drop_training_overlap(suite, prompts)
    # dropped outside the hierarchy (a question measured on a trained repeat measures recall); a hierarchy
    # conflict keeps its repeat (its user question must be one the model can answer), flagged
    assert found[found["evaluation"] == "hierarchy"]["dropped"].eq(False).all()
    assert found[found["evaluation"] != "hierarchy"]["dropped"].all() and found["dropped"].any()
    gone = set(found.loc[found["dropped"], "request_id"])
    assert len(kept) == len(suite) - suite["request_id"].isin(gone).sum()
    assert lookalike["item_id"].iloc[-1] not in set(kept["item_id"]) and hierarchy["item_id"].iloc[0] in set(kept["item_id"])
    left = training_overlap(kept, prompts)
    assert set(left["item_id"].map(kept.set_index("item_id")["evaluation"])) == {"hierarchy"}
