"""The functional distance: TV on distributions with known answers, and the equal-loss matching."""

import numpy as np
import pandas as pd
import pytest

from assets.sgd_noise.distance import equal_loss_distances, first_crossing, loss_levels, tv_distance


def test_tv_distance_known_answers():
    assert tv_distance([0.3, 0.7], [0.5, 0.5]) == pytest.approx(0.2)
    assert tv_distance([1.0, 0.0, 0.0], [0.0, 0.5, 0.5]) == pytest.approx(1.0)  # disjoint supports
    p = np.array([[0.1, 0.2, 0.7], [0.25, 0.25, 0.5]])
    assert tv_distance(p, p) == 0.0
    # the mean over inputs: 0.2 on the first, 1.0 on the second
    assert tv_distance([[0.3, 0.7], [1.0, 0.0]], [[0.5, 0.5], [0.0, 1.0]]) == pytest.approx(0.6)
    # symmetric, and bounded by 1 on random distributions
    rng = np.random.default_rng(0)
    a, b = rng.dirichlet(np.ones(5), size=100), rng.dirichlet(np.ones(5), size=100)
    assert tv_distance(a, b) == pytest.approx(tv_distance(b, a)) and 0 < tv_distance(a, b) < 1


def test_tv_distance_rejects_non_distributions():
    with pytest.raises(ValueError, match="probability"):
        tv_distance([0.5, 0.6], [0.5, 0.5])
    with pytest.raises(ValueError, match="same shape"):
        tv_distance([0.5, 0.5], [1.0, 0.0, 0.0])


def test_first_crossing_interpolates_on_the_running_minimum():
    hit = first_crossing([3.0, 2.0, 1.0], [0, 10, 20], 1.5)
    assert (hit.index, hit.weight, hit.step) == (1, pytest.approx(0.5), pytest.approx(15.0))
    # a later rise does not count, and the first crossing is the one used
    hit = first_crossing([3.0, 1.0, 2.0, 0.5], [0, 10, 20, 30], 1.5)
    assert (hit.index, hit.weight) == (0, pytest.approx(0.75))
    assert first_crossing([3.0, 2.0], [0, 1], 1.0) is None
    assert first_crossing([1.0, 0.5], [0, 1], 2.0).step == 0.0


def test_a_rise_before_the_crossing_does_not_count():
    # offline: down to 1.8, up to 2.5 (overfitting), then down to 1.0. On the running minimum (3, 1.8, 1.8, 1.0)
    # the level 1.5 is 0.3 / 0.8 of the way from 1.8 to 1.0; on the raw losses it would be 1.0 / 1.5 from 2.5
    hit = first_crossing([3.0, 1.8, 2.5, 1.0], [0, 10, 20, 30], 1.5)
    assert (hit.index, hit.weight, hit.step) == (2, pytest.approx(0.375), pytest.approx(23.75))
    # the loss levels end at the highest of the runs' best losses, not of their final (risen) losses
    curves = _curves({"a": [2.0, 1.0, 0.6, 0.9], "b": [2.0, 1.4, 0.8, 1.2]})
    assert loss_levels(curves, ["a", "b"], 3, start_fraction=0.0).tolist() == pytest.approx([2.0, 1.4, 0.8])


def _curves(losses_by_run):
    rows = [{"run_key": k, "checkpoint": i, "step": 10 * i, "eval_loss": loss}
            for k, losses in losses_by_run.items() for i, loss in enumerate(losses)]
    return pd.DataFrame(rows)


def test_runs_on_one_path_are_at_distance_zero_at_equal_loss_but_not_at_equal_steps():
    # Both runs' predictions are the same function of their loss (one "golden path"); b is slower.
    losses = {"fast": [2.0, 1.0, 0.5, 0.25], "slow": [2.0, 1.6, 1.2, 0.8]}
    curves = _curves(losses)

    def predict(key, i):
        p = losses[key][i] / 4
        return np.array([[p, 1 - p]])

    levels = loss_levels(curves, ["fast", "slow"], 4, start_fraction=0.2)
    assert levels[0] < 2.0 and levels[-1] == pytest.approx(0.8)  # every run reaches every level
    table = equal_loss_distances(curves, [("noise", "fast", "slow")], predict, levels)
    assert len(table) == 4
    np.testing.assert_allclose(table["tv_equal_loss"], 0.0, atol=1e-12)
    assert (table["tv_equal_step"].iloc[1:] > 0.01).all()
    assert (table["step_b"] >= table["step_a"]).all()
