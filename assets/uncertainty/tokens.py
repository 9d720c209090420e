"""The token table: a small/large model pair read over held-out documents, one row per predicted token.

Each row is the prediction made after reading tokens 0..t of a document (``position`` = t, the alignment of
`assets.lm.inference`): the current token (``token_id``, the last token of the context) and the token that
follows (``next_token_id``), both models' predictive entropies (nats) and log-probabilities of the next
token, the small model's top-k log-probabilities, and its hidden state after each chosen layer (0 = token
embeddings, n_layers = the final hidden state the LM head reads) as float32 lists. On the facts world the
ground truth joins on (doc_id, position): ``true_entropy``, ``true_prob``, ``slot``, ``is_fact``.

A document is encoded as <s> tokens </s> (as the family was trained) and read in non-overlapping windows of
the models' context length.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

TRUTH_COLUMNS = ["slot", "true_entropy", "true_prob", "is_fact"]


def hidden_column(layer: int) -> str:
    return f"hidden_l{layer}"


def check_same_vocabulary(small_tokenizer: Any, large_tokenizer: Any) -> None:
    """The pair must share one vocabulary (ids mean the same tokens); raises ValueError if not."""
    if small_tokenizer is None or large_tokenizer is None:
        raise ValueError("both checkpoints of the pair must hold a tokenizer (save_pretrained with the tokenizer)")
    if small_tokenizer.get_vocab() != large_tokenizer.get_vocab():
        raise ValueError("small and large model tokenizers differ: the pair must share one vocabulary")


def encode_document(tokenizer: Any, text: str) -> list[int]:
    """<bos> tokens <eos>, as the family's training stream lays documents out (`encode_documents`: the
    tokenizer's own tokens, a local checkpoint's GPT-2-style tokenizer with only one of them uses it for both;
    a special token's string in the text is text)."""
    from assets.corpora.tokenization import document_token_ids, encode_texts

    bos, eos = document_token_ids(tokenizer)
    return [bos, *map(int, encode_texts(tokenizer, [text])[0]), eos]


def resolve_layers(layers: Sequence[int] | None, n_layers: int) -> list[int]:
    """Chosen hidden-state layers as non-negative indices into 0..n_layers (None: all of them)."""
    if layers is None:
        return list(range(n_layers + 1))
    out = []
    for layer in layers:
        if not -(n_layers + 1) <= int(layer) <= n_layers:
            raise ValueError(f"layers must lie in [-{n_layers + 1}, {n_layers}] for this model, got {layer}")
        out.append(int(layer) % (n_layers + 1))
    return sorted(set(out))


def _windows(ids: list[int], length: int, max_windows: int | None) -> list[tuple[int, list[int]]]:
    """(offset, window) pieces of one document, each of at most ``length`` tokens and at least two."""
    pieces = [(o, ids[o:o + length]) for o in range(0, len(ids), length)]
    pieces = [(o, w) for o, w in pieces if len(w) >= 2]
    return pieces[:max_windows] if max_windows else pieces


def _forward(model: Any, batch: list[list[int]], layers: list[int] | None, top_k: int):
    """Entropy, next-token log-prob, top-k log-probs and chosen hidden states for a right-padded batch."""
    import torch

    length = max(len(w) for w in batch)
    ids = torch.zeros(len(batch), length, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, w in enumerate(batch):
        ids[i, :len(w)] = torch.tensor(w)
        mask[i, :len(w)] = 1
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False,
                    output_hidden_states=layers is not None)
        logp = out.logits.float().log_softmax(-1)
        entropy = (-(logp.exp() * logp).sum(-1)).clamp(min=0.0)
        nxt = torch.zeros_like(ids)
        nxt[:, :-1] = ids[:, 1:]
        next_lp = logp.gather(-1, nxt.to(device).unsqueeze(-1)).squeeze(-1)
        top = logp.topk(min(top_k, logp.size(-1)), dim=-1).values if top_k else None
        hidden = {layer: out.hidden_states[layer].float().cpu().numpy() for layer in layers or []}
    return (entropy.cpu().numpy(), next_lp.cpu().numpy(), None if top is None else top.cpu().numpy(), hidden)


def score_documents(
    small: Any,
    large: Any,
    tokenizer: Any,
    documents: pd.DataFrame,
    *,
    layers: Sequence[int] | None = None,
    context_length: int | None = None,
    max_tokens: int | None = None,
    max_windows_per_document: int | None = None,
    top_k: int = 8,
    batch_size: int = 32,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """The token table of ``documents`` (columns doc_id, text and, optionally, split) under the pair.

    Documents are read in order until ``max_tokens`` predicted tokens are collected. ``split`` is carried
    over to every row (the probes train on one split and test on the other).
    """
    for column in ("doc_id", "text"):
        if column not in documents.columns:
            raise ValueError(f"documents must have a {column!r} column; it has {list(documents.columns)}")
    n_layers = int(small.config.num_hidden_layers)
    chosen = resolve_layers(layers, n_layers)
    limit = min(int(small.config.max_position_embeddings), int(large.config.max_position_embeddings))
    length = min(context_length or limit, limit)
    if length < 2:
        raise ValueError(f"context_length must be >= 2, got {length}")

    pieces: list[tuple[int, int, list[int]]] = []  # (document row, offset, window)
    total = 0
    for row, text in enumerate(documents["text"]):
        for offset, window in _windows(encode_document(tokenizer, text), length, max_windows_per_document):
            take = len(window) - 1
            if max_tokens is not None and total + take > max_tokens:
                window, take = window[:max_tokens - total + 1], max_tokens - total
            if take >= 1:
                pieces.append((row, offset, window))
                total += take
            if max_tokens is not None and total >= max_tokens:
                break
        if max_tokens is not None and total >= max_tokens:
            break
    if not pieces:
        raise ValueError("no document yields a predicted token (empty documents or max_tokens=0)")

    frames = []
    every = max(1, len(pieces) // batch_size // 5)
    for b, start in enumerate(range(0, len(pieces), batch_size)):
        chunk = pieces[start:start + batch_size]
        windows = [w for _, _, w in chunk]
        h_small, lp_small, top, hidden = _forward(small, windows, chosen, top_k)
        h_large, lp_large, _, _ = _forward(large, windows, None, 0)
        for i, (row, offset, window) in enumerate(chunk):
            n = len(window) - 1  # the last token has no next token inside the window
            frame = {
                "doc_row": row, "position": offset + np.arange(n), "token_id": window[:-1],
                "next_token_id": window[1:], "small_entropy": h_small[i, :n], "large_entropy": h_large[i, :n],
                "small_logprob": lp_small[i, :n], "large_logprob": lp_large[i, :n],
                "small_topk_logprobs": list(top[i, :n].astype(np.float32)),
            }
            for layer in chosen:
                frame[hidden_column(layer)] = list(hidden[layer][i, :n].astype(np.float32))
            frames.append(pd.DataFrame(frame))
        if log and b % every == 0:
            log(f"scored {min(start + batch_size, len(pieces))}/{len(pieces)} windows")
    table = pd.concat(frames, ignore_index=True)
    meta = documents.reset_index(drop=True)
    table.insert(0, "doc_id", meta["doc_id"].to_numpy(dtype=object)[table["doc_row"]])
    table.insert(1, "split", meta["split"].to_numpy(dtype=object)[table["doc_row"]] if "split" in meta else "all")
    table = table.drop(columns="doc_row")
    for column in ("position", "token_id", "next_token_id"):
        table[column] = table[column].astype("int64")
    for column in ("small_entropy", "large_entropy", "small_logprob", "large_logprob"):
        table[column] = table[column].astype("float64")
    table.attrs["layers"] = chosen
    return table


def attach_truth(table: pd.DataFrame, truth: pd.DataFrame, documents: pd.DataFrame, tokenizer: Any) -> pd.DataFrame:
    """Join the facts world's ground truth (one row per word, plus </s>) on (doc_id, position).

    Valid when the tokenizer is word level on these documents (one token per word, checked per document);
    other documents get no truth (NaN). Model position t predicts word t (position 0 reads <s>).
    """
    word_level = {
        doc_id: len(encode_document(tokenizer, text)) == len(text.split()) + 2
        for doc_id, text in zip(documents["doc_id"], documents["text"], strict=True)
    }
    keep = truth[truth["doc_id"].map(word_level).fillna(False).astype(bool)]
    merged = table.merge(keep[["doc_id", "position", *TRUTH_COLUMNS]], on=["doc_id", "position"], how="left")
    merged["true_entropy"] = merged["true_entropy"].astype("float64")
    merged["true_prob"] = merged["true_prob"].astype("float64")
    merged["is_fact"] = merged["is_fact"].astype("boolean")
    merged.attrs.update(table.attrs)
    return merged


def held_out_documents(documents: pd.DataFrame, train_splits: Sequence[str], test_splits: Sequence[str],
                       seed: int = 0) -> pd.DataFrame:
    """Held-out documents with the probe split: ``split`` = "train" for documents of ``train_splits`` and
    "test" for ``test_splits``; a split named in both is divided half and half by a seeded shuffle.
    Rows are interleaved (train, test, train, ...) so a token budget takes from both."""
    out = []
    rng = np.random.default_rng(seed)
    for name in sorted(set(train_splits) | set(test_splits)):
        docs = documents[documents["split"] == name]
        if name in train_splits and name in test_splits:
            order = rng.permutation(len(docs))
            probe = np.where(np.arange(len(docs)) % 2 == 0, "train", "test")[np.argsort(order)]
        else:
            probe = np.full(len(docs), "train" if name in train_splits else "test", dtype=object)
        out.append(docs[["doc_id", "text"]].assign(split=probe))
    frame = pd.concat(out, ignore_index=True)
    if frame.empty:
        raise ValueError(f"no documents in splits {sorted(set(train_splits) | set(test_splits))}")
    rank = frame.groupby("split").cumcount()
    return frame.assign(_rank=rank).sort_values(["_rank", "split"], kind="stable").drop(columns="_rank") \
        .reset_index(drop=True)


# the probe split of each corpus's held-out documents: (train splits, test splits)
HELD_OUT = {"facts": (["validation"], ["test"]), "code": (["validation"], ["validation"])}


def load_pair(small_source: str, large_source: str, tracking_uri: str, device: str = "cpu"):
    """(small, large, tokenizer) from model URIs or local checkpoint directories (one shared vocabulary)."""
    from assets.lm.registry import load_model

    small, small_tok = load_model(small_source, tracking_uri, device=device)
    large, large_tok = load_model(large_source, tracking_uri, device=device)
    check_same_vocabulary(small_tok, large_tok)
    return small, large, small_tok


def read_pairs(plan: Sequence[tuple[str, str]], sources: dict[str, tuple[str, str]],
               documents: dict[str, pd.DataFrame], truth: pd.DataFrame, *, tracking_uri: str, device: str = "cpu",
               layers: Sequence[int] | None = None, max_tokens: int | None = None, top_k: int = 8,
               max_windows_per_document: int | None = None, batch_size: int = 32, seed: int = 0,
               log: Callable[[str], None] = print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(token table, summary per dataset): each (pair, corpus) of ``plan`` reads the corpus's held-out documents
    (`HELD_OUT`) with the pair's (small, large) ``sources``; dataset ``facts``, ``code`` or
    ``<pair>_pair_on_<corpus>``. The facts corpus gets the ground truth; code files are capped by windows."""
    from assets.uncertainty.labels import entropy_quantiles

    texts = {corpus: held_out_documents(documents[corpus], *HELD_OUT[corpus], seed) for corpus in {c for _, c in plan}}
    frames, summary, started = [], [], time.time()
    for pair, corpus in plan:
        small, large, tokenizer = load_pair(*sources[pair], tracking_uri, device)
        name = pair if pair == corpus else f"{pair}_pair_on_{corpus}"
        table = score_documents(small, large, tokenizer, texts[corpus], layers=layers, max_tokens=max_tokens,
                                top_k=top_k, max_windows_per_document=max_windows_per_document if corpus == "code"
                                else None, batch_size=batch_size, log=lambda m, n=name: log(f"{n}: {m}"))
        if corpus == "facts":
            table = attach_truth(table, truth, documents["facts"], tokenizer)
        table.insert(0, "dataset", name)
        table["small_model"], table["large_model"] = sources[pair]
        table["vocab_size"] = int(len(tokenizer))
        frames.append(table)
        summary.append({"dataset": name, "tokens": len(table), "documents": table["doc_id"].nunique(),
                        "layers": str(table.attrs["layers"]), "small_model": sources[pair][0],
                        "large_model": sources[pair][1],
                        **{f"small_{k}": v for k, v in entropy_quantiles(table["small_entropy"]).items()},
                        **{f"large_{k}": v for k, v in entropy_quantiles(table["large_entropy"]).items()}})
        log(f"{name}: {len(table)} tokens, {time.time() - started:.1f}s so far")
    return pd.concat(frames, ignore_index=True), pd.DataFrame(summary)
