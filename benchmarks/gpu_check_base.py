"""What every GPU-check part shares: `Check` (device and size), the part registry and synthetic words.

`benchmarks/gpu_check.py` runs the parts; `benchmarks/gpu_check_parts.py` and `gpu_check.py` define them with
the `part` decorator. No Dagster, no MLflow: the GPU machine may lack them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from assets.lm.model import ModelSize, build_model


@dataclass(frozen=True)
class Check:
    """Where and how big: ``quick`` shrinks every shape to a CPU smoke run."""

    device: str
    quick: bool

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def pick(self, quick, full):
        return quick if self.quick else full

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def size(self, d: int, layers: int, heads: int, d_ff: int, context: int) -> ModelSize:
        """The model shape of a part: as given at full shapes, one small layer at quick ones."""
        return ModelSize("check", d, layers, heads, d_ff, context) if not self.quick else \
            ModelSize("check", 32, 1, 2, 64, min(context, 64))

    def model(self, vocab: int, d: int, layers: int, heads: int, d_ff: int, context: int, seed: int = 0, **kw):
        """A freshly initialised decoder of the LM family on the device, in eval mode."""
        return build_model(self.size(d, layers, heads, d_ff, context), vocab, seed=seed, **kw).to(self.device).eval()


PARTS: dict[str, tuple[str, Callable[[Check], tuple[float, str]]]] = {}  # name -> (what, run -> (rate, unit))


def part(name: str, what: str):
    """Register ``fn(check) -> (amount, unit)`` as a part; a unit ending in "/s" is already a rate."""
    def register(fn: Callable[[Check], tuple[float, str]]):
        PARTS[name] = (what, fn)
        return fn
    return register


def words_tokenizer(n_words: int, extra: list[str] | None = None, chat: bool = False):
    """A word-level tokenizer over w0 .. w{n-1}, '.', and `extra` words; with the chat format if `chat`."""
    from assets.chat.format import install_chat_format
    from assets.corpora.tokenization import as_fast_tokenizer, train_word_level_tokenizer

    raw = train_word_level_tokenizer([*(f"w{i}" for i in range(n_words)), ".", *(extra or [])])
    return install_chat_format(raw) if chat else as_fast_tokenizer(raw)


def sentences(n: int, n_words: int, length: int, seed: int = 0) -> list[str]:
    """``n`` sentences of ``length`` uniformly drawn words w0 .. w{n_words-1}, each ending in '.'."""
    rng = np.random.default_rng(seed)
    return [" ".join(f"w{i}" for i in rng.integers(0, n_words, length)) + " ." for _ in range(n)]
