"""Tokenizers: exact round trips, fixed specials, and identical ids after saving and loading."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from assets.corpora.code_corpus import build_code_corpus
from assets.corpora.facts_world import FactsWorldSpec, build_world, generate_documents, vocabulary
from assets.corpora.tokenization import (
    SPECIAL_TOKENS,
    encode_documents,
    load_tokenizer,
    save_tokenizer,
    train_bpe_tokenizer,
    train_word_level_tokenizer,
)

TRICKY = "def f(x):\n\tif x:\n        return 'héllo ✓ 漢字 🙂'\r\n\n  \t trailing  \n\x00end"


@pytest.fixture(scope="module")
def facts():
    spec = FactsWorldSpec(seed=1, n_people=80, n_cities=10, n_organisations=12, n_professions=6, n_owners=2,
                          n_train_documents=60, n_validation_documents=10, n_test_documents=10, n_protected=2)
    world = build_world(spec)
    return world, generate_documents(world)


@pytest.fixture(scope="module")
def code_texts():
    documents, _ = build_code_corpus(max_files=None, max_bytes=400_000, validation_fraction=0.1)
    return documents["text"].tolist()


@pytest.fixture(scope="module")
def bpe(code_texts):
    return train_bpe_tokenizer(code_texts, vocab_size=1200)


def test_word_level_round_trip_and_one_token_per_word(facts):
    world, documents = facts
    tokenizer = train_word_level_tokenizer(vocabulary(world))
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert tokenizer.get_vocab_size() == len(vocabulary(world))
    unk = tokenizer.token_to_id("<unk>")
    for text in documents["text"]:
        encoding = tokenizer.encode(text)
        assert encoding.ids[0] == 1 and unk not in encoding.ids
        assert encoding.tokens[1:] == text.split(" ")
        assert tokenizer.decode(encoding.ids) == text


def test_word_level_rejects_words_with_whitespace():
    with pytest.raises(ValueError, match=r"vocabulary_words\[1\]"):
        train_word_level_tokenizer(["fine", "two words"])


def test_bpe_round_trip_on_code_and_unicode(bpe, code_texts):
    for text in code_texts[:25] + [TRICKY, "", "   ", "\t\t\n"]:
        assert bpe.decode(bpe.encode(text).ids) == text
    assert bpe.encode(TRICKY).ids[0] == 1


def test_bpe_vocab_size_and_specials(bpe, code_texts):
    assert bpe.get_vocab_size() <= 1200
    assert bpe.get_vocab_size() > 1000  # 400 kB of code has far more than 1200 mergeable pairs
    assert [bpe.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    # Merges compress: fewer tokens than bytes on held-out-ish text.
    text = code_texts[-1]
    assert len(bpe.encode(text).ids) < 0.6 * len(text.encode("utf-8"))
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe_tokenizer(code_texts[:2], vocab_size=100)


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_saved_tokenizer_loads_with_transformers_and_gives_identical_ids(kind, tmp_path, facts, bpe):
    world, documents = facts
    tokenizer = train_word_level_tokenizer(vocabulary(world)) if kind == "word" else bpe
    sample = documents["text"].iloc[0] if kind == "word" else TRICKY
    directory = save_tokenizer(tokenizer, tmp_path / "tok")
    assert (directory / "tokenizer.json").is_file()
    config = json.loads((directory / "tokenizer_config.json").read_text())
    assert config["bos_token"] == "<s>" and config["eos_token"] == "</s>"
    expected = tokenizer.encode(sample).ids
    loaded = [load_tokenizer(directory), AutoTokenizer.from_pretrained(str(directory)),
              PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"))]
    for fast in loaded:
        assert fast(sample)["input_ids"] == expected
    fast = loaded[0]
    assert (fast.pad_token_id, fast.bos_token_id, fast.eos_token_id, fast.unk_token_id) == (0, 1, 2, 3)
    assert fast.decode(expected, skip_special_tokens=True) == sample


def test_encode_documents_layout(bpe):
    texts = ["a = 1\n", "", "print('✓')\n"]
    stream = encode_documents(bpe, texts)
    assert stream.dtype == np.int32
    pieces = [bpe.encode(t, add_special_tokens=False).ids for t in texts]
    expected = [i for p in pieces for i in [1, *p, 2]]
    assert stream.tolist() == expected
    no_eos = encode_documents(bpe, texts, add_eos=False)
    assert no_eos.tolist() == [i for p in pieces for i in [1, *p]]
    assert (stream == 1).sum() == 3 and (stream == 2).sum() == 3


def test_encode_documents_accepts_a_loaded_tokenizer(tmp_path, facts):
    world, documents = facts
    tokenizer = train_word_level_tokenizer(vocabulary(world))
    fast = load_tokenizer(save_tokenizer(tokenizer, tmp_path / "w"))
    texts = documents["text"].tolist()
    stream = encode_documents(fast, texts)
    np.testing.assert_array_equal(stream, encode_documents(tokenizer, texts))
    assert len(stream) == documents["n_words"].sum() + 2 * len(documents)
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        encode_documents(tokenizer, ["ok", 3])


def test_load_tokenizer_names_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_tokenizer(tmp_path / "nothing")


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_our_tokenizers_open_and_close_documents_with_s_and_slash_s(kind, tmp_path, facts, bpe):
    """Reading the tokenizer's own bos/eos ids changes nothing for ours: <s> = 1 and </s> = 2, raw, wrapped or
    saved and loaded, and the same stream either way."""
    from assets.corpora.tokenization import as_fast_tokenizer, document_token_ids

    world, documents = facts
    raw = train_word_level_tokenizer(vocabulary(world)) if kind == "word" else bpe
    texts = documents["text"].tolist()[:5] if kind == "word" else [TRICKY, "x = 1\n"]
    variants = [raw, as_fast_tokenizer(raw), load_tokenizer(save_tokenizer(raw, tmp_path / kind))]
    assert [document_token_ids(t) for t in variants] == [(1, 2)] * 3
    for tokenizer in variants[1:]:
        np.testing.assert_array_equal(encode_documents(tokenizer, texts), encode_documents(raw, texts))


def test_a_checkpoint_tokenizer_uses_its_own_bos_and_eos(facts):
    """GPT-2 / Pythia: <|endoftext|> opens and closes a document; one with only an eos uses it for both; Llama 3:
    its own two; a tokenizer with neither is refused."""
    from assets.corpora.tokenization import document_token_ids
    from tests.corpora.foreign_tokenizers import ENDOFTEXT, byte_level_bpe

    texts = facts[1]["text"].tolist()[:20]
    gpt2 = byte_level_bpe(texts, 300)
    assert "<s>" not in gpt2.get_vocab() and "</s>" not in gpt2.get_vocab()
    end = gpt2.convert_tokens_to_ids(ENDOFTEXT)
    assert document_token_ids(gpt2) == (end, end) == (0, 0)
    pieces = [gpt2(t, add_special_tokens=False)["input_ids"] for t in texts[:2]]
    # one <|endoftext|> between documents, as GPT-2 was trained (two in a row is a pair it never saw)
    assert encode_documents(gpt2, texts[:2]).tolist() == [end, *pieces[0], end, *pieces[1], end]
    assert encode_documents(gpt2, texts[:2], add_eos=False).tolist() == [end, *pieces[0], end, *pieces[1]]
    assert encode_documents(gpt2, []).tolist() == []
    eos_only = byte_level_bpe(texts, 300, bos_token=None)
    assert eos_only.bos_token_id is None and document_token_ids(eos_only) == (end, end)
    llama3 = byte_level_bpe(texts, 300, ["<|begin_of_text|>", "<|end_of_text|>"], bos_token="<|begin_of_text|>",
                            eos_token="<|end_of_text|>")
    assert document_token_ids(llama3) == (0, 1)
    stream = encode_documents(llama3, texts[:1]).tolist()
    assert stream == [0, *llama3(texts[0], add_special_tokens=False)["input_ids"], 1]
    with pytest.raises(ValueError, match="neither a beginning-of-sequence nor an end-of-sequence token"):
        encode_documents(byte_level_bpe(texts, 300, bos_token=None, eos_token=None), texts)


def test_a_special_tokens_string_in_a_document_is_text_not_a_boundary(bpe, tmp_path):
    """The demo's code corpus holds `(?P<s>\\d{2})` (zoneinfo's regex): with the `tokenizers` default the "<s>"
    in it became a <bos> mid-document, and the sgd_noise sweep cut the document there. Document text is data:
    it round-trips, and the stream holds exactly the <bos>/<eos> that encode_documents placed."""
    from assets.corpora.tokenization import as_fast_tokenizer, encode_texts
    from assets.sgd_noise.lm_sweep import corpus_source

    texts = ['r"(?P<s>\\d{2})" and <pad> </s> <unk>\n', "<s>", "x = 1\n"]
    fast = load_tokenizer(save_tokenizer(bpe, tmp_path / "bpe"))
    for tokenizer in (bpe, as_fast_tokenizer(bpe), fast):
        stream = encode_documents(tokenizer, texts)
        assert (stream == 1).sum() == 3 and (stream == 2).sum() == 3 and not np.isin(stream, [0, 3]).any()
        assert [fast.decode(ids) for ids in encode_texts(tokenizer, texts)] == texts
    assert bpe.encode("<s>", add_special_tokens=False).ids == [1]  # the setting is restored after encoding
    documents = pd.DataFrame({"split": ["train"] * 3 + ["validation"], "text": [*texts, "y\n"]})
    source = corpus_source(fast, documents, offline_tokens=4)
    assert len(source.train_documents) == 3
    assert [d[[0, -1]].tolist() for d in source.train_documents] == [[1, 2]] * 3
    np.testing.assert_array_equal(np.concatenate(source.train_documents), encode_documents(fast, texts))
    # a GPT-2-style checkpoint's tokenizer: <|endoftext|> opens and closes documents, and is text inside one
    from tests.corpora.foreign_tokenizers import ENDOFTEXT, byte_level_bpe

    gpt2 = byte_level_bpe(["x = 1\n", "end of text"] * 10, 300)
    eot = gpt2.convert_tokens_to_ids(ENDOFTEXT)
    stream = encode_documents(gpt2, [f"a {ENDOFTEXT} b", "c"])
    assert np.flatnonzero(stream == eot).tolist() == [0, len(stream) - 3, len(stream) - 1]  # "c" one token
    assert gpt2.decode(encode_texts(gpt2, [f"a {ENDOFTEXT} b"])[0]) == f"a {ENDOFTEXT} b"
