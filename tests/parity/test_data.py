"""The (n, k)-sparse parity data: sign bits, secrets and labels."""

import numpy as np
import pytest
import torch

from assets.lm.threads import torch_threads
from assets.parity.data import (
    all_inputs,
    evaluation_set,
    parity_labels,
    rademacher,
    relevant_mask,
    secret_subsets,
    training_set,
    uniform_indices,
)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def test_labels_are_the_product_of_the_secret_coordinates():
    x = rademacher([3, 4], step=1, rows=64, n=12)
    subsets = secret_subsets([3, 4], 12, 3)
    y = parity_labels(x, subsets)
    for m in range(2):
        expected = np.prod(x[m].numpy()[:, subsets[m]], axis=1)
        np.testing.assert_array_equal(y[m].numpy(), expected)
    # flipping one secret coordinate flips the label; flipping any other coordinate does not
    flipped = x.clone()
    flipped[0, :, subsets[0][0]] *= -1
    assert torch.equal(parity_labels(flipped, subsets)[0], -y[0])
    other = next(i for i in range(12) if i not in subsets[0])
    flipped = x.clone()
    flipped[0, :, other] *= -1
    assert torch.equal(parity_labels(flipped, subsets)[0], y[0])


def test_labels_on_a_shared_sample_match_per_model_labels_and_are_balanced():
    cube = all_inputs(6, dtype=torch.float32)
    subsets = secret_subsets([0, 1, 2], 6, 2)
    shared = parity_labels(cube, subsets)
    per_model = parity_labels(cube.expand(3, -1, -1), subsets)
    assert torch.equal(shared, per_model)
    assert shared.shape == (3, 64) and torch.all(shared.sum(dim=1) == 0)  # exactly balanced on the cube


def test_sign_bits_are_uniform_deterministic_and_per_seed():
    x = rademacher(list(range(8)), step=5, rows=512, n=40)
    assert set(torch.unique(x).tolist()) == {-1.0, 1.0}
    assert abs(float(x.mean())) < 0.01  # 163840 signs: std of the mean 0.0025
    corr = torch.corrcoef(x.reshape(-1, 40).T)
    # coordinates uncorrelated: 4096 rows give each correlation a std of 1/64; 780 pairs stay within 5 std
    assert float((corr - torch.eye(40)).abs().max()) < 5 / 64
    # a seed's batch does not depend on which other seeds are drawn with it
    assert torch.equal(rademacher([5], 5, 512, 40)[0], x[5])
    assert not torch.equal(rademacher([5], 6, 512, 40)[0], x[5])
    assert not torch.equal(x[4], x[5])
    assert torch.equal(rademacher([5], 5, 512, 40), rademacher([5], 5, 512, 40))


def test_streams_and_indices():
    ev = evaluation_set(10, 256)
    assert ev.shape == (256, 10) and torch.equal(ev, evaluation_set(10, 256))
    train = training_set([0, 1], 10, 100)
    assert train.shape == (2, 100, 10) and not torch.equal(train[0, :10], ev[:10])
    idx = uniform_indices([0, 1], 3, 5000, 37)
    assert idx.min() >= 0 and idx.max() < 37 and idx.unique().numel() == 37
    counts = torch.bincount(idx.flatten(), minlength=37).float()
    assert float(counts.std() / counts.mean()) < 0.1  # roughly uniform (10000 draws over 37 values)


def test_secrets_and_masks():
    subsets = secret_subsets(range(20), 10, 3)
    assert subsets.shape == (20, 3) and np.all(np.diff(subsets, axis=1) > 0) and subsets.max() < 10
    assert len({tuple(s) for s in subsets}) > 10  # seeds pick different secrets
    mask = relevant_mask(subsets, 10)
    assert mask.sum(dim=1).tolist() == [3] * 20 and bool(mask[0, subsets[0]].all())


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="k=5"):
        secret_subsets([0], 4, 5)
    with pytest.raises(ValueError, match="rows"):
        rademacher([0], 0, 0, 4)
    with pytest.raises(ValueError, match="x has shape"):
        parity_labels(torch.ones(2, 3, 4), np.zeros((3, 2), dtype=np.int64))
