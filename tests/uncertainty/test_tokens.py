"""The token table from a local Hugging Face checkpoint pair the test saves itself, aligned with the facts truth."""

import numpy as np
import pandas as pd
import pytest
import torch

from assets.corpora.facts_world import (
    FactsWorldSpec,
    build_world,
    generate_documents,
    token_ground_truth,
    vocabulary,
)
from assets.corpora.tokenization import load_tokenizer, save_tokenizer, train_word_level_tokenizer
from assets.lm.inference import token_statistics
from assets.lm.model import ModelSize, build_model, save_checkpoint
from assets.lm.registry import load_model
from assets.uncertainty.tokens import (
    attach_truth,
    check_same_vocabulary,
    encode_document,
    held_out_documents,
    score_documents,
)

SPEC = FactsWorldSpec(n_people=20, n_cities=5, n_organisations=5, n_professions=4, n_train_documents=10,
                      n_validation_documents=6, n_test_documents=6, n_protected=0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A small/large pair saved as two save_pretrained directories with the facts tokenizer."""
    world = build_world(SPEC)
    root = tmp_path_factory.mktemp("pair")
    tokenizer = load_tokenizer(save_tokenizer(train_word_level_tokenizer(vocabulary(world)), root / "tok"))
    dirs = {}
    for name, size, seed in (("small", ModelSize("s", 16, 1, 2, 32, 32), 0), ("large", ModelSize("l", 32, 2, 2, 64, 32), 1)):
        model = build_model(size, len(tokenizer), seed=seed, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        dirs[name] = save_checkpoint(model, tokenizer, root / name)
    documents = generate_documents(world, SPEC)
    return dirs, world, documents


def test_checkpoint_pair_token_table_matches_the_model_and_the_truth(pair):
    dirs, world, documents = pair
    small, tok = load_model(str(dirs["small"]), "unused")  # local directories load without a tracking store
    large, large_tok = load_model(str(dirs["large"]), "unused")
    check_same_vocabulary(tok, large_tok)
    docs = held_out_documents(documents, ["validation"], ["test"])
    assert set(docs["split"]) == {"train", "test"} and docs["split"].iloc[:2].tolist() == ["test", "train"]
    table = score_documents(small, large, tok, docs, layers=[0, -1], context_length=32, batch_size=3)
    assert table.attrs["layers"] == [0, 1]
    # one row per predicted token: a document of n words gives n + 1 predictions (the last is </s>) when it fits
    fits = docs[docs["text"].str.split().str.len() + 2 <= 32]
    counts = table.groupby("doc_id").size()
    for doc_id, text in zip(fits["doc_id"], fits["text"], strict=True):
        assert counts[doc_id] == len(text.split()) + 1
    # the numbers are the model's: compare one document with the shared inference helper
    doc_id, text = fits["doc_id"].iloc[0], fits["text"].iloc[0]
    ids = torch.tensor([encode_document(tok, text)])
    stats = token_statistics(small, ids, layer=1)
    rows = table[table["doc_id"] == doc_id].sort_values("position")
    np.testing.assert_allclose(rows["small_entropy"], stats["entropy"][0, :-1].numpy(), atol=1e-5)
    np.testing.assert_allclose(rows["small_logprob"], stats["logprob"][0, :-1].numpy(), atol=1e-5)
    np.testing.assert_allclose(np.stack(rows["hidden_l1"]), stats["hidden"][0, :-1].numpy(), atol=1e-5)
    assert (rows["next_token_id"].iloc[-1], rows["token_id"].iloc[0]) == (tok.eos_token_id, tok.bos_token_id)
    assert (np.stack(rows["small_topk_logprobs"])[:, 0] >= rows["small_logprob"] - 1e-6).all()

    truth = token_ground_truth(world, documents)
    joined = attach_truth(table, truth, documents, tok)
    assert len(joined) == len(table) and joined["true_entropy"].notna().all()
    first = joined[joined["position"] == 0]
    assert (first["slot"] == "template").all()  # position 0 reads <s> and predicts the first word
    ends = joined[joined["next_token_id"] == tok.eos_token_id]
    assert (ends["slot"] == "end").all()
    facts = joined[joined["is_fact"].astype(bool)]
    assert len(facts) and (facts["true_entropy"] == 0).all() and (facts["true_prob"] == 1).all()


def test_token_budget_and_mismatched_vocabularies(pair):
    dirs, _, documents = pair
    small, tok = load_model(str(dirs["small"]), "unused")
    docs = held_out_documents(documents, ["validation"], ["test"])
    table = score_documents(small, small, tok, docs, layers=[0], max_tokens=25, context_length=8)
    assert len(table) == 25 and (table["small_entropy"] == table["large_entropy"]).all()
    assert table.groupby("doc_id")["position"].max().max() >= 8  # long documents continue in a second window
    other = load_tokenizer(save_tokenizer(train_word_level_tokenizer(["a", "b"]), dirs["small"].parent / "other"))
    with pytest.raises(ValueError, match="tokenizers differ"):
        check_same_vocabulary(tok, other)
    with pytest.raises(ValueError, match="layers"):
        score_documents(small, small, tok, docs, layers=[5])
    with pytest.raises(ValueError, match="'text'"):
        score_documents(small, small, tok, pd.DataFrame({"doc_id": ["x"]}))


def test_token_asset_reads_a_checkpoint_pair_set_by_config(pair, warehouse_root):
    """The asset itself, configured with two local directories instead of the family's records."""
    import dagster as dg

    from assets.uncertainty.defs import UncertaintyTokensConfig, uncertainty_tokens
    from resources.compute import Compute
    from resources.tracking import Tracking

    dirs, world, documents = pair
    small, large = str(dirs["small"]), str(dirs["large"])
    config = UncertaintyTokensConfig(facts_small_checkpoint=small, facts_large_checkpoint=large,
                                     code_small_checkpoint=small, code_large_checkpoint=large,
                                     cross_domain=False, max_tokens=60, layers=[-1])
    code = documents.assign(split=documents["split"].replace({"test": "validation"}))
    unused = {"model_uri": "models:/not-used/1"}
    events = list(uncertainty_tokens(dg.build_asset_context(), config=config,
                                     tracking=Tracking(warehouse_root=str(warehouse_root)), compute=Compute(),
                                     facts_small=unused, facts_large=unused, code_small=unused, code_large=unused,
                                     facts_documents=documents, facts_token_truth=token_ground_truth(world, documents),
                                     code_corpus=code))
    table = events[0].value
    assert set(table["dataset"]) == {"facts", "code"}
    assert (table["small_model"] == small).all() and (table["large_model"] == large).all()
    assert table.groupby("dataset").size().to_dict() == {"facts": 60, "code": 60}
    assert list(table.filter(like="hidden_l").columns) == ["hidden_l1"]
    assert table.loc[table["dataset"] == "facts", "true_entropy"].notna().all()
    assert events[1].passed  # the token table's Great Expectations check


def test_a_local_checkpoints_eos_only_tokenizer_lays_documents_out_with_its_own_token():
    """A checkpoint tokenizer with only an eos token (no bos) opens and closes each document with it, as the
    registered-import path does (assets.corpora.tokenization.document_token_ids); it used to crash on bos None."""
    from tests.corpora.foreign_tokenizers import ENDOFTEXT, byte_level_bpe

    tok = byte_level_bpe(["the cat sat on the mat"] * 20, vocab_size=300, bos_token=None)
    assert tok.bos_token_id is None
    eot = tok.convert_tokens_to_ids(ENDOFTEXT)
    ids = encode_document(tok, "the cat sat")
    assert ids[0] == ids[-1] == eot and ids[1:-1] == tok("the cat sat", add_special_tokens=False)["input_ids"]
