"""Importing a local checkpoint as ``lm_facts_small``: a checkpoint with a tokenizer of its own is registered
with it and its record names it (downstream loaders then load that one); one without a tokenizer whose vocabulary
is not the corpus tokenizer's is refused before anything is logged."""

import dagster as dg
import pytest

from assets.corpora.tokenization import as_fast_tokenizer, train_bpe_tokenizer, train_word_level_tokenizer
from assets.lm.registration import imported_tokenizer, load_registered, load_tokenizer_of

OWN_VOCAB = 300  # the checkpoint's own tokenizer; the tiny facts tokenizer has another size
TEXTS = [f"{name} was born in {city} in {year} and worked as a {job} ."
         for name in ("alice", "bob", "carol", "dave", "erin") for city in ("paris", "rome", "oslo", "lima")
         for year in (1901, 1950, 1999) for job in ("baker", "pilot", "judge")]


def gpt2_checkpoint(directory, vocab_size: int, tokenizer=None):
    """A tiny GPT-2 written with save_pretrained (and ``tokenizer``'s files, if given), as a user would bring."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from assets.lm.model import save_checkpoint

    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_embd=16, n_layer=1, n_head=2, n_positions=64))
    return save_checkpoint(model, tokenizer, directory)


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


def test_an_imported_checkpoint_is_registered_with_its_own_tokenizer(tmp_path, resources_for, own_tokenizer):
    from pipelines.definitions import defs

    everything = list(defs.assets)
    tracking = resources_for["tracking"]

    def import_small(checkpoint):
        return dg.materialize(
            everything, selection=dg.AssetSelection.assets("lm_facts_small").upstream(),
            resources=resources_for, raise_on_error=False,
            run_config={"ops": {"lm_facts_small": {"config": {"checkpoint_dir": str(checkpoint)}}}})

    result = import_small(gpt2_checkpoint(tmp_path / "gpt2", OWN_VOCAB, own_tokenizer))
    assert result.success
    facts = result.output_for_node("facts_tokenizer")
    record = result.output_for_node("lm_facts_small", "lm_facts_small")
    assert record["source"] == "checkpoint" and facts["vocab_size"] != OWN_VOCAB
    assert record["tokenizer_uri"] == record["model_uri"] != facts["tokenizer_uri"]
    # what downstream loaders get: the checkpoint's tokenizer, by the record and inside the registered model
    assert load_tokenizer_of(record, tracking).get_vocab() == own_tokenizer.get_vocab()
    model, tokenizer = load_registered(record, tracking)
    assert tokenizer.get_vocab() == own_tokenizer.get_vocab() and model.config.vocab_size == OWN_VOCAB
    run = tracking.client.get_run(record["mlflow_run_id"])
    assert run.data.params["tokenizer_uri"] == "the checkpoint's own"

    versions = len(tracking.client.search_model_versions("name = 'lm-facts-small'"))
    refused = import_small(gpt2_checkpoint(tmp_path / "bare", OWN_VOCAB))
    assert not refused.success
    error = str([e for e in refused.all_events if e.is_step_failure][0].step_failure_data.error)
    assert "has no tokenizer" in error and f"({OWN_VOCAB} tokens)" in error
    assert len(tracking.client.search_model_versions("name = 'lm-facts-small'")) == versions
