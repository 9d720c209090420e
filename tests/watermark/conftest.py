"""Tiny causal LMs for the watermark tests: freshly initialised (near-uniform next-token laws, plenty of
entropy for a watermark) and small enough to generate in milliseconds."""

import pytest


@pytest.fixture(scope="session")
def tiny_lm():
    from assets.lm.model import ModelSize, build_model

    model = build_model(ModelSize("wm-test", 32, 1, 2, 64, 128), vocab_size=120, seed=0)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_oracle():
    from assets.lm.model import ModelSize, build_model

    return build_model(ModelSize("wm-oracle", 32, 1, 2, 64, 128), vocab_size=120, seed=1).eval()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small tensors on a shared 2-core machine: one thread is faster than two spinning against each other."""
    from assets.lm.threads import torch_threads

    with torch_threads(1):
        yield
