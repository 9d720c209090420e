"""The batched trainer: it learns, it agrees with the one-model reference, its gradients are autograd's."""

import math

import numpy as np
import pytest
import torch

from assets.lm.threads import torch_threads
from assets.parity.architectures import Network, backward, forward, initial_params, loss_terms
from assets.parity.data import all_inputs, parity_labels, rademacher, secret_subsets
from assets.parity.reference import build_model, train_reference
from assets.parity.trainer import TrainSpec, train_batched

QUICK = dict(eval_size=256, curve_samples=128, gap_samples=64, log_every=50)


@pytest.fixture(autouse=True)
def one_thread():
    """Small ops on one thread, as the assets run them (two threads on two busy cores spin against each other)."""
    with torch_threads(1):
        yield


@pytest.mark.parametrize("arch,width", [("mlp", 32), ("polynet", 1)])
def test_a_tiny_run_converges_to_the_parity(arch, width):
    net = Network(arch, n=8, k=2, width=width)
    result = train_batched(net, TrainSpec(max_steps=2000, **QUICK), [0, 1, 2])
    runs = result.runs
    assert runs["converged"].all() and not runs["censored"].any()
    assert (runs["t_c"] >= 1).all() and (runs["t_c"] <= result.steps).all()
    assert (runs["leave_chance_step"] < runs["t_c"]).all()
    # t_c was declared on 256 samples; the converged weights get the parity right on the whole cube
    cube = all_inputs(8, dtype=torch.float32)
    f, _ = forward(net, result.params, cube)
    y = parity_labels(cube, result.subsets)
    accuracy_at_end = (f * y > 0).float().mean(dim=1)
    assert float(accuracy_at_end.min()) >= 0.99
    curves = result.curves
    assert set(curves["step"]) >= {0, result.steps}
    first = curves[curves["step"] == 0]
    assert (first["eval_accuracy"] < 0.7).all() and (first["linf_change"] == 0).all()


def test_a_run_that_cannot_finish_is_censored():
    net = Network("mlp", n=16, k=3, width=16)
    runs = train_batched(net, TrainSpec(max_steps=20, **QUICK), [0, 1]).runs
    assert runs["censored"].all() and runs["t_c"].isna().all() and (runs["steps_trained"] == 20).all()


CASES = [
    ("mlp", 3, 12, 20, "hinge", None, 0.0),
    ("polynet", 3, 12, 1, "hinge", None, 0.0),
    ("mlp", 2, 10, 16, "cross_entropy", 64, 0.01),
    ("mlp", 2, 10, 16, "square", None, 0.0),
]


@pytest.mark.parametrize("arch,k,n,width,loss,train_set_size,weight_decay", CASES)
def test_batched_and_one_model_trainers_agree(arch, k, n, width, loss, train_set_size, weight_decay):
    net = Network(arch, n, k, width)
    spec = TrainSpec(max_steps=150, loss=loss, train_set_size=train_set_size, weight_decay=weight_decay,
                     eval_every=10, stop_when_converged=False, **QUICK)
    batched = train_batched(net, spec, [0, 1, 2], dtype=torch.float64)
    for i, seed in enumerate([0, 1, 2]):
        alone = train_reference(net, spec, seed, dtype=torch.float64)
        for name, value in alone.params.items():
            torch.testing.assert_close(batched.params[name][i], value, atol=1e-10, rtol=1e-10)
        moved = max(float((batched.params[nm][i] - batched.initial[nm][i]).abs().max()) for nm in alone.params)
        assert moved > 1e-3  # the comparison is between trained weights, not two copies of the init
        t_c = batched.runs["t_c"].iloc[i]
        assert (alone.t_c is None and math.isnan(t_c)) or alone.t_c == t_c


def test_a_seed_trains_the_same_whatever_its_batch_companions():
    net = Network("mlp", 10, 2, 16)
    spec = TrainSpec(max_steps=60, stop_when_converged=False, **QUICK)
    together = train_batched(net, spec, [4, 7, 9])
    alone = train_batched(net, spec, [7])
    for name in together.params:
        torch.testing.assert_close(together.params[name][1], alone.params[name][0])


@pytest.mark.parametrize("arch,width", [("mlp", 12), ("polynet", 1)])
@pytest.mark.parametrize("loss", ["hinge", "square", "cross_entropy"])
def test_hand_written_gradients_are_autograds(arch, width, loss):
    net = Network(arch, 9, 3, width)
    seeds = [0, 1]
    params = {k: v.requires_grad_() for k, v in initial_params(net, seeds, dtype=torch.float64).items()}
    x = rademacher(seeds, 1, 16, 9, dtype=torch.float64)
    y = parity_labels(x, secret_subsets(seeds, 9, 3))
    f, cache = forward(net, params, x)
    values, dloss = loss_terms(loss, f, y)
    values.mean(dim=1).sum().backward()
    by_hand = backward(net, params, cache, x, dloss.detach() / x.shape[1])
    for name, p in params.items():
        torch.testing.assert_close(by_hand[name], p.grad, atol=1e-12, rtol=1e-10)


def test_reference_model_starts_from_the_batched_init():
    net = Network("mlp", 6, 2, 5)
    model = build_model(net, 3)
    params = initial_params(net, [2, 3], dtype=torch.float64)
    x = all_inputs(6)
    f, _ = forward(net, params, x)
    torch.testing.assert_close(model(x).detach(), f[1])


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="loss='mse'"):
        TrainSpec(loss="mse")
    with pytest.raises(ValueError, match="arch='cnn'"):
        Network("cnn", 10, 2)
    with pytest.raises(ValueError, match="seeds"):
        train_batched(Network("mlp", 6, 2, 4), TrainSpec(max_steps=5, **QUICK), [1, 1])
    assert np.all(secret_subsets([0], 6, 2) < 6)
