"""Importing a local checkpoint as ``lm_facts_small``: a checkpoint with a tokenizer of its own is registered
with it and its record names it (downstream loaders then load that one), whatever its bos/eos tokens are (GPT-2's
<|endoftext|>, not our <s>/</s>); the record and the MLflow parameters state the checkpoint's own shape. One
without a tokenizer whose vocabulary is not the corpus tokenizer's, one whose tokenizer has neither a bos nor an eos
token, and one whose embedding is smaller than its tokenizer are refused before anything is logged."""

import json
import math

import dagster as dg
import pytest

from assets.corpora.tokenization import as_fast_tokenizer, train_bpe_tokenizer, train_word_level_tokenizer
from assets.lm.registration import imported_shape, imported_tokenizer, load_registered, load_tokenizer_of
from tests.corpora.foreign_tokenizers import ENDOFTEXT, byte_level_bpe

OWN_VOCAB = 300  # the checkpoint's own tokenizer; the tiny facts tokenizer has another size
TEXTS = [f"{name} was born in {city} in {year} and worked as a {job} ."
         for name in ("alice", "bob", "carol", "dave", "erin") for city in ("paris", "rome", "oslo", "lima")
         for year in (1901, 1950, 1999) for job in ("baker", "pilot", "judge")]


def gpt2_checkpoint(directory, vocab_size: int, tokenizer=None, n_layer: int = 1):
    """A tiny GPT-2 written with save_pretrained (and ``tokenizer``'s files, if given), as a user would bring."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from assets.lm.model import save_checkpoint

    ids = {} if tokenizer is None else {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_embd=16, n_layer=n_layer, n_head=2, n_positions=64,
                                       **ids))
    return save_checkpoint(model, tokenizer, directory)


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    """GPT-2's layout: a byte-level BPE whose bos and eos are both <|endoftext|> (id 0), no <s>/</s>."""
    tokenizer = byte_level_bpe(TEXTS, OWN_VOCAB)
    assert len(tokenizer) == OWN_VOCAB and tokenizer.bos_token_id == tokenizer.eos_token_id == 0
    return tokenizer


@pytest.fixture(scope="module")
def own_tokenizer():
    tokenizer = as_fast_tokenizer(train_bpe_tokenizer(TEXTS, OWN_VOCAB, min_frequency=1))
    assert len(tokenizer) == OWN_VOCAB
    return tokenizer


def test_imported_tokenizer_names_the_one_the_checkpoint_brings(tmp_path, own_tokenizer):
    corpus = as_fast_tokenizer(train_word_level_tokenizer(sorted({w for t in TEXTS for w in t.split()})))
    own = imported_tokenizer(gpt2_checkpoint(tmp_path / "own", OWN_VOCAB, own_tokenizer), corpus)
    assert own is not None and own.get_vocab() == own_tokenizer.get_vocab()
    # the same vocabulary as the corpus': the corpus tokenizer's record still names it
    assert imported_tokenizer(gpt2_checkpoint(tmp_path / "same", len(corpus), corpus), corpus) is None
    # no tokenizer: the model must read the corpus tokenizer's ids
    assert imported_tokenizer(gpt2_checkpoint(tmp_path / "bare", len(corpus)), corpus) is None
    with pytest.raises(ValueError, match=rf"no tokenizer and its model's vocabulary \({OWN_VOCAB} tokens\)"):
        imported_tokenizer(gpt2_checkpoint(tmp_path / "mismatch", OWN_VOCAB), corpus)
    with pytest.raises(FileNotFoundError, match="config.json"):
        imported_tokenizer(tmp_path, corpus)


def test_a_gpt2_style_tokenizer_is_imported_with_its_own_document_tokens(tmp_path, gpt2_tokenizer):
    """bos and eos are the tokenizer's own; with only an eos, it stands for the bos too (and the registered tokenizer
    says so); with neither, the error names the folder and the tokens needed."""
    corpus = as_fast_tokenizer(train_word_level_tokenizer(sorted({w for t in TEXTS for w in t.split()})))
    own = imported_tokenizer(gpt2_checkpoint(tmp_path / "gpt2", OWN_VOCAB, gpt2_tokenizer), corpus)
    assert (own.bos_token, own.eos_token) == (ENDOFTEXT, ENDOFTEXT)
    eos_only = imported_tokenizer(gpt2_checkpoint(tmp_path / "eos", OWN_VOCAB, byte_level_bpe(TEXTS, OWN_VOCAB,
                                                                                              bos_token=None)), corpus)
    assert (eos_only.bos_token, eos_only.bos_token_id, eos_only.eos_token_id) == (ENDOFTEXT, 0, 0)
    neither = gpt2_checkpoint(tmp_path / "neither", OWN_VOCAB, byte_level_bpe(TEXTS, OWN_VOCAB, bos_token=None,
                                                                               eos_token=None))
    with pytest.raises(ValueError, match=rf"checkpoint_dir='{neither}': its tokenizer has neither a bos_token nor an "
                                         "eos_token.*tokenizer.eos_token = "):
        imported_tokenizer(neither, corpus)


def test_an_embedding_smaller_than_its_own_tokenizer_is_refused_saying_how_to_resize(tmp_path, gpt2_tokenizer):
    from assets.lm.family import fit_language_model
    from assets.lm.model import ModelSize
    from assets.lm.training import TrainConfig

    corpus = as_fast_tokenizer(train_word_level_tokenizer(sorted({w for t in TEXTS for w in t.split()})))
    small = gpt2_checkpoint(tmp_path / "small", OWN_VOCAB - 10, gpt2_tokenizer)
    message = (rf"checkpoint_dir='{small}': its model's embedding has {OWN_VOCAB - 10} rows but its tokenizer has "
               rf"{OWN_VOCAB} tokens .*model.resize_token_embeddings\({OWN_VOCAB}\) before model.save_pretrained")
    with pytest.raises(ValueError, match=message):
        imported_tokenizer(small, corpus)
    size = ModelSize(name="small", d_model=16, n_layers=1, n_heads=2, d_ff=32, context_length=16)
    with pytest.raises(ValueError, match=message):  # the science refuses it the same way
        fit_language_model(size, corpus, TEXTS, TEXTS, TrainConfig(), tmp_path / "out", checkpoint_dir=str(small))
    # a checkpoint without a tokenizer read with a larger corpus tokenizer: that advice is still to save its own
    bare = gpt2_checkpoint(tmp_path / "bare", len(corpus) - 1)
    with pytest.raises(ValueError, match="no tokenizer of its own: save the checkpoint with the tokenizer"):
        fit_language_model(size, corpus, TEXTS, TEXTS, TrainConfig(), tmp_path / "out", checkpoint_dir=str(bare))


def test_the_shape_of_an_imported_checkpoint_is_read_from_its_config(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from assets.lm.model import save_checkpoint

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=318, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))
    assert imported_shape(save_checkpoint(llama, None, tmp_path / "llama")) == {
        "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 80, "context_length": 64, "n_kv_heads": 2,
        "vocab_size": 318, "model_type": "llama"}
    assert imported_shape(gpt2_checkpoint(tmp_path / "gpt2", 50, n_layer=3)) == {
        "d_model": 16, "n_layers": 3, "n_heads": 2, "d_ff": 64, "context_length": 64, "n_kv_heads": 2,
        "vocab_size": 50, "model_type": "gpt2"}


def test_the_mlflow_model_reads_a_prompt_after_the_tokenizers_own_bos(tmp_path, gpt2_tokenizer):
    """The registered pyfunc opens a prompt the way documents were read: GPT-2's <|endoftext|> first (its tokenizer
    adds nothing), ours unchanged (it adds <s> itself); an empty prompt then still has a token to start from."""
    from assets.lm.mlflow_pyfunc import CausalLMPyfunc

    gpt2 = CausalLMPyfunc(gpt2_checkpoint(tmp_path / "gpt2", OWN_VOCAB, gpt2_tokenizer))
    assert gpt2._prompt_ids("alice was") == [0, *gpt2_tokenizer("alice was")["input_ids"]]
    assert gpt2._prompt_ids("") == [0]
    assert len(gpt2.predict(["", "alice was"], params={"max_new_tokens": 2})) == 2
    corpus = as_fast_tokenizer(train_word_level_tokenizer(sorted({w for t in TEXTS for w in t.split()})))
    ours = CausalLMPyfunc(gpt2_checkpoint(tmp_path / "ours", len(corpus), corpus))
    assert ours._prompt_ids("alice was") == corpus("alice was")["input_ids"] == [1, *corpus("alice was",
                                                                                            add_special_tokens=False)["input_ids"]]


def test_an_imported_checkpoint_is_registered_with_its_own_tokenizer(tmp_path, warehouse_root, resources_for,
                                                                     gpt2_tokenizer):
    """A 2-layer, 64-position GPT-2 with GPT-2's tokenizer layout stands in for the 1-layer, 32-position
    lm_facts_small: it is scored on windows of documents between single <|endoftext|>s, registered with its tokenizer, and its
    record (and the SQL table, and MLflow) states its own shape; loaded back, it scores the same loss."""
    from assets.corpora.tokenization import encode_documents
    from assets.lm.family import corpus_texts, validation_loss
    from pipelines.definitions import defs
    from resources.catalog import query

    everything = list(defs.assets)
    tracking = resources_for["tracking"]

    def import_small(checkpoint):
        return dg.materialize(
            everything, selection=dg.AssetSelection.assets("lm_facts_small").upstream(),
            resources=resources_for, raise_on_error=False,
            run_config={"ops": {"lm_facts_small": {"config": {"checkpoint_dir": str(checkpoint)}}}})

    result = import_small(gpt2_checkpoint(tmp_path / "gpt2", OWN_VOCAB, gpt2_tokenizer, n_layer=2))
    assert result.success
    facts = result.output_for_node("facts_tokenizer")
    record = result.output_for_node("lm_facts_small", "lm_facts_small")
    assert record["source"] == "checkpoint" and facts["vocab_size"] != OWN_VOCAB
    assert record["tokenizer_uri"] == record["model_uri"] != facts["tokenizer_uri"]
    # what downstream loaders get: the checkpoint's tokenizer, by the record and inside the registered model
    assert load_tokenizer_of(record, tracking).get_vocab() == gpt2_tokenizer.get_vocab()
    model, tokenizer = load_registered(record, tracking)
    assert tokenizer.get_vocab() == gpt2_tokenizer.get_vocab() and model.config.vocab_size == OWN_VOCAB
    assert (tokenizer.bos_token, tokenizer.eos_token) == (ENDOFTEXT, ENDOFTEXT)
    # its evaluation: the tiny facts windows (32 tokens) of <|endoftext|> doc <|endoftext|> doc ..., one
    # <|endoftext|> between documents as GPT-2 was trained, read again here
    _, val_texts = corpus_texts("facts", result.output_for_node("facts_world", "facts_documents"))
    stream = encode_documents(tokenizer, val_texts)
    assert stream[0] == stream[-1] == 0 and (stream == 0).sum() == len(val_texts) + 1
    assert math.isclose(validation_loss(model, stream, 32, 16, 8), record["final_val_loss"], rel_tol=1e-5)
    assert record["validation_context_length"] == 32  # the family's 32, not the checkpoint's 64 positions
    # its shape: the checkpoint's, in the record, the table and the MLflow parameters
    shape = {"name": "small", "d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 64, "context_length": 64,
             "n_kv_heads": 2, "vocab_size": OWN_VOCAB, "model_type": "gpt2", "parameters": record["parameters"]}
    assert record["model_size"] == shape and record["parameters"] == sum(p.numel() for p in model.parameters())
    assert json.loads(query(warehouse_root, "SELECT model_size FROM lm.lm_facts_small")["model_size"].iloc[0]) == shape
    run = tracking.client.get_run(record["mlflow_run_id"])
    assert run.data.params["tokenizer_uri"] == "the checkpoint's own"
    assert (run.data.params["n_layers"], run.data.params["context_length"], run.data.params["d_model"]) == ("2", "64", "16")

    versions = len(tracking.client.search_model_versions("name = 'lm-facts-small'"))
    refused = import_small(gpt2_checkpoint(tmp_path / "bare", OWN_VOCAB))
    assert not refused.success
    error = str([e for e in refused.all_events if e.is_step_failure][0].step_failure_data.error)
    assert "has no tokenizer" in error and f"({OWN_VOCAB} tokens)" in error
    assert len(tracking.client.search_model_versions("name = 'lm-facts-small'")) == versions
