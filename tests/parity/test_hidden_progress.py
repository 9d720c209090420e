"""Hidden-progress measures on cases with a known answer."""

import math

import numpy as np
import pytest
import torch

from assets.lm.threads import torch_threads
from assets.parity.architectures import Network
from assets.parity.data import all_inputs, parity_labels, rademacher, relevant_mask
from assets.parity.hidden_progress import fourier_gap, population_gradient, weight_measures

N, A, B = 8, 2, 5  # the secret S = {2, 5}


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def _polynet_case(scale=0.05, seed=0):
    """A degree-2 polynomial neuron with small weights: |f| < 1 everywhere, so the hinge loss's derivative
    is -y on every input and the population gradient is -E[y grad f], known in closed form."""
    net = Network("polynet", N, 2)
    W = torch.randn(1, 2, N, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    subsets = np.array([[A, B]])
    return net, {"W": W}, subsets


def _expected_gradient(W):
    # f = (w1.x)(w2.x), y = x_A x_B: E[y (w2.x) x_i] = w2_B if i = A, w2_A if i = B, else 0 (and symmetrically)
    w1, w2 = W[0, 0], W[0, 1]
    G = torch.zeros(2, N, dtype=torch.float64)
    G[0, A], G[0, B], G[1, A], G[1, B] = -w2[B], -w2[A], -w1[B], -w1[A]
    return G


def test_population_gradient_on_the_full_cube_is_exact():
    net, params, subsets = _polynet_case()
    cube = all_inputs(N)
    y = parity_labels(cube, subsets)
    G = population_gradient(net, params, cube, y, "hinge", chunk=100)  # chunking must not change the mean
    expected = _expected_gradient(params["W"])
    torch.testing.assert_close(G[0], expected, atol=1e-14, rtol=0)
    gap = fourier_gap(G, relevant_mask(subsets, N))
    assert float(gap["gradient_irrelevant"][0]) < 1e-14  # the irrelevant coordinates get exactly nothing
    rms = math.sqrt(float((expected[:, [A, B]] ** 2).sum(dim=0).mean()))
    assert math.isclose(float(gap["gradient_relevant"][0]), rms, rel_tol=1e-12)
    assert float(gap["fourier_gap"][0]) > 1e10


def test_sampled_estimate_approaches_the_population_and_its_noise_floor():
    net, params, subsets = _polynet_case(scale=0.05, seed=1)
    x = rademacher([11], 0, 2**15, N, dtype=torch.float64)[0]
    y = parity_labels(x, subsets)
    G = population_gradient(net, params, x, y, "hinge")
    expected = _expected_gradient(params["W"])
    gap = fourier_gap(G, relevant_mask(subsets, N))
    exact = math.sqrt(float((expected[:, [A, B]] ** 2).sum(dim=0).mean()))
    # per-entry noise: std of y (w.x) x_i over the sample, about |w| / sqrt(N samples)
    floor = float(params["W"][0].norm(dim=1).max()) / math.sqrt(2**15)
    assert abs(float(gap["gradient_relevant"][0]) - exact) < 4 * floor * math.sqrt(2)
    assert float(gap["gradient_irrelevant"][0]) < 4 * floor * math.sqrt(2)
    assert float(gap["fourier_gap"][0]) > 2


def test_weight_measures_by_hand():
    W0 = torch.ones(1, 2, 4, dtype=torch.float64)
    W = W0.clone()
    W[0, :, 1] = 3.0  # relevant column 1 grows
    W[0, 0, 2] = -1.0  # an irrelevant weight flips
    relevant = torch.tensor([[False, True, False, False]])
    m = weight_measures(W, W0, relevant)
    assert float(m["linf_change"][0]) == 2.0
    assert math.isclose(float(m["relevant_weight_norm"][0]), math.sqrt(18))
    assert math.isclose(float(m["irrelevant_weight_norm"][0]), math.sqrt(2))  # columns all have norm^2 2
    assert math.isclose(float(m["weight_mass_ratio"][0]), 3.0)
    assert math.isclose(float(m["relevant_weight_share"][0]), 18 / 24)
    # change on S: column norm sqrt(8); off S: only column 2 moved (by 2), RMS over 3 columns sqrt(4/3)
    assert math.isclose(float(m["relevant_change_ratio"][0]), math.sqrt(8) / math.sqrt(4 / 3), rel_tol=1e-6)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="expected W and W0"):
        weight_measures(torch.ones(1, 2, 4), torch.ones(1, 2, 3), torch.ones(1, 4, dtype=torch.bool))
    net, params, subsets = _polynet_case()
    with pytest.raises(ValueError, match="expected x"):
        population_gradient(net, params, torch.ones(3, N, dtype=torch.float64), torch.ones(2, 3), "hinge")
