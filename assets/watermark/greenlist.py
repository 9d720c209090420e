"""Green-list watermarks: KGW (Kirchenbauer et al. 2023, LeftHash / "simple_1") and Unigram (Zhao et al. 2023).

KGW: before each token, a CPU ``torch.Generator`` is seeded with ``hash_key * previous token id`` and the green
list is the first ⌊γ·V⌋ entries of ``torch.randperm(V)``; generation adds δ to the green logits (on a GPU
from green lists copied there once per previous token, `DeviceGreenRows`). Detection
counts green tokens among the T scored tokens (every token after the first, whose predecessor is in the text):
z = (green − γT) / √(Tγ(1−γ)), p = the normal upper tail. With ``unique_pairs`` each distinct (previous,
token) bigram counts once. Unigram: one fixed green list (a shuffled mask of ⌊γ·V⌋ Trues from a numpy RNG
seeded by a SHA-256 hash of the key), δ added to it, the same z over tokens (or distinct tokens).

Detectors take a batch ``tokens`` [B, m] (LongTensor) and optional ``lengths`` [B] (the first lengths[b]
tokens of row b are the text), count on the CPU wherever the tokens were generated, and return numpy arrays;
`kgw_detect_loop` is the per-token reference the vectorised detector is benchmarked against (it re-derives
every green list, as the authors' code does).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HASH_KEY = 15485863  # the KGW reference implementation's hash key (a large prime)


def normal_sf(z: np.ndarray | float) -> np.ndarray:
    """Upper tail P(Z > z) = erfc(z/√2)/2 of the standard normal, elementwise (float64; NaN stays NaN)."""
    import torch

    values = torch.as_tensor(np.asarray(z, dtype=np.float64))
    return (0.5 * torch.special.erfc(values / math.sqrt(2.0))).numpy()


def z_score(green: np.ndarray | float, scored: np.ndarray | float, gamma: float) -> np.ndarray:
    """(green − γT) / √(Tγ(1−γ)); NaN where T == 0."""
    green, scored = np.asarray(green, dtype=float), np.asarray(scored, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (green - gamma * scored) / np.sqrt(scored * gamma * (1 - gamma))
    return np.where(scored > 0, z, np.nan)


def _check_gamma(gamma: float) -> None:
    if not 0 < gamma < 1:
        raise ValueError(f"gamma must be in (0, 1), got {gamma!r}")


def _as_batch(tokens: Any, lengths: Any = None):
    """tokens -> LongTensor [B, m] and lengths -> LongTensor [B] (defaults to m), on the CPU: detection is
    counting, and the green-list tables live there (tokens generated on a GPU are moved, not rejected)."""
    import torch

    tokens = torch.as_tensor(tokens, dtype=torch.long).cpu()
    if tokens.dim() == 1:
        tokens = tokens[None]
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be [m] or [B, m] token ids, got shape {tuple(tokens.shape)}")
    if lengths is None:
        lengths = torch.full((tokens.size(0),), tokens.size(1), dtype=torch.long)
    lengths = torch.as_tensor(lengths, dtype=torch.long).cpu().view(-1)
    if lengths.numel() != tokens.size(0) or bool((lengths < 0).any()) or bool((lengths > tokens.size(1)).any()):
        raise ValueError(f"lengths must be [B] ints in [0, {tokens.size(1)}], got {lengths.tolist()}")
    return tokens, lengths


@dataclass
class KGWGreenLists:
    """KGW LeftHash green lists, derived lazily per previous token and cached as rows of a [V, V] table."""

    vocab_size: int
    gamma: float = 0.25
    hash_key: int = HASH_KEY
    _table: Any = field(default=None, repr=False)
    _filled: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_gamma(self.gamma)
        if not isinstance(self.vocab_size, int) or self.vocab_size < 2:
            raise ValueError(f"vocab_size must be an int >= 2, got {self.vocab_size!r}")

    @property
    def green_size(self) -> int:
        return int(self.vocab_size * self.gamma)

    def green_ids(self, prev_token: int):
        """The green list after ``prev_token``: exactly the reference rule, no cache."""
        import torch

        generator = torch.Generator(device="cpu")
        generator.manual_seed(self.hash_key * int(prev_token))
        return torch.randperm(self.vocab_size, generator=generator)[: self.green_size]

    def is_green(self, prev_tokens, tokens):
        """Bool, elementwise: is tokens[i] in the green list after prev_tokens[i]? (same shapes)"""
        import torch

        prev = torch.as_tensor(prev_tokens, dtype=torch.long).cpu()
        cur = torch.as_tensor(tokens, dtype=torch.long).cpu()
        self._fill(prev.reshape(-1))
        if bool(((cur < 0) | (cur >= self.vocab_size)).any()):
            raise ValueError(f"token ids must be in [0, {self.vocab_size}), got {cur.min()}..{cur.max()}")
        return self._table[prev, cur]

    def mask_rows(self, prev_tokens):
        """Bool [N, V]: row i marks the green list after prev_tokens[i] (filled on first use)."""
        import torch

        prev = torch.as_tensor(prev_tokens, dtype=torch.long).view(-1).cpu()
        self._fill(prev)
        return self._table[prev]

    def _fill(self, prev) -> None:
        import torch

        if self._table is None:  # normal tensors even when first used under inference_mode (generation)
            with torch.inference_mode(False):
                self._table = torch.zeros(self.vocab_size, self.vocab_size, dtype=torch.bool)
                self._filled = torch.zeros(self.vocab_size, dtype=torch.bool)
        if bool(((prev < 0) | (prev >= self.vocab_size)).any()):
            raise ValueError(f"token ids must be in [0, {self.vocab_size}), got {prev.min()}..{prev.max()}")
        missing = prev[~self._filled[prev]].unique()
        with torch.inference_mode(False):
            for token in missing.tolist():
                self._table[token, self.green_ids(token)] = True
                self._filled[token] = True


class DeviceGreenRows:
    """The green lists of ``green_lists`` kept on ``device`` (off the CPU): each distinct previous token's row is
    derived on the CPU (the reference seeding rule) and copied to the device once, the first time it is seen;
    `mask_rows` then gathers [N, V] on the device. Per call the N previous ids are read back (N ints, to know
    which rows are new); no [N, V] mask crosses to the device. Rows live in ``rows`` [capacity, V], grown by
    doubling; ``slot`` [V] maps a token to its row (-1: not there yet)."""

    def __init__(self, green_lists: KGWGreenLists, device, capacity: int = 256):
        import torch

        self.green_lists, self.device = green_lists, torch.device(device)
        with torch.inference_mode(False):  # updated in place, also across generate()'s inference_mode
            vocab = green_lists.vocab_size
            self.rows = torch.zeros(max(1, min(capacity, vocab)), vocab, dtype=torch.bool, device=self.device)
            self.slot_host = torch.full((vocab,), -1, dtype=torch.long)
            self.slot = self.slot_host.to(self.device, copy=True)  # its own tensor, on the CPU too (tests)
        self.count = 0  # rows copied so far

    def mask_rows(self, prev_tokens):
        """Bool [N, V] on the device: row i marks the green list after prev_tokens[i] ([N] ids on the device)."""
        import torch

        prev = torch.as_tensor(prev_tokens, dtype=torch.long, device=self.device).view(-1)
        host = prev.cpu()  # N ids: the only read-back
        self.green_lists._fill(host)  # validates the ids, derives unseen green lists on the CPU
        new = host[self.slot_host[host] < 0].unique()
        if len(new):
            with torch.inference_mode(False):
                self._add(new)
        return self.rows[self.slot[prev]]

    def _add(self, new) -> None:
        import torch

        end = self.count + len(new)
        if end > self.rows.size(0):
            grown = torch.zeros(max(end, 2 * self.rows.size(0)), self.rows.size(1), dtype=torch.bool,
                                device=self.device)
            grown[: self.count] = self.rows[: self.count]
            self.rows = grown
        self.rows[self.count:end] = self.green_lists._table[new].to(self.device)
        slots = torch.arange(self.count, end)
        self.slot_host[new] = slots
        self.slot[new.to(self.device)] = slots.to(self.device)  # only the new tokens' slots cross
        self.count = end


def kgw_logits_processor(green_lists: KGWGreenLists, delta: float = 2.0, *, device_rows: bool | None = None):
    """A transformers ``LogitsProcessor`` adding δ to the green logits of the last token's green list. The rows
    come from a `DeviceGreenRows` on the scores' device (the same rows, each copied there once) when
    ``device_rows`` is True, or None and the scores are off the CPU; else from the green-list table itself."""
    from transformers import LogitsProcessor

    on_device: dict[Any, DeviceGreenRows] = {}

    class KGWLogitsProcessor(LogitsProcessor):
        def __call__(self, input_ids, scores):
            prev = input_ids[:, -1]
            if not (device_rows or (device_rows is None and scores.device.type != "cpu")):
                mask = green_lists.mask_rows(prev)
            else:
                if scores.device not in on_device:
                    on_device[scores.device] = DeviceGreenRows(green_lists, scores.device)
                mask = on_device[scores.device].mask_rows(prev.to(scores.device))
            width = min(mask.size(1), scores.size(1))
            scores = scores.clone()
            scores[:, :width] += delta * mask[:, :width].to(scores.dtype)
            return scores

    return KGWLogitsProcessor()


def _unique_counts(codes, valid):
    """Per row: how many distinct codes among the valid entries, and how many of those are flagged green.
    codes [B, n] (int64 >= 0), valid [B, n] bool; green is encoded in the lowest bit of each code."""
    import torch

    keyed = torch.where(valid, codes, torch.full_like(codes, -1))
    ordered, _ = keyed.sort(dim=1)
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first &= ordered >= 0
    return first.sum(1), (first & (ordered % 2 == 1)).sum(1)


def kgw_detect(tokens, green_lists: KGWGreenLists, lengths=None, *, unique_pairs: bool = False) -> dict:
    """Vectorised KGW detection of a batch: green counts, tokens scored, z-scores, p-values (numpy [B])."""
    import torch

    tokens, lengths = _as_batch(tokens, lengths)
    if tokens.size(1) < 2:
        raise ValueError("KGW detection needs texts of at least 2 tokens")
    prev, cur = tokens[:, :-1], tokens[:, 1:]
    valid = torch.arange(cur.size(1))[None] < (lengths[:, None] - 1)
    safe_prev = torch.where(valid, prev, torch.zeros_like(prev))
    safe_cur = torch.where(valid, cur, torch.zeros_like(cur))
    green = green_lists.is_green(safe_prev, safe_cur) & valid
    if unique_pairs:
        codes = (safe_prev * green_lists.vocab_size + safe_cur) * 2 + green.long()
        scored, n_green = _unique_counts(codes, valid)
    else:
        scored, n_green = valid.sum(1), green.sum(1)
    scored, n_green = scored.numpy().astype(float), n_green.numpy().astype(float)
    z = z_score(n_green, scored, green_lists.gamma)
    return {"green": n_green, "scored": scored, "z": z, "p_value": normal_sf(z)}


def kgw_detect_loop(tokens: list[int], green_lists: KGWGreenLists, *, unique_pairs: bool = False) -> dict:
    """The plain per-token reference: re-derive each green list from its seed and test membership."""
    green = scored = 0
    seen: set[tuple[int, int]] = set()
    for prev, cur in zip(tokens[:-1], tokens[1:], strict=False):
        if unique_pairs:
            if (prev, cur) in seen:
                continue
            seen.add((prev, cur))
        scored += 1
        green += int(cur in set(green_lists.green_ids(prev).tolist()))
    z = float(z_score(green, scored, green_lists.gamma))
    return {"green": green, "scored": scored, "z": z, "p_value": float(normal_sf(z))}


# --------------------------------------------------------------------------------------------- Unigram
def unigram_key_hash(key: int) -> int:
    """Zhao et al.'s seed: the first 4 bytes (little-endian) of SHA-256 over the key as an int64."""
    return int.from_bytes(hashlib.sha256(np.int64(key).tobytes()).digest()[:4], "little")


@dataclass
class UnigramGreenList:
    """Zhao et al.'s fixed green list: ⌊γV⌋ Trues shuffled by a numpy RNG seeded from the key."""

    vocab_size: int
    gamma: float = 0.5
    key: int = 0
    mask: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_gamma(self.gamma)
        size = int(self.gamma * self.vocab_size)
        mask = np.array([True] * size + [False] * (self.vocab_size - size))
        np.random.default_rng(unigram_key_hash(self.key)).shuffle(mask)
        self.mask = mask


def unigram_logits_processor(green_list: UnigramGreenList, delta: float = 2.0):
    """A transformers ``LogitsProcessor`` adding δ to the fixed green list's logits."""
    import torch
    from transformers import LogitsProcessor

    bonus = torch.tensor(green_list.mask, dtype=torch.float32) * delta
    placed: dict[Any, Any] = {}  # (device, dtype) -> the bonus there, copied once

    class UnigramLogitsProcessor(LogitsProcessor):
        def __call__(self, input_ids, scores):
            width = min(bonus.numel(), scores.size(1))
            key = (scores.device, scores.dtype)
            if key not in placed:
                with torch.inference_mode(False):
                    placed[key] = bonus.to(scores.device, scores.dtype)
            scores = scores.clone()
            scores[:, :width] += placed[key][:width]
            return scores

    return UnigramLogitsProcessor()


def unigram_detect(tokens, green_list: UnigramGreenList, lengths=None, *, unique_tokens: bool = False) -> dict:
    """Vectorised Unigram detection: every token is scored (no context needed); z and p as for KGW."""
    import torch

    tokens, lengths = _as_batch(tokens, lengths)
    valid = torch.arange(tokens.size(1))[None] < lengths[:, None]
    safe = torch.where(valid, tokens, torch.zeros_like(tokens))
    green = torch.as_tensor(green_list.mask)[safe] & valid
    if unique_tokens:
        scored, n_green = _unique_counts(safe * 2 + green.long(), valid)
    else:
        scored, n_green = valid.sum(1), green.sum(1)
    scored, n_green = scored.numpy().astype(float), n_green.numpy().astype(float)
    z = z_score(n_green, scored, green_list.gamma)
    return {"green": n_green, "scored": scored, "z": z, "p_value": normal_sf(z)}


def expected_z(gamma: float, scored: int, green_share: float) -> float:
    """z a text gets when a share ``green_share`` of its ``scored`` tokens are green (for sanity checks)."""
    return (green_share - gamma) * scored / math.sqrt(scored * gamma * (1 - gamma))
