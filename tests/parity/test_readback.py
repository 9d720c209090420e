"""The batched trainer reads the device's convergence state back only every few steps (off the CPU); a
candidate found inside a stretch of steps rolls the stretch back and reruns it, so every recorded number is
the same as reading back after every step."""

import pandas as pd
import pytest
import torch

import assets.parity.trainer as trainer
from assets.lm.threads import torch_threads
from assets.parity.architectures import Network
from assets.parity.trainer import TrainSpec, train_batched

QUICK = dict(eval_size=256, curve_samples=64, gap_samples=32)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def run(net, spec, seeds, readback_steps):
    logs = []
    result = train_batched(net, spec, seeds, readback_steps=readback_steps, on_log=lambda s, d: logs.append((s, d)))
    return result, logs


def assert_same(a, b):
    (ra, logs_a), (rb, logs_b) = a, b
    pd.testing.assert_frame_equal(ra.runs, rb.runs, check_exact=True)
    pd.testing.assert_frame_equal(ra.curves, rb.curves, check_exact=True)
    assert ra.steps == rb.steps and logs_a == logs_b
    for name in ra.params:
        assert torch.equal(ra.params[name], rb.params[name]), name


def test_online_runs_read_back_every_16_steps_record_what_every_step_would(monkeypatch):
    drawn = []  # every online batch drawn, reruns included
    draw = trainer.rademacher
    monkeypatch.setattr(trainer, "rademacher", lambda *a, **k: drawn.append(a[1]) or draw(*a, **k))
    net, seeds = Network("mlp", n=10, k=3, width=16), [4, 5, 6]
    spec = TrainSpec(max_steps=4000, log_every=1000, **QUICK)  # long stretches between logged steps
    every_step = run(net, spec, seeds, 1)
    assert len(drawn) == every_step[0].steps  # one read per step: nothing is ever rerun
    drawn.clear()
    stretches = run(net, spec, seeds, 16)
    assert_same(every_step, stretches)
    assert every_step[0].runs["converged"].all() and every_step[0].steps < 4000  # stopped early, as before
    assert len(drawn) > stretches[0].steps  # some stretches were rolled back and rerun


@pytest.mark.parametrize("stop", [True, False])
def test_finite_sample_runs_do_not_depend_on_the_read_back_interval(stop):
    net, seeds = Network("mlp", n=8, k=2, width=32), [0, 1, 2]
    spec = TrainSpec(max_steps=600, train_set_size=128, eval_every=25, weight_decay=0.01, log_every=200,
                     stop_when_converged=stop, **QUICK)
    assert_same(run(net, spec, seeds, 1), run(net, spec, seeds, 50))


def test_the_read_back_interval_must_be_positive():
    with pytest.raises(ValueError, match="readback_steps"):
        train_batched(Network("mlp", n=6, k=2, width=4), TrainSpec(max_steps=5, **QUICK), [0], readback_steps=0)
