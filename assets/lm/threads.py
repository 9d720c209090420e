"""Torch CPU threads for a block of work: small models on a 2-core machine often run best on one thread
per process (two threads on two busy cores spin against each other). Shared by the studies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(count: int, device: str = "cpu") -> Iterator[None]:
    """Use ``count`` torch CPU threads inside the block when running on CPU (0 or a GPU device: unchanged)."""
    import torch

    if not isinstance(count, int) or count < 0:
        raise ValueError(f"cpu_threads must be an int >= 0, got {count!r}")
    before = torch.get_num_threads()
    if count and device == "cpu":
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
