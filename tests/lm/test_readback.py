"""`DeviceScalars`: losses kept on the device and read back together, in order, every few steps.

The `meta` device stands in for a GPU: it holds no data, so a read-back there is a copy to the CPU
(`_to_copy`) or a scalar read (`_local_scalar_dense`), which `HostReads` counts before the copy fails."""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from assets.lm.readback import DeviceScalars

SCALAR_READS = {torch.ops.aten.item.default, torch.ops.aten.is_nonzero.default,
                torch.ops.aten._local_scalar_dense.default}


class HostReads(TorchDispatchMode):
    """Counts device -> host read-backs (scalar reads, copies of a non-CPU tensor to the CPU) in `count`, and
    lists every op seen in `ops`."""

    def __init__(self):
        super().__init__()
        self.count, self.ops = 0, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ops.append(func)
        to_host = func is torch.ops.aten._to_copy.default and args[0].device.type != "cpu" and \
            torch.device(kwargs.get("device", args[0].device)).type == "cpu"
        self.count += func in SCALAR_READS or to_host
        return func(*args, **kwargs)


def losses_of(n: int, device: str = "cpu") -> list[torch.Tensor]:
    """n scalar losses with the gradient history a training step leaves on them."""
    weight = torch.linspace(0.5, 2.0, n, device=device, requires_grad=True)
    return list((weight * 3.0).unbind())


def test_due_every_n_steps_with_something_waiting():
    scalars = DeviceScalars(4)
    assert not scalars.due(4)  # nothing waits: nothing to read back
    read_at = []
    for step, loss in enumerate(losses_of(13), start=1):
        scalars.add(step, loss)
        if scalars.due(step):
            read_at.append((step, [s for s, _ in scalars.read_back()]))
    assert read_at == [(4, [1, 2, 3, 4]), (8, [5, 6, 7, 8]), (12, [9, 10, 11, 12])]
    assert len(scalars) == 1 and [s for s, _ in scalars.read_back()] == [13]  # the end: what is left


def test_read_back_returns_every_value_in_the_order_added_as_the_floats_of_reading_each_alone():
    scalars, losses = DeviceScalars(50), losses_of(7)
    keys = [("row", 3), 1, "b", 0, 9, 2, ("row", 3)]  # any keys, repeated ones included, kept in order
    for key, loss in zip(keys, losses, strict=True):
        scalars.add(key, loss)
    pairs = scalars.read_back()
    assert [k for k, _ in pairs] == keys
    assert [v for _, v in pairs] == [float(loss.detach()) for loss in losses]  # exact, not approximately
    assert all(type(v) is float for _, v in pairs)
    assert len(scalars) == 0 and scalars.read_back() == []


def test_reduce_runs_on_the_stacked_values_before_the_read_back():
    scalars = DeviceScalars(2)
    for step, loss in enumerate(losses_of(3), start=1):
        scalars.add(step, loss)
    seen = []

    def halve(stacked: torch.Tensor) -> torch.Tensor:
        seen.append((stacked.shape, stacked.requires_grad))
        return stacked / 2

    assert [v for _, v in scalars.read_back(halve)] == [float(loss.detach() / 2) for loss in losses_of(3)]
    assert seen == [((3,), False)]  # one call on all of them, detached from the graph


def test_a_non_finite_loss_is_seen_at_its_step_when_read_back():
    scalars = DeviceScalars(4)
    losses = losses_of(8)
    losses[2] = losses[2] * float("nan")  # step 3
    losses[5] = losses[5] * float("inf")  # step 6
    first_bad = []
    for step, loss in enumerate(losses, start=1):
        scalars.add(step, loss)  # adding never looks at the value
        if scalars.due(step):
            first_bad.append((step, [s for s, v in scalars.read_back() if not math.isfinite(v)]))
    assert first_bad == [(4, [3]), (8, [6])]


def test_on_the_meta_device_nothing_is_read_back_until_read_back():
    scalars, losses = DeviceScalars(5), losses_of(4, device="meta")
    with HostReads() as reads:
        for step, loss in enumerate(losses, start=1):
            scalars.add(step, loss)
            assert not scalars.due(step) and len(scalars) == step
    assert reads.count == 0
    assert set(reads.ops) <= {torch.ops.aten.detach.default}  # no op but the detach of each added loss
    with HostReads() as reads, pytest.raises(NotImplementedError, match="meta"):
        scalars.read_back()  # a meta tensor holds no data: the one copy to the host fails
    assert reads.count == 1 and reads.ops.count(torch.ops.aten.stack.default) == 1


def test_on_the_cpu_one_read_back_is_one_stack_and_no_scalar_read():
    scalars = DeviceScalars(3)
    for step, loss in enumerate(losses_of(6), start=1):
        scalars.add(step, loss)
    with HostReads() as reads:
        scalars.read_back()
    assert reads.count == 0 and reads.ops.count(torch.ops.aten.stack.default) == 1


@pytest.mark.parametrize("every", [0, -1, 2.0, None])
def test_every_must_be_a_positive_int(every):
    with pytest.raises(ValueError, match="every"):
        DeviceScalars(every)
