"""Regurgitation of protected documents: prompts, true continuations, and how closely samples match them.

Following the extraction tests of Carlini et al. (2021, 2023) that Vyas, Kakade & Barak cite, each protected
document is split into a prompt (its first words) and its true continuation (the next words). A model
regurgitates the document when it puts high probability on the continuation, or when sampling from it
reproduces the continuation exactly or near-exactly (normalised token edit distance at most a threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

PROMPT_COLUMNS = ["doc_id", "duplicate_count", "holder_shard", "prompt_ids", "continuation_ids"]


def protected_prompts(documents: pd.DataFrame, shards: pd.DataFrame, tokenizer: Any, prompt_words: int,
                      continuation_words: int, max_documents: int | None = None) -> pd.DataFrame:
    """One row per protected document: <s> + its first ``prompt_words`` words, and up to
    ``continuation_words`` following words as the true continuation (columns: PROMPT_COLUMNS).

    Documents with no word after the prompt are left out. ``max_documents`` keeps the first documents of
    each duplication level in turn, so every level stays represented.
    """
    for field, value in (("prompt_words", prompt_words), ("continuation_words", continuation_words)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{field} must be a positive int, got {value!r}")
    missing = [c for c in ("doc_id", "protected", "duplicate_count", "text") if c not in documents.columns]
    if missing:
        raise ValueError(f"documents is missing columns {missing}")
    holder = dict(zip(shards["doc_id"], shards["shard"].astype(int), strict=True))
    protected = documents[documents["protected"].astype(bool)].sort_values(["doc_id"])
    if protected.empty:
        raise ValueError("documents holds no protected documents (facts world n_protected = 0?)")
    if max_documents is not None:
        ranked = protected.assign(_rank=protected.groupby("duplicate_count").cumcount())
        protected = ranked.sort_values(["_rank", "duplicate_count"]).head(max_documents).drop(columns="_rank")
    rows = []
    for r in protected.itertuples():
        if r.doc_id not in holder:
            raise ValueError(f"protected document {r.doc_id!r} has no shard")
        ids = list(tokenizer(r.text)["input_ids"])  # <s> w1 w2 …
        prompt, continuation = ids[: 1 + prompt_words], ids[1 + prompt_words: 1 + prompt_words + continuation_words]
        if continuation:
            rows.append({"doc_id": r.doc_id, "duplicate_count": int(r.duplicate_count),
                         "holder_shard": holder[r.doc_id], "prompt_ids": prompt, "continuation_ids": continuation})
    if not rows:
        raise ValueError(f"no protected document is longer than prompt_words={prompt_words}")
    return pd.DataFrame(rows, columns=PROMPT_COLUMNS).sort_values(["duplicate_count", "doc_id"], ignore_index=True)


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance between two token sequences (insertions, deletions, substitutions cost 1)."""
    a, b = list(a), list(b)
    if not a or not b:
        return max(len(a), len(b))
    previous = np.arange(len(b) + 1)
    target = np.asarray(b)
    for i, token in enumerate(a, start=1):
        current = np.empty_like(previous)
        current[0] = i
        substitution = previous[:-1] + (target != token)
        deletion = previous[1:] + 1
        best = np.minimum(substitution, deletion)
        # insertions chain left to right: current[j] = min(best[j-1], current[j-1] + 1)
        for j in range(1, len(b) + 1):
            current[j] = min(best[j - 1], current[j - 1] + 1)
        previous = current
    return int(previous[-1])


def normalised_edit_distance(a: Sequence[int], b: Sequence[int]) -> float:
    """Edit distance divided by the longer length (0 = identical, 1 = nothing in common); 0 for two empties."""
    longest = max(len(a), len(b))
    return edit_distance(a, b) / longest if longest else 0.0


def match_rates(samples: Sequence[Sequence[int]], truth: Sequence[int], near_threshold: float) -> dict[str, float]:
    """Share of samples equal to ``truth`` (exact), within ``near_threshold`` normalised edit distance
    (near-exact, which includes exact), and the mean normalised edit distance."""
    if not 0 <= near_threshold < 1:
        raise ValueError(f"near_threshold must be in [0, 1), got {near_threshold!r}")
    if not len(samples):
        raise ValueError("samples must hold at least one sequence")
    truth = list(truth)
    distances = np.array([normalised_edit_distance(list(s), truth) for s in samples])
    exact = np.array([list(s) == truth for s in samples])
    return {"sampled_exact_rate": float(exact.mean()), "sampled_near_exact_rate": float((distances <= near_threshold).mean()),
            "mean_edit_distance": float(distances.mean())}


def by_duplication(regurgitation: pd.DataFrame) -> pd.DataFrame:
    """Per (model, duplicate_count): documents, mean log2-probability of the true continuation, mean exact-
    extraction probability, sampled exact / near-exact rates and greedy exact-match share."""
    grouped = regurgitation.groupby(["model", "duplicate_count"], sort=True)
    table = grouped.agg(
        n_documents=("doc_id", "nunique"),
        mean_logprob_bits=("logprob_bits", "mean"),
        mean_p_exact=("p_exact", "mean"),
        sampled_exact_rate=("sampled_exact_rate", "mean"),
        sampled_near_exact_rate=("sampled_near_exact_rate", "mean"),
        mean_edit_distance=("mean_edit_distance", "mean"),
        greedy_exact_share=("greedy_exact", "mean"),
    ).reset_index()
    return table
