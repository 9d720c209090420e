"""Losses that stay on the device until they are read back together: one host sync every few steps.

On CUDA, `float(loss)` makes the host wait until the device has finished the step, so a loop that logs every
step's loss that way leaves the device idle between steps. The training loops (`assets.lm.training`,
`assets.chat.sft`, `assets.watermark.infill`) instead hand their losses to a `DeviceScalars` and read them all
back with one `.tolist()` every few steps and at the end. The floats are the ones `float(loss)` gives at each
step, so on the CPU nothing logged changes, only when it is logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


class DeviceScalars:
    """Scalar tensors kept on their device, each with a key (a step, a curve row), read back in one sync.

    every: the cadence `due` reports (a loop may also read back at other steps, e.g. at evaluations).
    """

    def __init__(self, every: int):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        self.every = every
        self._waiting: list[tuple[Any, torch.Tensor]] = []

    def __len__(self) -> int:
        """How many scalars wait to be read back."""
        return len(self._waiting)

    def add(self, key: Any, value: torch.Tensor) -> None:
        """Keep the scalar `value` (detached, on its device) under `key`; nothing is read back. The caller
        must not change `value` in place afterwards."""
        self._waiting.append((key, value.detach()))

    def due(self, step: int) -> bool:
        """Whether to read back at `step`: a multiple of `every`, with something waiting."""
        return bool(self._waiting) and step % self.every == 0

    def read_back(self, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[tuple]:
        """Every waiting (key, value), the value a Python float, in the order added, read in one host sync;
        afterwards nothing waits. reduce: applied on the device to the stacked values before the read-back
        (e.g. an all-reduce over ranks)."""
        import torch

        if not self._waiting:
            return []
        keys, values = zip(*self._waiting, strict=True)
        stacked = torch.stack(values)
        floats = (reduce(stacked) if reduce is not None else stacked).tolist()
        self._waiting.clear()
        return list(zip(keys, floats, strict=True))
