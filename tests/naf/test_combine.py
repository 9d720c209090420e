"""CP-Δ, CP-KL and k_x on hand-made distributions with answers worked out by hand."""

import math

import pytest
import torch

from assets.naf.combine import cp_delta, cp_kl, sequence_k_bits, single


def logs(*rows):
    return torch.tensor(rows, dtype=torch.float64).log()


def test_cp_delta_is_the_normalised_minimum():
    q1, q2 = logs([0.5, 0.3, 0.2]), logs([0.2, 0.3, 0.5])
    log_p, log_z = cp_delta([q1, q2])
    # min = (0.2, 0.3, 0.2), Z = 0.7 = 1 - TV(q1, q2) with TV = 0.3
    assert torch.allclose(log_p.exp(), torch.tensor([[2 / 7, 3 / 7, 2 / 7]], dtype=torch.float32))
    assert math.isclose(float(log_z.exp()), 0.7, rel_tol=1e-6)
    tv = 0.5 * float((q1.exp() - q2.exp()).abs().sum())
    assert math.isclose(float(log_z.exp()), 1 - tv, rel_tol=1e-6)
    # the max-divergence bound: p/q_i <= 1/Z for every token and both models
    for q in (q1, q2):
        assert float((log_p - q.float()).max()) <= -float(log_z) + 1e-6


def test_cp_kl_is_the_normalised_geometric_mean():
    q1, q2 = logs([0.8, 0.1, 0.1]), logs([0.2, 0.4, 0.4])
    log_p, log_z = cp_kl([q1, q2])
    g = torch.tensor([math.sqrt(0.16), math.sqrt(0.04), math.sqrt(0.04)])  # (0.4, 0.2, 0.2)
    assert torch.allclose(log_p.exp()[0], g / g.sum(), atol=1e-6)
    assert math.isclose(float(log_z.exp()), 0.8, rel_tol=1e-6)
    # KL(p||q1) + KL(p||q2) = -2 ln Z
    p = log_p.exp()[0].double()
    kl = sum(float((p * (log_p[0].double() - q[0])).sum()) for q in (q1, q2))
    assert math.isclose(kl, -2 * float(log_z), rel_tol=1e-5)


def test_identical_models_combine_to_themselves_and_rows_normalise():
    torch.manual_seed(0)
    q = torch.randn(4, 7, 11).log_softmax(-1)
    for rule in (cp_delta, cp_kl):
        log_p, log_z = rule([q, q])
        assert torch.allclose(log_p, q, atol=1e-5)
        assert torch.allclose(log_z, torch.zeros(4, 7), atol=1e-5)
    other = torch.randn(4, 7, 11).log_softmax(-1)
    for rule in (cp_delta, cp_kl):
        log_p, log_z = rule([q, other])
        assert torch.allclose(log_p.exp().sum(-1), torch.ones(4, 7), atol=1e-5)
        assert (log_z <= 1e-6).all()  # Z <= 1 for both rules


def test_disjoint_supports_cannot_be_combined():
    q1, q2 = logs([1.0, 0.0]), logs([0.0, 1.0])
    with pytest.raises(ValueError, match="no mass"):
        cp_delta([q1, q2])
    with pytest.raises(ValueError, match="same shape"):
        cp_delta([logs([0.5, 0.5]), logs([0.2, 0.3, 0.5])])


def test_single_rule_passes_one_model_through():
    q1, q2 = logs([0.5, 0.5]), logs([0.9, 0.1])
    log_p, log_z = single(1)([q1, q2])
    assert torch.allclose(log_p, q2.float()) and float(log_z) == 0.0
    with pytest.raises(ValueError, match="single"):
        single(2)([q1, q2])


def test_k_bits_sums_token_ratios_and_takes_the_worst_model():
    # two sequences of two tokens; p's token probabilities and the two safe models'
    p = logs([0.5, 0.5], [0.25, 1.0])
    q1 = logs([0.25, 0.5], [0.25, 0.5])
    q2 = logs([0.5, 0.125], [0.5, 1.0])
    k = sequence_k_bits(p, [q1, q2])
    # seq 0: vs q1 log2(2) + log2(1) = 1; vs q2 0 + log2(4) = 2 -> 2.  seq 1: vs q1 0 + 1 = 1; vs q2 -1 + 0 -> 1
    assert torch.allclose(k, torch.tensor([2.0, 1.0]), atol=1e-6)
    masked = sequence_k_bits(p, [q1, q2], mask=torch.tensor([[True, False], [True, True]]))
    assert torch.allclose(masked, torch.tensor([1.0, 1.0]), atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        sequence_k_bits(p, [q1[:, :1], q2[:, :1]])
