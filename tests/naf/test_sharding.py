"""Shards keep every copy of a protected document (indeed every repeated text) together."""

import pandas as pd
import pytest

from assets.naf.sharding import assign_shards, select_training_documents, shard_training_texts


def documents() -> pd.DataFrame:
    rows = []
    for i in range(40):
        rows.append({"doc_id": f"train-{i}", "split": "train", "text": f"public text {i}", "protected": False,
                     "duplicate_count": 1})
    for i, level in enumerate([1, 4, 16, 1, 4, 16, 1, 4, 16]):
        rows.append({"doc_id": f"protected-{i}", "split": "train", "text": f"protected work {i}", "protected": True,
                     "duplicate_count": level})
    # the same text twice under different ids (an accidental duplicate), and a copy of a protected work
    rows.append({"doc_id": "train-dup", "split": "train", "text": "public text 3", "protected": False,
                 "duplicate_count": 1})
    rows.append({"doc_id": "train-copy", "split": "train", "text": "protected work 2", "protected": False,
                 "duplicate_count": 1})
    rows.append({"doc_id": "val-0", "split": "validation", "text": "held out", "protected": False, "duplicate_count": 1})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_copy_lands_in_one_shard(seed):
    docs = documents()
    shards = assign_shards(docs, n_shards=2, seed=seed)
    assert set(shards["doc_id"]) == set(docs.loc[docs["split"] == "train", "doc_id"])
    texts = docs.merge(shards, on="doc_id", suffixes=("", "_s"))
    assert (texts.groupby("text")["shard"].nunique() == 1).all()
    shard_of = dict(zip(shards["doc_id"], shards["shard"], strict=True))
    assert shard_of["train-dup"] == shard_of["train-3"]
    assert shard_of["train-copy"] == shard_of["protected-2"]  # goes with the protected work it copies
    # the protected work's copies: 16 from its duplicate_count plus the stray copy
    assert int(shards.loc[shards["doc_id"] == "protected-2", "n_copies"].iloc[0]) == 17
    # every duplication level is represented in both shards, and the shards are balanced
    levels = shards[shards["protected"]].groupby("duplicate_count")["shard"].nunique()
    assert (levels == 2).all()
    sizes = shards[~shards["protected"]].groupby("shard").size()
    assert abs(sizes[0] - sizes[1]) <= 2


def test_shard_streams_are_disjoint_and_expand_duplicates():
    docs = documents()
    shards = assign_shards(docs, seed=0)
    s0, s1 = (shard_training_texts(docs, shards, s) for s in (0, 1))
    assert not set(s0) & set(s1)
    everything = shard_training_texts(docs, shards, None)
    assert sorted(everything) == sorted(s0 + s1)
    holder = shards.loc[shards["doc_id"] == "protected-2", "shard"].iloc[0]
    stream = s0 if holder == 0 else s1
    assert stream.count("protected work 2") == 17
    assert "held out" not in everything


def test_selection_keeps_protected_documents_and_checks_its_argument():
    docs = documents()
    chosen = select_training_documents(docs, 10, seed=0)
    train = chosen[chosen["split"] == "train"]
    assert train["protected"].sum() == docs["protected"].sum()
    assert (~train["protected"]).sum() == 10
    assert (chosen["split"] == "validation").sum() == 1
    assert select_training_documents(docs, None) is docs
    with pytest.raises(ValueError, match="n_public_documents"):
        select_training_documents(docs, 1000)
    with pytest.raises(ValueError, match="n_shards"):
        assign_shards(docs, n_shards=1)
    with pytest.raises(ValueError, match="missing columns"):
        assign_shards(docs.drop(columns=["protected"]))
