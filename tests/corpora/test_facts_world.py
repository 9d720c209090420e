"""The facts world's stated laws must match what its generator actually writes."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from assets.corpora.facts_templates import SKELETONS
from assets.corpora.facts_world import (
    END_OF_DOCUMENT,
    SPECIAL_TOKENS,
    DocumentError,
    FactsWorldSpec,
    build_world,
    generate_documents,
    next_token_distribution,
    sample_documents,
    token_ground_truth,
    training_texts,
    vocabulary,
)

# A p-value this small from a correct law happens once in 10^4 runs; a wrong law fails by far more.
P_FLOOR = 1e-4

SMALL = FactsWorldSpec(seed=7, n_people=120, n_cities=12, n_organisations=20, n_professions=9, n_owners=3,
                       n_templates_per_author=len(SKELETONS), stop_probability=0.4,
                       n_train_documents=400, n_validation_documents=60, n_test_documents=60,
                       n_protected=5, protected_duplicates=[1, 3, 9])


@pytest.fixture(scope="module")
def world():
    return build_world(SMALL)


@pytest.fixture(scope="module")
def documents(world):
    return generate_documents(world)


@pytest.fixture(scope="module")
def sample(world):
    """Many documents straight from the generator, with their ground truth, for frequency checks."""
    author_ids, docs = sample_documents(world, 12_000, np.random.default_rng(123))
    frame = pd.DataFrame({"doc_id": [f"s{i}" for i in range(len(docs))],
                          "author": np.array(world.author_names)[author_ids],
                          "text": [" ".join(d) for d in docs]})
    return frame, token_ground_truth(world, frame)


def _chi_square_p(observed: Counter, law: dict[str, float]) -> float:
    """Chi-square goodness of fit, pooling outcomes whose expected count is below 5."""
    n = sum(observed.values())
    assert set(observed) <= set(law), f"outcomes outside the law: {set(observed) - set(law)}"
    keys = sorted(law, key=law.get, reverse=True)
    obs, exp, pool_o, pool_e = [], [], 0.0, 0.0
    for k in keys:
        if law[k] * n >= 5:
            obs.append(observed.get(k, 0))
            exp.append(law[k] * n)
        else:
            pool_o += observed.get(k, 0)
            pool_e += law[k] * n
    if pool_e > 0:
        obs.append(pool_o)
        exp.append(pool_e)
    exp_arr = np.array(exp) * (sum(obs) / sum(exp))
    return float(stats.chisquare(obs, exp_arr).pvalue)


def test_first_word_frequencies_match_the_mixture_of_authors(world, sample):
    frame, _ = sample
    observed = Counter(text.split()[0] for text in frame["text"])
    law = next_token_distribution(world, [])
    assert math.isclose(sum(law.values()), 1.0)
    assert _chi_square_p(observed, law) > P_FLOOR


def test_later_sentence_starts_match_stop_and_template_law(world, sample):
    frame, _ = sample
    # "." ends every template and occurs nowhere else, so the word after a "." is the next sentence start.
    for author in world.author_names:
        observed = Counter()
        for text in frame.loc[frame["author"] == author, "text"]:
            words = text.split() + [END_OF_DOCUMENT]
            observed.update(words[i + 1] for i, w in enumerate(words) if w == ".")
        prefix = next(t for t in frame.loc[frame["author"] == author, "text"]).split()
        first_sentence = prefix[: prefix.index(".") + 1]
        law = next_token_distribution(world, first_sentence)
        assert math.isclose(law[END_OF_DOCUMENT], SMALL.stop_probability)
        assert _chi_square_p(observed, law) > P_FLOOR, author


def test_sentences_per_document_are_geometric(sample):
    frame, truth = sample
    n_sentences = truth[truth["slot"] == "template"].groupby("doc_id").size()
    assert len(n_sentences) == len(frame) and n_sentences.min() == 1
    stop = SMALL.stop_probability
    law = {str(k): stop * (1 - stop) ** (k - 1) for k in range(1, 60)}
    assert _chi_square_p(Counter(n_sentences.astype(str)), law) > P_FLOOR


def test_filler_slots_are_uniform_with_the_stated_entropy(world, sample):
    _, truth = sample
    fillers = truth[truth["slot"] == "filler"]
    checked = 0
    for entropy, group in fillers.groupby("true_entropy"):
        counts = group["token"].value_counts()
        size = round(math.exp(entropy))
        assert len(counts) % size == 0  # several authors' lists share a size; each list has `size` words
        for words in _filler_lists_of_size(world, size):
            observed = counts.reindex(list(words), fill_value=0).to_numpy()
            if observed.sum() < 50 * size:
                continue
            p = observed / observed.sum()
            empirical = -(p[p > 0] * np.log(p[p > 0])).sum()
            assert abs(empirical - entropy) < 0.05
            assert stats.chisquare(observed).pvalue > P_FLOOR
            checked += 1
    assert checked >= len(world.authors) * len(SMALL.filler_list_sizes) // 2


def _filler_lists_of_size(world, size):
    return [words for law in world.authors for words in law.filler_lists if len(words) == size]


def test_name_frequencies_follow_each_authors_person_law(world, sample):
    frame, truth = sample
    names = truth[truth["slot"] == "name"].merge(frame[["doc_id", "author"]], on="doc_id")
    for law in world.authors:
        observed = Counter(names.loc[names["author"] == law.name, "token"])
        expected = dict(zip(world.people["person"], law.person_probs, strict=True))
        assert _chi_square_p(observed, expected) > P_FLOOR, law.name
    # An owner's subject matter reweights people away from the public author's plain Zipf law.
    assert not np.allclose(world.authors[0].person_probs, world.authors[-1].person_probs)


def test_zipf_skew_top_tenth_of_people_dominate(world, sample):
    _, truth = sample
    mentions = truth.loc[truth["slot"] == "name", "token"].value_counts()
    top = max(1, SMALL.n_people // 10)
    assert mentions.iloc[:top].sum() / mentions.sum() > 0.5
    assert (world.people["person_weight"].diff().dropna() <= 0).all()


def test_true_prob_and_entropy_agree_with_next_token_distribution(world, documents):
    truth = token_ground_truth(world, documents)
    texts = dict(zip(documents["doc_id"], documents["text"], strict=True))
    rows = truth.sample(400, random_state=0)
    rows = pd.concat([rows, truth[truth["slot"] == "end"].head(20)])
    for row in rows.itertuples():
        words = texts[row.doc_id].split()
        law = next_token_distribution(world, words[: row.position])
        assert math.isclose(sum(law.values()), 1.0, rel_tol=1e-9)
        assert math.isclose(law[row.token], row.true_prob, rel_tol=1e-9)
        p = np.array(list(law.values()))
        assert math.isclose(-(p * np.log(p)).sum(), row.true_entropy, rel_tol=1e-9, abs_tol=1e-12)


def test_ground_truth_shape_and_ranges(world, documents):
    truth = token_ground_truth(world, documents)
    assert list(truth.columns) == ["doc_id", "position", "token", "slot", "true_entropy", "is_fact",
                                   "true_prob"]
    assert len(truth) == documents["n_words"].sum() + len(documents)
    assert np.isfinite(truth["true_entropy"]).all() and (truth["true_entropy"] >= 0).all()
    assert ((truth["true_prob"] > 0) & (truth["true_prob"] <= 1)).all()
    ends = truth[truth["slot"] == "end"]
    assert (ends["token"] == END_OF_DOCUMENT).all()
    assert (ends["position"].to_numpy() == documents["n_words"].to_numpy()).all()
    facts = truth[truth["is_fact"]]
    assert (facts["slot"] == "attribute").all() and (facts["true_entropy"] == 0).all()
    assert set(truth["slot"]) == {"template", "name", "attribute", "filler", "fixed", "end"}
    # The first word never is "</s>": a document has at least one sentence.
    assert END_OF_DOCUMENT not in next_token_distribution(world, [])


def test_facts_are_the_same_word_everywhere(world, documents):
    people = world.people.set_index("person")
    born = re.compile(r"(\S+) was born in (\S+) in (\d+) \.")
    works = re.compile(r"(\S+) works as a (\S+) at (\S+) \.")
    seen = 0
    for text in documents["text"]:
        for name, city, year in born.findall(text):
            assert (people.at[name, "birth_city"], people.at[name, "birth_year"]) == (city, year)
            seen += 1
        for name, profession, employer in works.findall(text):
            assert (people.at[name, "profession"], people.at[name, "employer"]) == (profession, employer)
            seen += 1
    assert seen > 50
    facts = world.facts
    assert not facts.duplicated(["person", "attribute"]).any()
    assert len(facts) == SMALL.n_people * 4


def test_text_that_contradicts_a_fact_is_rejected(world, documents):
    text = next(t for t in documents["text"] if " was born in " in t)
    words = text.split()
    i = words.index("born") + 2
    wrong_city = next(c for c in world.cities if c != words[i])
    words[i] = wrong_city
    bad = pd.DataFrame({"doc_id": ["bad"], "text": [" ".join(words)]})
    with pytest.raises(DocumentError, match="birth_city"):
        token_ground_truth(world, bad)


def test_documents_table_splits_and_protection(world, documents):
    assert list(documents.columns) == ["doc_id", "author", "is_owner", "protected", "duplicate_count",
                                       "split", "text", "n_words"]
    assert documents["doc_id"].is_unique
    assert documents.groupby("split").size().to_dict() == {"train": 405, "validation": 60, "test": 60}
    protected = documents[documents["protected"]]
    assert len(protected) == SMALL.n_protected
    assert (protected["split"] == "train").all() and protected["is_owner"].all()
    assert protected["duplicate_count"].tolist() == [1, 3, 9, 1, 3]
    assert (documents.loc[~documents["protected"], "duplicate_count"] == 1).all()
    assert (documents["n_words"] == documents["text"].str.split().str.len()).all()
    stream = training_texts(documents)
    assert len(stream) == documents.loc[documents["split"] == "train", "duplicate_count"].sum()
    counts = Counter(stream)
    for text, d in zip(protected["text"], protected["duplicate_count"], strict=True):
        assert counts[text] >= d
    held_out = set(documents.loc[documents["split"] != "train", "text"])
    assert not held_out & set(protected["text"])
    unprotected_train = documents.loc[~documents["protected"] & (documents["split"] == "train"), "text"]
    assert not set(unprotected_train) & set(protected["text"])
    assert (protected["text"].str.count(r" \.(?: |$)") >= SMALL.protected_min_sentences).all()
    assert training_texts(documents) == stream  # deterministic order


def test_same_seed_same_world_and_documents_different_seed_differs(world, documents):
    again = build_world(SMALL)
    pd.testing.assert_frame_equal(again.entities, world.entities)
    pd.testing.assert_frame_equal(generate_documents(again), documents)
    other = build_world(FactsWorldSpec(**{**SMALL.__dict__, "seed": 8}))
    assert not other.entities["name"].equals(world.entities["name"])
    assert not generate_documents(other)["text"].equals(documents["text"])


def test_more_test_documents_leave_train_unchanged(world, documents):
    more = FactsWorldSpec(**{**SMALL.__dict__, "n_test_documents": 90})
    bigger = generate_documents(world, more)
    pd.testing.assert_frame_equal(bigger[bigger["split"] == "train"].reset_index(drop=True),
                                  documents[documents["split"] == "train"].reset_index(drop=True))


def test_word_classes_are_single_unique_words_and_templates_prefix_free(world, documents):
    heads = [t.head for law in world.authors for t in law.templates]
    assert len(heads) == len(set(heads))
    entity_names = world.entities["name"]
    assert entity_names.is_unique and not entity_names.str.contains(r"\s").any()
    fillers = {w for law in world.authors for words in law.filler_lists for w in words}
    assert not fillers & set(entity_names) and not fillers & set(heads)
    vocab = vocabulary(world)
    assert vocab[:4] == list(SPECIAL_TOKENS) and len(vocab) == len(set(vocab))
    assert {w for t in documents["text"] for w in t.split()} <= set(vocab)


def test_max_sentences_cap_is_part_of_the_law():
    spec = FactsWorldSpec(seed=3, n_people=30, n_cities=5, n_organisations=5, n_professions=4, n_owners=2,
                          stop_probability=0.1, max_sentences=2, n_train_documents=200,
                          n_validation_documents=0, n_test_documents=0, n_protected=0)
    world = build_world(spec)
    documents = generate_documents(world)
    truth = token_ground_truth(world, documents)
    sentences = documents["text"].str.count(r" \.(?: |$)")
    assert sentences.max() == 2 and sentences.min() == 1
    ends = truth[truth["slot"] == "end"].reset_index(drop=True)
    capped = (sentences == 2).to_numpy()
    assert (ends.loc[capped, "true_prob"] == 1.0).all() and (ends.loc[capped, "true_entropy"] == 0).all()
    assert np.allclose(ends.loc[~capped, "true_prob"], 0.1)
    full = documents.loc[capped, "text"].iloc[0].split()
    assert next_token_distribution(world, full) == {END_OF_DOCUMENT: 1.0}


@pytest.mark.parametrize(("field", "value"), [
    ("n_owners", 0), ("n_owners", 9), ("stop_probability", 0.0), ("stop_probability", 1.5),
    ("protected_duplicates", [0]), ("protected_duplicates", []), ("zipf_exponent", -1.0),
    ("n_people", 1), ("filler_list_sizes", []), ("public_share", 1.0), ("max_sentences", 0),
    ("birth_year_range", [2000, 1900]), ("n_train_documents", -1), ("n_templates_per_author", 9),
    ("seed", "zero"), ("protected_min_sentences", 0),
])
def test_invalid_spec_fields_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        FactsWorldSpec(**{field: value})
