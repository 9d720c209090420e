"""The ICLT's next-token probabilities come from the last position's hidden state only: the head never sees
the other positions, and the logits are the full forward pass's to the bit."""

import numpy as np
import pytest
import torch

from assets.lm.model import ModelSize, build_model
from assets.uncertainty.iclt import _last_probs, _logits_at


@pytest.fixture(scope="module")
def model():
    return build_model(ModelSize("t", 32, 2, 2, 64, 48), 300, seed=0).eval()


def full_last_probs(model, sequences, batch_size):
    """The reference: the full logits of every position, then the last real one (right padding)."""
    out = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        length = max(len(s) for s in chunk)
        ids = torch.zeros(len(chunk), length, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(chunk):
            ids[i, :len(s)], mask[i, :len(s)] = torch.tensor(s), 1
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        out.append(logits[torch.arange(len(chunk)), mask.sum(1) - 1].float().softmax(-1).numpy())
    return np.concatenate(out)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_last_position_probabilities_equal_the_full_forward_pass(model, batch_size):
    rng = np.random.default_rng(batch_size)
    sequences = [[1, *rng.integers(3, 300, size=int(n)).tolist()] for n in rng.integers(0, 40, size=15)]
    np.testing.assert_array_equal(_last_probs(model, sequences, batch_size),
                                  full_last_probs(model, sequences, batch_size))


def test_the_head_sees_one_row_per_sequence(model):
    seen = []
    hook = model.lm_head.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    try:
        ids = torch.randint(3, 300, (20, 30))
        logits = _logits_at(model, ids, torch.ones_like(ids), torch.full((20,), 29))
    finally:
        hook.remove()
    assert logits.shape == (20, 300) and seen == [(20, 32)]  # not (20, 30, 32): no [n, length, vocab] logits
