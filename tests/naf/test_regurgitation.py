"""Prompts from protected documents, token edit distance and extraction rates."""

import pandas as pd
import pytest

from assets.corpora.tokenization import load_tokenizer, save_tokenizer, train_word_level_tokenizer
from assets.naf.regurgitation import (
    by_duplication,
    edit_distance,
    match_rates,
    normalised_edit_distance,
    protected_prompts,
)


@pytest.mark.parametrize(("a", "b", "d"), [
    ([], [], 0), ([1, 2, 3], [], 3), ([1, 2, 3], [1, 2, 3], 0), ([1, 2, 3], [1, 9, 3], 1),
    ([1, 2, 3], [2, 3], 1), ([2, 3], [1, 2, 3], 1), ([1, 2, 3, 4], [4, 3, 2, 1], 4), ([5, 1, 2], [1, 2, 6], 2),
])
def test_edit_distance(a, b, d):
    assert edit_distance(a, b) == d == edit_distance(b, a)


def test_match_rates():
    truth = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    samples = [truth, truth[:9] + [0], [0] * 10, truth[1:] + [11]]
    rates = match_rates(samples, truth, near_threshold=0.1)
    assert rates["sampled_exact_rate"] == 0.25
    assert rates["sampled_near_exact_rate"] == 0.5  # exact + one substitution; the shifted one needs 2 edits
    assert rates["mean_edit_distance"] == pytest.approx((0 + 0.1 + 1.0 + 0.2) / 4)
    assert normalised_edit_distance(truth[1:] + [11], truth) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="near_threshold"):
        match_rates(samples, truth, 1.0)


def test_protected_prompts_split_documents_into_prompt_and_continuation(tmp_path):
    words = "a b c d e f g h i j".split()
    tokenizer = load_tokenizer(save_tokenizer(train_word_level_tokenizer(words), tmp_path / "tok"))
    docs = pd.DataFrame({
        "doc_id": ["p1", "p2", "p3", "u1"], "protected": [True, True, True, False],
        "duplicate_count": [16, 1, 4, 1], "text": ["a b c d e f g", "b c d", "j i h g f e d c b a", "a a a a"],
        "split": "train"})
    shards = pd.DataFrame({"doc_id": ["p1", "p2", "p3", "u1"], "shard": [1, 0, 0, 1]})
    prompts = protected_prompts(docs, shards, tokenizer, prompt_words=3, continuation_words=4)
    assert prompts["doc_id"].tolist() == ["p3", "p1"]  # p2 has nothing after its prompt; sorted by copies
    bos = tokenizer.bos_token_id
    row = prompts.set_index("doc_id").loc["p1"]
    assert row["prompt_ids"] == [bos] + tokenizer.convert_tokens_to_ids(["a", "b", "c"])
    assert row["continuation_ids"] == tokenizer.convert_tokens_to_ids(["d", "e", "f", "g"])
    assert row["holder_shard"] == 1
    assert prompts.set_index("doc_id").loc["p3", "continuation_ids"] == tokenizer.convert_tokens_to_ids(list("gfed"))
    assert len(protected_prompts(docs, shards, tokenizer, 1, 2, max_documents=2)) == 2
    with pytest.raises(ValueError, match="prompt_words"):
        protected_prompts(docs, shards, tokenizer, 0, 4)


def test_by_duplication_averages_over_documents():
    reg = pd.DataFrame({
        "model": ["p", "p", "p", "cp_delta"], "doc_id": ["a", "b", "c", "a"], "duplicate_count": [16, 16, 1, 16],
        "logprob_bits": [-1.0, -3.0, -20.0, -30.0], "p_exact": [0.5, 0.125, 1e-6, 1e-9],
        "sampled_exact_rate": [0.5, 0.25, 0.0, 0.0], "sampled_near_exact_rate": [0.75, 0.5, 0.0, 0.0],
        "mean_edit_distance": [0.1, 0.2, 0.9, 0.8], "greedy_exact": [1.0, 0.0, 0.0, 0.0]})
    table = by_duplication(reg).set_index(["model", "duplicate_count"])
    assert table.loc[("p", 16), "n_documents"] == 2
    assert table.loc[("p", 16), "mean_p_exact"] == pytest.approx(0.3125)
    assert table.loc[("p", 16), "mean_logprob_bits"] == pytest.approx(-2.0)
    assert table.loc[("p", 16), "greedy_exact_share"] == pytest.approx(0.5)
    assert table.loc[("cp_delta", 16), "sampled_near_exact_rate"] == 0.0
