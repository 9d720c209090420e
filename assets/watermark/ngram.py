"""The independent judge of quality: an interpolated Witten-Bell byte n-gram model of the corpus.

It shares nothing with the neural models (not the tokenizer, not the architecture, not the training run), and
the attack never consults it, so the perplexity it gives before and after the attack is an outside view of
what the walk did to the text. Counts are numpy arrays of n-gram codes (bytes packed into an int64),
looked up with ``searchsorted``; scoring is vectorised over every byte position and order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def _grams(data: np.ndarray, order: int) -> np.ndarray:
    """int64 codes of the order-grams ending at positions order-1 .. len-1."""
    codes = np.zeros(len(data) - order + 1, dtype=np.int64)
    for offset in range(order):
        codes = codes * 256 + data[offset:len(data) - order + 1 + offset]
    return codes


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    if len(keys) == 0:
        return np.zeros(len(queries), dtype=float)
    pos = np.searchsorted(keys, queries).clip(max=len(keys) - 1)
    return np.where(keys[pos] == queries, values[pos], 0).astype(float)


@dataclass
class ByteNGram:
    """Witten-Bell interpolation over orders 1..order of bytes, with a uniform floor over 256 bytes."""

    order: int = 5
    tables: list = field(default_factory=list, repr=False)  # per order: (gram keys, counts, ctx keys, ctx totals, ctx types)

    def fit(self, texts: Sequence[str], max_bytes: int | None = None) -> ByteNGram:
        if not 1 <= self.order <= 7:
            raise ValueError(f"order must be in [1, 7] (bytes packed in an int64), got {self.order}")
        data = np.frombuffer("\n".join(texts).encode("utf-8"), dtype=np.uint8).astype(np.int64)
        if max_bytes is not None:
            data = data[:max_bytes]
        if len(data) < self.order:
            raise ValueError(f"texts must hold at least order={self.order} bytes, got {len(data)}")
        self.tables = []
        for o in range(1, self.order + 1):
            keys, counts = np.unique(_grams(data, o), return_counts=True)
            ctx, inverse = np.unique(keys // 256, return_inverse=True)
            totals = np.bincount(inverse, weights=counts)
            types = np.bincount(inverse).astype(float)
            self.tables.append((keys, counts, ctx, totals, types))
        return self

    def byte_logprobs(self, text: str, context: str = "") -> np.ndarray:
        """log2 P(byte | up to order-1 previous bytes) for every byte of ``text`` (context bytes precede it)."""
        return self.logprobs_of_bytes(text.encode("utf-8"), context.encode("utf-8"))

    def logprobs_of_bytes(self, body: bytes, head: bytes = b"") -> np.ndarray:
        """log2 P of every byte of ``body`` given the bytes before it (``head`` first)."""
        if not self.tables:
            raise ValueError("ByteNGram is not fitted: call fit(texts) first")
        data = np.frombuffer(head + body, dtype=np.uint8).astype(np.int64)
        start, n = len(head), len(body)
        prob = np.full(n, 1.0 / 256)
        positions = np.arange(start, start + n)
        for o, (keys, counts, ctx, totals, types) in enumerate(self.tables, start=1):
            has = positions - (o - 1) >= 0
            codes = np.zeros(n, dtype=np.int64)
            for offset in range(o):
                idx = np.clip(positions - (o - 1) + offset, 0, None)
                codes = codes * 256 + data[idx]
            c = _lookup(keys, counts, codes)
            total = _lookup(ctx, totals, codes // 256)
            typ = _lookup(ctx, types, codes // 256)
            seen = has & (total > 0)
            mixed = (c + typ * prob) / np.where(seen, total + typ, 1.0)
            prob = np.where(seen, mixed, prob)
        return np.log2(prob)

    def bits_per_byte(self, texts: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        """Mean −log2 P per byte of each text (NaN for an empty text)."""
        contexts = [""] * len(texts) if contexts is None else contexts
        out = []
        for text, context in zip(texts, contexts, strict=True):
            lp = self.byte_logprobs(text, context)
            out.append(float(-lp.mean()) if len(lp) else float("nan"))
        return np.array(out)
