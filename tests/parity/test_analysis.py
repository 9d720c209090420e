"""From runs to the paper's quantities: censoring-aware medians, the scaling fit, hidden progress, findings."""

import math

import numpy as np
import pandas as pd
import pytest

from assets.parity import analysis, findings


def _runs(rows):
    base = dict(sweep="scaling", arch="mlp", width=100, batch_size=32, learning_rate=0.1, loss="hinge",
                init="uniform", weight_decay=0.0, train_set_size=None, group_seconds=1.0, steps_trained=1000)
    table = pd.DataFrame([{**base, **r} for r in rows])
    table["converged"] = table["t_c"].notna()
    table["censored"] = ~table["converged"]
    table["train_set_size"] = pd.array(table["train_set_size"], dtype="Int64")
    return table


def test_censored_runs_count_as_slower_than_any_converged_run():
    t_c = np.array([10.0, 20.0, np.nan, np.nan])
    censored = np.isnan(t_c)
    assert math.isnan(analysis.censored_quantile(t_c, censored, 0.5))  # half censored: median unknown
    assert analysis.censored_quantile(t_c, censored, 0.25) == pytest.approx(17.5)
    t_c = np.array([10.0, 20.0, 30.0, np.nan, np.nan])
    assert analysis.censored_quantile(t_c, np.isnan(t_c), 0.5) == 30.0  # not the median of the converged (20)
    assert analysis.censored_quantile(np.array([4.0, 8.0]), np.array([False, False]), 0.5) == 6.0


def test_scaling_fit_recovers_a_known_power_law():
    rows = []
    for k, c, p in [(2, 3.0, 1.0), (3, 2.0, 2.5)]:
        for n in (10, 20, 40, 80):
            for seed, wobble in enumerate((0.9, 1.0, 1.1)):
                rows.append(dict(n=n, k=k, seed=seed, t_c=c * n**p * wobble, leave_chance_step=1.0))
    rows.append(dict(n=160, k=3, seed=0, t_c=None, leave_chance_step=1.0))  # one lone censored n: no median
    summary = analysis.convergence_summary(_runs(rows))
    fit = analysis.scaling_fit(summary).set_index("k")
    assert fit.loc[2, "exponent"] == pytest.approx(1.0, abs=1e-9) and fit.loc[2, "prefactor"] == pytest.approx(3.0)
    assert fit.loc[3, "exponent"] == pytest.approx(2.5, abs=1e-9) and fit.loc[3, "r_squared"] == pytest.approx(1.0)
    assert fit.loc[3, "alpha"] == pytest.approx(2.5 / 3) and fit.loc[3, "points"] == 4
    found = findings.scaling_findings(fit.reset_index(), "test")
    ratio = found[-1]
    assert ratio["ours"] == pytest.approx(2.5) and ratio["paper"] == 1.5 and ratio["verdict"] == "reproduced"
    flat = fit.reset_index().assign(exponent=[1.0, 0.5])
    assert findings.scaling_findings(flat, "test")[-1]["verdict"] == "not reproduced"


def test_transition_share_and_its_verdict():
    rows = [dict(n=n, k=3, seed=s, t_c=1000.0, leave_chance_step=lc) for n, lc in [(10, 500), (20, 700), (30, 900)]
            for s in range(3)]
    runs = _runs(rows)
    assert analysis.transition_share(runs).tolist() == pytest.approx([0.5] * 3 + [0.3] * 3 + [0.1] * 3)
    found = findings.transition_finding(runs, analysis.convergence_summary(runs), "test")
    assert found["ours"] == pytest.approx(0.1) and found["verdict"] == "reproduced" and "shrinks" in found["note"]


def _curve(key, measure_values, accuracy_values):
    steps = np.arange(len(measure_values)) * 10
    return pd.DataFrame({"run_key": key, "step": steps, "eval_accuracy": accuracy_values, "m": measure_values})


def test_hidden_progress_sees_a_rise_before_accuracy_moves_and_not_a_flat_one():
    acc = [0.5] * 8 + [0.7, 0.9, 1.0]
    rising = _curve("a", [1, 1.1, 1.2, 1.4, 1.6, 1.9, 2.3, 2.8, 4, 5, 6], acc)
    flat = _curve("b", [1, 1.2, 0.9, 1.1, 0.95, 1.05, 1.0, 0.98, 4, 5, 6], acc)
    runs = _runs([dict(n=10, k=2, seed=0, t_c=100.0, leave_chance_step=70, run_key="a"),
                  dict(n=10, k=2, seed=1, t_c=100.0, leave_chance_step=70, run_key="b")])
    table = analysis.hidden_progress(pd.concat([rising, flat]), runs, ["m"]).set_index("run_key")
    assert table.loc["a", "t_move"] == 80 and table.loc["a", "p_value"] < 0.01
    assert table.loc["a", "rise"] == pytest.approx(2.8 / 1.1)  # window [8, 80): steps 10..70
    assert table.loc["a", "share_before_move"] == pytest.approx((2.8 - 1.1) / (6 - 1.1))
    assert table.loc["b", "p_value"] > 0.2
    verdict = findings.hidden_progress_finding(table.reset_index(), "test", "mlp")
    assert verdict["ours"] == 0.5 and verdict["verdict"] == "reproduced"
    with pytest.raises(ValueError, match="not columns"):
        analysis.hidden_progress(rising, runs, ["nope"])
