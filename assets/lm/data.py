"""Token-stream batching for language-model training, nanoGPT style.

A corpus is one long 1-D array of token ids. A training batch is `batch_size` windows of
`context_length + 1` tokens: x is the first T tokens of each window, y the next T (shifted by one).
Two orders: "random" draws window starts uniformly with replacement (nanoGPT); "epochs" (`EpochOrder`) cuts
the stream into non-overlapping windows and visits each once per epoch, in a fresh random order every epoch,
so e epochs show every window exactly e times (repeated data in the sense of the scaling-law papers).

Distributed data parallel: every rank draws the *same global* batch of window offsets from the same seeded
generator and keeps its own contiguous slice of rows (rank r of w keeps rows r*B/w : (r+1)*B/w). The
gradient DDP averages over ranks is then the gradient of the global batch, so a w-process run matches a
one-process run with the same global batch, and every rank's generator stays in step without communication.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


def _as_stream(tokens: np.ndarray, context_length: int, field: str = "tokens") -> np.ndarray:
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"{field} must be a 1-D array of token ids, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{field} must hold integer token ids, got dtype {arr.dtype}")
    if not isinstance(context_length, int) or context_length < 1:
        raise ValueError(f"context_length must be a positive int, got {context_length!r}")
    if arr.size < context_length + 1:
        raise ValueError(
            f"{field} has {arr.size} tokens; a window needs context_length + 1 = {context_length + 1}"
        )
    return arr


def rank_slice(n_rows: int, rank: int, world_size: int) -> slice:
    """Rows of a global batch that belong to `rank`: the contiguous block r*B/w : (r+1)*B/w."""
    if world_size < 1 or not (0 <= rank < world_size):
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    if n_rows % world_size:
        raise ValueError(f"batch_size ({n_rows}) must be divisible by world_size ({world_size})")
    per_rank = n_rows // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


class TokenStream:
    """A 1-D token array cut into (x, y) windows of `context_length` tokens.

    The array is converted once to an int64 torch tensor so that gathering a batch is one indexing op.
    """

    def __init__(self, tokens: np.ndarray, context_length: int, *, field: str = "tokens") -> None:
        import torch

        arr = _as_stream(tokens, context_length, field)
        self.context_length = context_length
        self.data = torch.from_numpy(arr.astype(np.int64, copy=False))
        self._window = torch.arange(context_length + 1)

    def __len__(self) -> int:
        return int(self.data.numel())

    @property
    def n_offsets(self) -> int:
        """Number of distinct window starts: offsets 0 .. len - T - 1."""
        return len(self) - self.context_length

    def sample_offsets(
        self, batch_size: int, generator: torch.Generator | np.random.Generator
    ) -> torch.Tensor:
        """`batch_size` window starts drawn uniformly (with replacement) from a seeded generator."""
        import torch

        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(generator, np.random.Generator):
            return torch.from_numpy(generator.integers(0, self.n_offsets, size=batch_size, dtype=np.int64))
        if isinstance(generator, torch.Generator):
            return torch.randint(0, self.n_offsets, (batch_size,), generator=generator)
        raise TypeError(
            f"generator must be a torch.Generator or numpy Generator, got {type(generator).__name__}"
        )

    def windows(self, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) LongTensors of shape (len(offsets), T); y is x shifted left by one token."""
        block = self.data[offsets[:, None] + self._window]
        return block[:, :-1], block[:, 1:]

    def get_batch(
        self,
        batch_size: int,
        generator: torch.Generator | np.random.Generator,
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's rows of a global batch of `batch_size` random windows (see module docstring)."""
        rows = rank_slice(batch_size, rank, world_size)
        # Draw the whole global batch so every rank consumes the generator identically.
        offsets = self.sample_offsets(batch_size, generator)
        return self.windows(offsets[rows])

    def fixed_windows(self, n_windows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A deterministic validation set: `n_windows` windows with evenly spaced starts over the stream."""
        import torch

        if not isinstance(n_windows, int) or n_windows < 1:
            raise ValueError(f"n_windows must be a positive int, got {n_windows!r}")
        offsets = np.linspace(0, self.n_offsets - 1, n_windows).round().astype(np.int64)
        return self.windows(torch.from_numpy(offsets))


class EpochOrder:
    """Non-overlapping windows of a `TokenStream`, each visited once per epoch, reshuffled every epoch.

    Window starts are 0, T, 2T, ... (the tail shorter than a window is never used). `next_offsets(B)` returns the
    next B starts of the current permutation, running on into a fresh permutation when an epoch ends, so a
    batch may straddle two epochs. Seeded like `sample_offsets`: every DDP rank draws the same global batch.
    """

    def __init__(self, stream: TokenStream, generator: torch.Generator) -> None:
        import torch

        self.starts = torch.arange(0, stream.n_offsets, stream.context_length)
        self.generator = generator
        self.epoch, self._position = 0, 0
        self._order = torch.randperm(len(self.starts), generator=generator)
        self.windows_drawn = 0

    @property
    def n_windows(self) -> int:
        """Windows per epoch."""
        return len(self.starts)

    @property
    def epochs_completed(self) -> float:
        """Windows drawn so far, in epochs."""
        return self.windows_drawn / self.n_windows

    def next_offsets(self, batch_size: int) -> torch.Tensor:
        import torch

        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        taken = []
        while batch_size > 0:
            if self._position == self.n_windows:
                self.epoch += 1
                self._position = 0
                self._order = torch.randperm(self.n_windows, generator=self.generator)
            chunk = self._order[self._position:self._position + batch_size]
            self._position += len(chunk)
            batch_size -= len(chunk)
            taken.append(chunk)
        offsets = self.starts[torch.cat(taken)]
        self.windows_drawn += len(offsets)
        return offsets

    def get_batch(self, stream: TokenStream, batch_size: int, *, rank: int = 0,
                  world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's rows of the next global batch in epoch order."""
        rows = rank_slice(batch_size, rank, world_size)
        return stream.windows(self.next_offsets(batch_size)[rows])


def get_batch(
    tokens: np.ndarray,
    batch_size: int,
    context_length: int,
    generator: torch.Generator | np.random.Generator,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Functional form of `TokenStream.get_batch` for a one-off batch (converts `tokens` each call)."""
    return TokenStream(tokens, context_length).get_batch(
        batch_size, generator, rank=rank, world_size=world_size
    )
