"""The unsupervised in-context learning test (ICLT) of the paper (``repetition.py`` and the mutual-information
score of ``generate_from_repetition.py``).

For a prompt x the small model's top-k next tokens are the candidates. Each candidate is continued greedily
to a sentence end; "candidate + continuation" is put in context before the prompt is repeated:
``prompt cand cont </s> prompt``. If the model's uncertainty is epistemic it tends to copy what the context
offers, so the in-context distribution depends on the candidate; if it is aleatoric it does not.

Score: with p(X) the original top-k probabilities renormalised and p(Y | X = j) the in-context
distribution after candidate j restricted to the same k tokens and renormalised,
I(X; Y) = H(Y) - H(Y | X), with p(Y) = sum_j p(j) p(Y | j). A 1-D logistic classifier on that score
separates the classes (the paper fits it and reports its accuracy; we report held-out ROC AUC).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_EPS = 1e-12
_MIN_HEAD_ROWS = 16  # see _logits_at


def mutual_information(p_x: np.ndarray, p_y_given_x: np.ndarray) -> dict[str, np.ndarray]:
    """I(X; Y), H(Y) and H(Y|X) in nats per row.

    p_x [N, k]: the original probabilities of the k candidates (any scale; renormalised here).
    p_y_given_x [N, k, k]: row j = the in-context probabilities of the same k tokens after candidate j
    (renormalised here over the k tokens, as the paper restricts Y's support to the top k).
    """
    px = np.asarray(p_x, dtype=np.float64)
    pyx = np.asarray(p_y_given_x, dtype=np.float64)
    if px.ndim != 2 or pyx.shape != (*px.shape, px.shape[1]):
        raise ValueError(f"p_x must be [N, k] and p_y_given_x [N, k, k]; got {px.shape} and {pyx.shape}")
    if (px < 0).any() or (pyx < 0).any():
        raise ValueError("probabilities must be non-negative")
    px = px / np.maximum(px.sum(1, keepdims=True), _EPS)
    pyx = pyx / np.maximum(pyx.sum(2, keepdims=True), _EPS)
    pxy = px[:, :, None] * pyx
    h_yx = -(pxy * np.log(np.maximum(pyx, _EPS))).sum((1, 2))
    py = pxy.sum(1)
    h_y = -(py * np.log(np.maximum(py, _EPS))).sum(1)
    return {"mi": np.maximum(h_y - h_yx, 0.0), "h_y": h_y, "h_y_given_x": h_yx}


def sentence_end_ids(tokenizer: Any, markers: Sequence[str]) -> set[int]:
    """Token ids that end a sentence: the end-of-document token, tokens whose text contains a whitespace
    marker (e.g. "\\n"), and tokens whose stripped text is a non-whitespace marker (e.g. ".")."""
    ends = {int(tokenizer.eos_token_id)}
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        for marker in markers:
            if (marker.strip() == "" and marker in text) or (marker.strip() and text.strip() == marker):
                ends.add(token_id)
    return ends


@dataclass(frozen=True)
class IcltSettings:
    top_k: int = 10  # paper: k = 10
    max_continuation: int = 20  # tokens generated after a candidate before giving up on a sentence end
    batch_size: int = 64


def _logits_at(model: Any, ids: Any, mask: Any, last: Any) -> Any:
    """Next-token logits [n, vocab] at position ``last[i]`` of row i.

    A Llama's final hidden states are gathered at those positions before its head, so the logits of every
    position ([n, length, vocab]: ~17 GB in float32 at the gpu profile's batch 512, length 512 and 16k
    vocabulary) are never formed. The gathered rows are padded to at least 16 and a multiple of 4: the CPU's
    matrix product then takes the kernel it takes for the full logits and every value is the same to the
    bit (a product of fewer rows may differ in the last bit; a batch of fewer than 16 tokens in all, or a
    model of another family, gets the full logits)."""
    import torch

    rows = torch.arange(len(ids), device=ids.device)
    if getattr(model.config, "model_type", None) != "llama" or ids.numel() < _MIN_HEAD_ROWS:
        return model(input_ids=ids, attention_mask=mask, use_cache=False).logits[rows, last]
    hidden = model.model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state[rows, last]
    padded = max(_MIN_HEAD_ROWS, -(-len(hidden) // 4) * 4)
    return model.lm_head(torch.cat([hidden, hidden[:1].expand(padded - len(hidden), -1)]))[:len(hidden)]


def _last_probs(model: Any, sequences: list[list[int]], batch_size: int, columns: np.ndarray | None = None):
    """Next-token probabilities after each (right-padded) sequence; only ``columns`` [n, c] if given."""
    import torch

    device = next(model.parameters()).device
    out = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        length = max(len(s) for s in chunk)
        ids = torch.zeros(len(chunk), length, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(chunk):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        last = torch.tensor([len(s) - 1 for s in chunk], device=device)
        with torch.inference_mode():
            logits = _logits_at(model, ids.to(device), mask.to(device), last)
        probs = logits.float().softmax(-1)
        if columns is not None:
            probs = probs.gather(1, torch.as_tensor(columns[start:start + len(chunk)], device=device))
        out.append(probs.cpu().numpy())
    return np.concatenate(out)


def _greedy_continuations(model: Any, starts: list[list[int]], ends: set[int], max_new: int,
                          batch_size: int, pad_id: int) -> list[list[int]]:
    """Greedy tokens after each start sequence, up to and including the first sentence end (batched, left-padded)."""
    import torch

    from assets.lm.inference import generate

    result: list[list[int]] = []
    for start in range(0, len(starts), batch_size):
        chunk = starts[start:start + batch_size]
        length = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), length), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(chunk):
            ids[i, length - len(s):] = torch.tensor(s)
            mask[i, length - len(s):] = 1
        generated = generate(model, ids, max_new, temperature=0.0, attention_mask=mask)[:, length:].tolist()
        for row in generated:
            cut = next((i + 1 for i, t in enumerate(row) if t in ends), len(row))
            result.append(row[:cut])
    return result


def iclt(model: Any, prompts: Sequence[Sequence[int]], *, bos_id: int, eos_id: int, pad_id: int,
         end_ids: set[int], context_length: int, settings: IcltSettings = IcltSettings(),
         log: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Run the ICLT on each prompt (token ids, ending with the current token); returns per prompt
    ``mi``, ``h_y``, ``h_y_given_x``, the original entropy over the top k (``h_x``), the top-k ids and the
    mean continuation length. Prompts are cut to their last tokens so that
    ``prompt cand cont </s> prompt`` fits ``context_length``; a cut prompt gets a leading <s>."""
    k, max_new = settings.top_k, settings.max_continuation
    keep = (context_length - 2 - max_new - 1) // 2  # room: 2 prompts (+<s>), candidate, continuation, </s>
    if keep < 1:
        raise ValueError(f"context_length {context_length} leaves no room for a prompt with "
                         f"max_continuation={max_new}; lower max_continuation")
    cores = []
    for p in prompts:
        p = [int(t) for t in p]
        if not p:
            raise ValueError("every prompt needs at least one token")
        if len(p) > keep + (p[0] == bos_id):
            p = p[-keep:]
        cores.append(p if p[0] == bos_id else [bos_id, *p])
    original = _last_probs(model, cores, settings.batch_size)
    k = min(k, original.shape[1])
    top_ids = np.argsort(-original, axis=1)[:, :k]
    p_x = np.take_along_axis(original, top_ids, 1)
    if log:
        log(f"ICLT: {len(cores)} prompts x {k} candidates: greedy continuations")
    starts = [core + [int(c)] for core, row in zip(cores, top_ids, strict=True) for c in row]
    to_continue = [i for i, s in enumerate(starts) if s[-1] not in end_ids]
    continuations: list[list[int]] = [[] for _ in starts]
    for i, cont in zip(to_continue, _greedy_continuations(model, [starts[i] for i in to_continue], end_ids,
                                                         max_new, settings.batch_size, pad_id), strict=True):
        continuations[i] = cont
    contexts = [starts[i] + continuations[i] + [eos_id] + cores[i // k] for i in range(len(starts))]
    if log:
        log(f"ICLT: {len(contexts)} in-context forward passes")
    columns = np.repeat(top_ids, k, axis=0)
    p_y_given_x = _last_probs(model, contexts, settings.batch_size, columns).reshape(len(cores), k, k)
    scores = mutual_information(p_x, p_y_given_x)
    pxn = p_x / p_x.sum(1, keepdims=True)
    scores["h_x"] = -(pxn * np.log(np.maximum(pxn, _EPS))).sum(1)
    scores["top_ids"] = top_ids
    scores["continuation_length"] = np.array([np.mean([len(continuations[i * k + j]) for j in range(k)])
                                              for i in range(len(cores))])
    return scores


def fit_score_classifier(train_scores: np.ndarray, train_labels: np.ndarray, test_scores: np.ndarray) -> tuple[np.ndarray, float]:
    """The paper's 1-D logistic classifier on a score: (P(epistemic) on the test scores, fitted slope)."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(train_scores, dtype=float).reshape(-1, 1)
    y = np.asarray(train_labels)
    if len(np.unique(y)) < 2:
        raise ValueError(f"the score classifier needs both classes in training, got {np.unique(y).tolist()}")
    scale = float(np.std(x)) or 1.0
    model = LogisticRegression(C=1e4, max_iter=1000).fit(x / scale, y)
    return model.predict_proba(np.asarray(test_scores, dtype=float).reshape(-1, 1) / scale)[:, 1], float(model.coef_[0, 0])
