"""Training batches on the device, one step ahead: the next micro-batch is sampled and its copy started while
the current one trains.

On CUDA the windows are gathered into pinned host memory and copied with ``non_blocking=True``, so the copy
overlaps the running kernels and the host never waits for it. On CPU the batches are the same tensors the
sampler returns (no copy). Either way the batches, and the order the sampler's generator is drawn in, are
exactly those of sampling one batch at a time: the source draws at most ``total`` batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from assets.lm.data import EpochOrder, TokenStream


def to_device(t: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``t`` on ``device``; a CPU tensor bound for CUDA goes through pinned memory with ``non_blocking=True``, so
    the host does not wait for the copy (PyTorch keeps the pinned buffer alive until the copy is done). Every
    trainer's batches take this path (the LM trainer here, chat SFT, the in-filler, the SGD-noise sweeps)."""
    if torch.device(device).type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class PrefetchedBatches:
    """Iterate ``total`` micro-batches (x, y) of ``rows`` global rows (this rank's slice), already on ``device``.

    order None samples windows at random with ``generator`` (`TokenStream.get_batch`); an `EpochOrder` visits
    them once per epoch. The batch after the one handed out is already sampled and on its way to the device.
    """

    def __init__(
        self,
        stream: TokenStream,
        rows: int,
        total: int,
        generator: torch.Generator,
        device: str,
        *,
        order: EpochOrder | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.stream, self.rows, self.total, self.generator = stream, rows, total, generator
        self.device, self.order, self.rank, self.world_size = device, order, rank, world_size

    def _sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.order is None:
            x, y = self.stream.get_batch(self.rows, self.generator, rank=self.rank, world_size=self.world_size)
        else:
            x, y = self.order.get_batch(self.stream, self.rows, rank=self.rank, world_size=self.world_size)
        return to_device(x, self.device), to_device(y, self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.total < 1:
            return
        ahead = self._sample()
        for index in range(self.total):
            current = ahead
            if index + 1 < self.total:
                ahead = self._sample()  # sampled and copied before the caller runs `current`
            yield current
