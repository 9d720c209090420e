"""The corpora's data checks (assets.corpora.defs over the rules in assets.corpora.validity, called directly on
planted tables): a missing value in a required column fails them (GX's range and set rules skip missing values)."""

import math

import pandas as pd

from assets.corpora.defs import code_corpus_valid, facts_documents_valid


def _failed(result) -> list[str]:
    return [f["expectation"] for f in result.metadata["failed_expectations"].data]


def test_a_missing_size_or_split_fails_the_corpus_checks():
    code = pd.DataFrame({"doc_id": ["a.py", "b.py"], "text": ["x", "y"], "split": ["train", "validation"],
                         "n_bytes": [1, 2]})
    assert code_corpus_valid(code).passed
    assert _failed(code_corpus_valid(code.assign(n_bytes=[1, math.nan]))) == [
        "expect_column_values_to_not_be_null(column='n_bytes')"]
    facts = pd.DataFrame({"doc_id": ["d0", "d1"], "text": ["x", "y"], "split": ["train", "test"],
                          "n_words": [1, 1], "duplicate_count": [3, 1], "protected": [True, False]})
    assert facts_documents_valid(facts).passed
    failed = _failed(facts_documents_valid(facts.assign(split=["train", None], duplicate_count=[math.nan, 1])))
    assert {"expect_column_values_to_not_be_null(column='split')",  # the protected/split pair rule fails too
            "expect_column_values_to_not_be_null(column='duplicate_count')"} <= set(failed), failed


def test_a_user_corpus_without_a_validation_split_fails_its_check(tmp_path):
    """One document (or validation_fraction 0) leaves no validation documents, which a model trained on the corpus
    needs: the check says so, as code_corpus_valid does; two sources or hashes in one table fail it too."""
    from assets.corpora.defs import user_corpus_valid
    from assets.corpora.user_corpus import read_user_corpus

    path = tmp_path / "one.txt"
    path.write_text("a single document\nwith two lines\n")
    stamped = {"source_path": str(path), "corpus_hash": "0" * 64}
    single = read_user_corpus(path).assign(**stamped)
    assert single["split"].tolist() == ["train"]
    assert _failed(user_corpus_valid(single)) == [
        "expect_column_distinct_values_to_equal_set(column='split', value_set=['train', 'validation'])"]
    path.write_text("first document\n\nsecond document\n")
    both = read_user_corpus(path).assign(**stamped)
    assert user_corpus_valid(both).passed
    assert _failed(user_corpus_valid(both.assign(corpus_hash=["0" * 64, "1" * 64]))) == [
        "expect_column_unique_value_count_to_be_between(column='corpus_hash', min_value=1, max_value=1)"]


def test_a_fact_token_with_entropy_fails_the_token_truth_check():
    """A fact token is determined by the world (true entropy 0): one that is not fails the check even though every
    GX rule holds; a missing slot fails a GX rule."""
    from assets.corpora.defs import facts_token_truth_valid

    truth = pd.DataFrame({"true_entropy": [0.0, 1.5], "true_prob": [1.0, 0.25], "slot": ["attribute", "filler"],
                          "is_fact": [True, False]})
    result = facts_token_truth_valid(truth)
    assert result.passed and result.metadata["max_fact_entropy"].value == 0.0
    uncertain = facts_token_truth_valid(truth.assign(true_entropy=[0.5, 1.5]))
    assert not uncertain.passed and uncertain.metadata["max_fact_entropy"].value == 0.5
    assert "failed_expectations" not in uncertain.metadata  # the GX rules held: the fact rule alone failed it
    assert _failed(facts_token_truth_valid(truth.assign(slot=["attribute", None]))) == [
        "expect_column_values_to_not_be_null(column='slot')"]
