"""Probes separate a planted signal and stay at chance without one."""

import numpy as np
import pandas as pd
import pytest

from assets.uncertainty.probes import evaluate, fit_probe, probe_matrix, roc_auc


def planted(n: int, d: int, seed: int, signal: bool = True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 3] - 0.5 * x[:, 7] > 0).astype(int) if signal else rng.integers(0, 2, n)
    return x, y


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_probe_separates_a_planted_direction(kind):
    x, y = planted(600, 24, seed=0)
    xt, yt = planted(400, 24, seed=1)
    auc, scores, _ = evaluate(kind, x, y, xt, yt)
    assert auc > 0.95
    assert ((scores > 0.5) == yt).mean() > 0.85


def test_probe_is_at_chance_without_signal_and_mlp_finds_a_nonlinear_one():
    x, y = planted(600, 24, seed=0, signal=False)
    xt, yt = planted(400, 24, seed=1, signal=False)
    assert abs(evaluate("linear", x, y, xt, yt)[0] - 0.5) < 0.1
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1500, 6)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(int)  # XOR of signs: no linear probe can read it
    lin = evaluate("linear", x[:1000], y[:1000], x[1000:], y[1000:])[0]
    mlp = evaluate("mlp", x[:1000], y[:1000], x[1000:], y[1000:])[0]
    assert lin < 0.65 and mlp > 0.85


def test_probe_matrix_on_list_columns_and_entropy_baseline():
    x, y = planted(300, 8, seed=3)
    entropy = np.where(y == 1, 1.0, 2.0) + np.random.default_rng(4).normal(0, 0.6, len(y))
    frame = pd.DataFrame({"hidden_l0": list(x), "small_entropy": entropy, "label": y})
    rows = probe_matrix(frame.iloc[:200], frame.iloc[200:], "hidden_l0", ["linear"])
    base = probe_matrix(frame.iloc[:200], frame.iloc[200:], "small_entropy", ["linear", "mlp"])
    assert rows[0]["auc"] > 0.9 and [r["method"] for r in base] == ["entropy"]
    assert 0.7 < base[0]["auc"] < 0.95  # lower entropy = epistemic, learnt from the data


def test_auc_and_errors():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))
    with pytest.raises(ValueError, match="each class"):
        fit_probe("linear", np.zeros((5, 2)), np.array([1, 1, 1, 1, 0]))
    with pytest.raises(ValueError, match="probe kind"):
        fit_probe("forest", np.zeros((10, 2)), np.array([0, 1] * 5))
