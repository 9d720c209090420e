"""(n, k)-sparse parity data: x uniform in {±1}^n, y = prod_{i in S} x_i for a secret S of size k.

The sign bits come from a counter-based generator (SplitMix64 on ``(seed, stream, step, row, word)``) so a
model's data depends only on its own seed and the step: the batched trainer draws the batches of all its
models in one vectorised call, a one-model loop draws the same batch for the same seed, and CPU and CUDA give
the same bits. Each seed also picks its own secret subset S.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# Separate streams so the training batches, the evaluation set and a finite training set never share bits.
STREAM_ONLINE, STREAM_EVAL, STREAM_TRAIN_SET, STREAM_TRAIN_INDEX = 1, 2, 3, 4
EVAL_SEED = 2_022  # the evaluation set is the same fresh sample for every run of a given n

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed int64
_MIX1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_MIX2 = -7723592293110705685  # 0x94D049BB133111EB


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def splitmix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on int64 tensors (wrapping arithmetic): a bijective, well-mixed hash."""
    z = z + _GOLDEN
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    return z ^ _shr(z, 31)


def _check_positive(name: str, value: int) -> None:
    if int(value) < 1:
        raise ValueError(f"{name}={value!r}: expected a positive integer")


def seed_keys(seeds: Sequence[int] | torch.Tensor, stream: int | None, device: str | torch.device = "cpu") -> torch.Tensor:
    """Each seed's key for one stream (int64, (M,)); callers in a loop may pass precomputed keys as ``seeds``
    with ``stream=None``."""
    seeds = torch.as_tensor(seeds, dtype=torch.int64, device=device).reshape(-1)
    return seeds if stream is None else splitmix64(seeds * 8 + stream)


def rademacher(seeds: Sequence[int] | torch.Tensor, step: int, rows: int, n: int, stream: int | None = STREAM_ONLINE,
               device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform signs of shape (len(seeds), rows, n): row ``r`` of ``step`` for each seed, in {-1, +1}."""
    _check_positive("rows", rows)
    _check_positive("n", n)
    words = (n + 31) // 32
    key = splitmix64(seed_keys(seeds, stream, device) + int(step))  # (M,)
    counter = torch.arange(rows * words, dtype=torch.int64, device=device)
    h = splitmix64(key[:, None] + counter[None, :])  # (M, rows*words)
    shifts = torch.arange(32, dtype=torch.int64, device=device)
    bits = (h[..., None] >> shifts) & 1  # low 32 bits of each hash
    bits = bits.reshape(len(key), rows, words * 32)[..., :n]
    return (1 - 2 * bits).to(dtype)


def uniform_indices(seeds: Sequence[int] | torch.Tensor, step: int, rows: int, size: int,
                    stream: int | None = STREAM_TRAIN_INDEX, device: str | torch.device = "cpu") -> torch.Tensor:
    """Indices in [0, size) of shape (len(seeds), rows): which training examples form each seed's batch."""
    _check_positive("size", size)
    key = splitmix64(seed_keys(seeds, stream, device) + int(step))
    h = splitmix64(key[:, None] + torch.arange(rows, dtype=torch.int64, device=device)[None, :])
    return _shr(h, 11) % size  # 53 non-negative bits; the modulo bias is below 1e-12 for size < 1e4


def secret_subsets(seeds: Sequence[int], n: int, k: int) -> np.ndarray:
    """Each seed's secret subset S (sorted), shape (len(seeds), k)."""
    if not 1 <= k <= n:
        raise ValueError(f"k={k!r}: expected 1 <= k <= n (n={n})")
    return np.stack([np.sort(np.random.default_rng([int(s), n, k]).choice(n, size=k, replace=False))
                     for s in seeds]).astype(np.int64)


def parity_labels(x: torch.Tensor, subsets: torch.Tensor | np.ndarray) -> torch.Tensor:
    """y = prod_{i in S} x_i. ``x``: (M, B, n) per model or (B, n) shared; ``subsets``: (M, k). Returns (M, B)."""
    subsets = torch.as_tensor(subsets, dtype=torch.int64, device=x.device)
    if subsets.ndim != 2:
        raise ValueError(f"subsets has shape {tuple(subsets.shape)}: expected (models, k)")
    if x.ndim == 2:
        return x[:, subsets].prod(dim=-1).T  # (B, M, k) -> (M, B)
    if x.ndim != 3 or x.shape[0] != subsets.shape[0]:
        raise ValueError(f"x has shape {tuple(x.shape)}: expected (B, n) or ({subsets.shape[0]}, B, n)")
    index = subsets[:, None, :].expand(-1, x.shape[1], -1)
    return torch.gather(x, 2, index).prod(dim=-1)


def relevant_mask(subsets: np.ndarray | torch.Tensor, n: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """Boolean (M, n): True on each model's k relevant coordinates."""
    subsets = torch.as_tensor(subsets, dtype=torch.int64, device=device)
    mask = torch.zeros(subsets.shape[0], n, dtype=torch.bool, device=device)
    return mask.scatter_(1, subsets, True)


def evaluation_set(n: int, size: int, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The fixed evaluation set of ``size`` fresh samples, shared by every run with this n: (size, n)."""
    return rademacher([EVAL_SEED], 0, size, n, stream=STREAM_EVAL, device=device, dtype=dtype)[0]


def training_set(seeds: Sequence[int], n: int, size: int, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The finite-sample variant's fixed training set, one per seed: (M, size, n)."""
    return rademacher(seeds, 0, size, n, stream=STREAM_TRAIN_SET, device=device, dtype=dtype)


def all_inputs(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Every point of {±1}^n, (2^n, n): the exact population for small n."""
    if not 1 <= n <= 20:
        raise ValueError(f"n={n!r}: the full cube is enumerated only for 1 <= n <= 20")
    codes = torch.arange(2**n)[:, None] >> torch.arange(n)[None, :] & 1
    return (1 - 2 * codes).to(dtype)
