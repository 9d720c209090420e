"""Disjoint shards of the training data such that every copy of a protected work lands in one shard.

The NAF construction (Vyas, Kakade & Barak 2023, §4) splits the training set into two shards, trains q1 and
q2 on them, and uses the model of the *other* shard as the "safe" model for any work C: it never saw C. This
only holds if all copies of C fall in the same shard, so shards are assigned to *texts*, not rows: identical
texts (the duplicated copies of a protected document, or any accidental duplicate) share one shard.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SHARD_COLUMNS = ["doc_id", "shard", "protected", "duplicate_count", "n_copies"]


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing columns {missing}; it has {list(frame.columns)}")


def assign_shards(documents: pd.DataFrame, n_shards: int = 2, seed: int = 0) -> pd.DataFrame:
    """Assign every train document to one of ``n_shards`` disjoint shards (columns: SHARD_COLUMNS).

    Documents with the same text form one group and share a shard. Protected groups are dealt round-robin
    within each duplication level (in a seeded order), so every shard holds works of every level; the other
    groups are dealt round-robin in a seeded order, so shards are equal in size to within one document.
    ``n_copies`` is how many copies of the text the training stream holds in total (sum of duplicate_count
    over the group).
    """
    _require(documents, ["doc_id", "split", "text", "protected", "duplicate_count"], "documents")
    if not isinstance(n_shards, int) or isinstance(n_shards, bool) or n_shards < 2:
        raise ValueError(f"n_shards must be an int >= 2, got {n_shards!r}")
    train = documents[documents["split"] == "train"]
    if train.empty:
        raise ValueError("documents has no rows with split == 'train'")
    rng = np.random.default_rng(seed)
    groups = train.groupby("text", sort=True).agg(
        protected=("protected", "any"), duplicate_count=("duplicate_count", "max"),
        n_copies=("duplicate_count", "sum")).reset_index()
    groups["shard"] = -1
    protected = groups.index[groups["protected"]]
    for _, level in groups.loc[protected].groupby("duplicate_count"):
        order = rng.permutation(level.index.to_numpy())
        start = int(rng.integers(n_shards))  # which shard gets the level's first work
        groups.loc[order, "shard"] = (start + np.arange(len(order))) % n_shards
    public = groups.index[~groups["protected"]].to_numpy()
    order = rng.permutation(public)
    groups.loc[order, "shard"] = np.arange(len(order)) % n_shards
    shard_of = dict(zip(groups["text"], groups["shard"], strict=True))
    copies_of = dict(zip(groups["text"], groups["n_copies"], strict=True))
    return pd.DataFrame({
        "doc_id": train["doc_id"].to_numpy(),
        "shard": train["text"].map(shard_of).astype(np.int64).to_numpy(),
        "protected": train["protected"].astype(bool).to_numpy(),
        "duplicate_count": train["duplicate_count"].astype(np.int64).to_numpy(),
        "n_copies": train["text"].map(copies_of).astype(np.int64).to_numpy(),
    })[SHARD_COLUMNS]


def shard_documents(documents: pd.DataFrame, shards: pd.DataFrame, shard: int | None) -> pd.DataFrame:
    """The train documents of one shard (``shard=None``: every shard, i.e. the full training set)."""
    _require(shards, ["doc_id", "shard"], "shards")
    train = documents[documents["split"] == "train"]
    unassigned = set(train["doc_id"]) - set(shards["doc_id"])
    if unassigned:
        raise ValueError(f"{len(unassigned)} train documents have no shard (e.g. {sorted(unassigned)[:3]}); "
                         "shards must come from assign_shards on the same documents")
    if shard is None:
        return train
    known = sorted(shards["shard"].unique().tolist())
    if shard not in known:
        raise ValueError(f"shard must be one of {known} or None, got {shard!r}")
    keep = set(shards.loc[shards["shard"] == shard, "doc_id"])
    return train[train["doc_id"].isin(keep)]


def shard_training_texts(documents: pd.DataFrame, shards: pd.DataFrame, shard: int | None,
                         seed: int = 0) -> list[str]:
    """The training stream of one shard: its documents, each repeated duplicate_count times, shuffled."""
    from assets.corpora.facts_world import training_texts

    return training_texts(shard_documents(documents, shards, shard), seed=seed)


def holder_shards(shards: pd.DataFrame) -> dict[str, int]:
    """doc_id -> the shard that holds it (for protected documents: the shard whose model saw the work)."""
    _require(shards, ["doc_id", "shard"], "shards")
    return dict(zip(shards["doc_id"], shards["shard"].astype(int), strict=True))


def select_training_documents(documents: pd.DataFrame, n_public: int | None, seed: int = 0) -> pd.DataFrame:
    """The documents the study trains on: every protected document plus ``n_public`` unprotected train
    documents drawn without replacement (None: all of them). Validation and test rows are kept as they are.

    A smaller unprotected corpus means more passes over each protected copy in the same number of steps,
    which is what lets a small model memorise the duplicated documents on a CPU budget.
    """
    _require(documents, ["split", "protected"], "documents")
    is_public_train = (documents["split"] == "train") & ~documents["protected"].astype(bool)
    if n_public is None:
        return documents
    available = int(is_public_train.sum())
    if not isinstance(n_public, int) or isinstance(n_public, bool) or not 2 <= n_public <= available:
        raise ValueError(f"n_public_documents must be None or an int in [2, {available}] "
                         f"(the unprotected train documents), got {n_public!r}")
    public = documents[is_public_train].sample(n=n_public, random_state=seed)
    return pd.concat([documents[~is_public_train], public]).sort_index()


def shard_integrity(selected: pd.DataFrame, shards: pd.DataFrame) -> dict:
    """What the shards check reads: how many training texts ended up in more than one shard (0: every copy of a
    text is in one shard) and which shards hold protected documents (both, for the study to mean anything)."""
    texts_in_shards = selected[selected["split"] == "train"].merge(shards[["doc_id", "shard"]], on="doc_id")
    spread = texts_in_shards.groupby("text")["shard"].nunique()
    return {"texts_split_across_shards": int((spread > 1).sum()),
            "shards_with_protected_documents": sorted(shards.loc[shards["protected"], "shard"].unique().tolist())}
