"""One torch thread for the study's tests: small batched matmuls on a shared 2-core machine run many times
slower when two threads spin against each other (the assets do the same through ``cpu_threads``)."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
