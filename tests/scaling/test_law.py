"""The law and the allocation against the paper's published constants (Muennighoff et al. 2023)."""

import math

import numpy as np
import pytest

from assets.scaling.allocation import compute_optimal_allocation, effective_data_table, epochs_for_fraction
from assets.scaling.law import (
    PAPER_C4,
    ScalingLaw,
    chinchilla_optimum,
    effective_data,
    effective_parameters,
    optimal_parameters_for_data,
    predict_log_loss,
    predict_loss,
)


def test_paper_constants_are_the_published_log_form():
    assert (PAPER_C4.a, PAPER_C4.b, PAPER_C4.e, PAPER_C4.alpha, PAPER_C4.beta, PAPER_C4.rd_star, PAPER_C4.rn_star) == (
        6.255414, 7.3049974, 0.6254804, 0.3526596, 0.3526596, 15.387756, 5.309743)


def test_loss_of_the_papers_example_run():
    # N = 6.34B parameters, D = 242B tokens, U_D = 25B unique tokens (~9.7 epochs)
    assert predict_loss(6.34e9, 242e9, 25e9, PAPER_C4) == pytest.approx(2.2256440889984477, rel=1e-12, abs=0)


def test_log_sum_exp_form_is_the_log_of_the_loss():
    n, d, u = np.array([1e7, 1e9, 6.34e9]), np.array([1e8, 5e10, 242e9]), np.array([1e8, 1e9, 25e9])
    np.testing.assert_allclose(np.exp(predict_log_loss(n, d, u, PAPER_C4)), predict_loss(n, d, u, PAPER_C4), rtol=1e-12)


def test_compute_optimal_allocation_for_1e22_flops_and_25b_unique_tokens():
    alloc = compute_optimal_allocation(1e22, 25e9, PAPER_C4)
    assert alloc["tokens"] == pytest.approx(2.37e11, rel=3e-3)
    assert alloc["epochs"] == pytest.approx(9.49, abs=0.01)
    assert alloc["parameters"] == pytest.approx(7.02e9, rel=3e-3)
    assert 6 * alloc["parameters"] * alloc["tokens"] == pytest.approx(1e22, rel=1e-9)
    # with a data cap, training Chinchilla's split costs loss; the constrained optimum is smaller and longer
    assert alloc["loss"] < alloc["chinchilla_loss_with_cap"]
    assert alloc["parameters"] < alloc["chinchilla_parameters"] and alloc["tokens"] > alloc["chinchilla_tokens"]


def test_allocation_without_a_binding_cap_is_chinchillas():
    n_opt, d_opt = chinchilla_optimum(1e21, PAPER_C4)
    alloc = compute_optimal_allocation(1e21, 1e15, PAPER_C4)  # far more unique tokens than the budget can use
    assert alloc["parameters"] == pytest.approx(float(n_opt), rel=1e-4)
    assert alloc["tokens"] == pytest.approx(float(d_opt), rel=1e-4)


def test_effective_data_limits():
    u = 1e9
    assert effective_data(u, u, 15.0) == pytest.approx(u)  # one epoch: nothing repeated
    assert effective_data(u, 5 * u, math.inf) == pytest.approx(5 * u)  # R_D* = inf: repeats as good as new
    assert effective_data(u, 5 * u, 0.0) == pytest.approx(u)  # R_D* = 0: repeats worth nothing
    assert effective_data(u, 1e6 * u, 15.0) == pytest.approx(16 * u, rel=1e-6)  # limit U_D (1 + R_D*)
    many = effective_data(u, u * np.array([2, 4, 16, 64]), 15.0)
    assert np.all(np.diff(many) > 0) and np.all(many < u * np.array([2, 4, 16, 64]))
    # U_D above D: the unique tokens actually seen are D
    assert effective_data(2e9, 1e9, 15.0) == pytest.approx(1e9)


def test_four_epochs_are_worth_about_3_7_unique_epochs_with_the_papers_r_d_star():
    table = effective_data_table({"paper": PAPER_C4.rd_star}, [1, 4, 16]).set_index("epochs")
    assert table.loc[4.0, "effective_data_multiple"] == pytest.approx(1 + 15.387756 * (1 - math.exp(-3 / 15.387756)))
    assert 3.7 < table.loc[4.0, "effective_data_multiple"] < 3.75
    assert table.loc[16.0, "last_epoch_worth"] < 0.45 and table.loc[1.0, "last_epoch_worth"] == 1.0
    assert 4 < epochs_for_fraction(PAPER_C4.rd_star, 0.9) < 6


def test_excess_parameters_decay_only_beyond_the_optimal_size_for_the_unique_data():
    n_opt = float(optimal_parameters_for_data(1e9, PAPER_C4))
    assert effective_parameters(0.5 * n_opt, 1e9, PAPER_C4) == pytest.approx(0.5 * n_opt)
    big = effective_parameters(100 * n_opt, 1e9, PAPER_C4)
    assert n_opt < big < (1 + PAPER_C4.rn_star) * n_opt
    # N_opt(U_D) is the model Chinchilla pairs with U_D
    n_c, d_c = chinchilla_optimum(3e21, PAPER_C4)
    assert float(optimal_parameters_for_data(d_c, PAPER_C4)) == pytest.approx(float(n_c), rel=1e-10)


def test_bad_inputs_name_the_field():
    with pytest.raises(ValueError, match="parameters"):
        predict_loss(-1.0, 1e9, 1e9, PAPER_C4)
    with pytest.raises(ValueError, match="unique_tokens"):
        predict_loss(1e9, 1e9, 0.0, PAPER_C4)
    with pytest.raises(ValueError, match="rd_star"):
        ScalingLaw(1, 1, 1, 0.3, 0.3, rd_star=-2.0)
    with pytest.raises(ValueError, match="compute"):
        compute_optimal_allocation(0.0, 1e9, PAPER_C4)
