"""The summaries and the verdict rules on hand-made runs and curves with known answers."""

import pandas as pd
import pytest

from assets.sgd_noise import analysis
from assets.sgd_noise import findings as science


def _runs(rows):
    base = {"task": "t", "cut_step": -1, "cut_lr_factor": 1.0, "cut_batch_factor": 1, "parent_run": "", "steps": 30}
    return pd.DataFrame([{**base, **r} for r in rows])


def _curves(losses):
    return pd.DataFrame([{"run_key": k, "checkpoint": i, "step": 10 * i, "examples": 10 * i, "eval_loss": v}
                         for k, values in losses.items() for i, v in enumerate(values)])


RUNS = _runs([
    {"run_key": "big_s0", "regime": "online", "batch_size": 16, "learning_rate": 0.1, "seed": 0},
    {"run_key": "big_s1", "regime": "online", "batch_size": 16, "learning_rate": 0.1, "seed": 1},
    {"run_key": "small_s0", "regime": "online", "batch_size": 4, "learning_rate": 0.1, "seed": 0},
    {"run_key": "fast_s0", "regime": "online", "batch_size": 16, "learning_rate": 0.4, "seed": 0},
    {"run_key": "cut_s0", "regime": "online", "batch_size": 4, "learning_rate": 0.1, "seed": 0, "cut_step": 10,
     "cut_lr_factor": 0.25, "parent_run": "small_s0"},
])
CURVES = _curves({"big_s0": [2.0, 1.5, 1.2, 1.0], "big_s1": [2.0, 1.6, 1.3, 1.1], "small_s0": [2.0, 1.7, 1.6, 1.6],
                  "fast_s0": [2.0, 1.2, 1.1, 1.2], "cut_s0": [2.0, 1.7, 1.4, 1.3]})


def test_lowest_noise_and_pairs():
    golden = analysis.lowest_noise(RUNS)
    assert sorted(golden["run_key"]) == ["big_s0", "big_s1"]
    pairs = analysis.distance_pairs(RUNS)
    assert ("seed", "big_s0", "big_s1") in pairs
    assert ("noise_same_seed", "small_s0", "big_s0") in pairs and ("noise_cross_seed", "small_s0", "big_s1") in pairs
    assert not any("cut_s0" in p for p in pairs)  # branches are not compared


def test_equal_step_comparison_and_the_never_worse_rule():
    table = analysis.equal_step_comparison(CURVES, RUNS)
    batch = table[table["knob"] == "batch_size"]
    # seed-mean of the big runs (1.55, 1.25, 1.05) vs the small run (1.7, 1.6, 1.6): never worse
    assert len(batch) == 3 and batch["less_noise_not_worse"].all()
    assert batch["quiet_loss"].tolist() == pytest.approx([1.55, 1.25, 1.05])
    lr = table[table["knob"] == "learning_rate"]  # lr 0.1 (big_s0 only) vs 0.4: worse at 10 and 20, better at 30
    assert lr["less_noise_not_worse"].tolist() == [False, False, True]
    found = science.never_worse_finding(table.assign(task="t"), "t", "scale")
    assert found.ours == 1.0 and found.verdict == "reproduced"
    assert found.reference is None and found.source == "none"  # the paper states no number: a stated bar


def test_noise_reduction_gain():
    table = analysis.noise_reduction(CURVES, RUNS)
    row = table.iloc[0]
    assert (row["soon_step"], row["end_step"]) == (20, 30)
    assert row["gain_soon"] == pytest.approx(0.2) and row["gain_end"] == pytest.approx(0.3)
    assert row["loss_at_cut"] == pytest.approx(1.7)
    assert science.noise_reduction_finding(table, "t", "s").verdict == "reproduced"
    lost_later = table.assign(gain_end=-0.1)  # helped at once, gone by the end: at most partially
    assert science.noise_reduction_finding(lost_later, "t", "s").verdict == "partially reproduced"
    hurt = table.assign(gain_soon=-0.1)
    assert science.noise_reduction_finding(hurt, "t", "s").verdict == "not reproduced"


def test_implicit_bias_and_its_verdicts():
    rows = []
    for regime in ("online", "offline"):
        rows += [{"run_key": f"{regime}_big", "regime": regime, "batch_size": 16, "learning_rate": 0.1, "seed": 0},
                 {"run_key": f"{regime}_small", "regime": regime, "batch_size": 4, "learning_rate": 0.1, "seed": 0}]
    runs = _runs(rows)
    curves = _curves({"online_big": [2.0, 1.0], "online_small": [2.0, 1.6],
                      "offline_big": [2.0, 1.4], "offline_small": [2.0, 1.3]})
    table = analysis.implicit_bias(runs, curves)
    adv = table[table["knob"] == "batch_size"].set_index("regime")["noise_advantage"]
    assert adv["online"] == pytest.approx(-0.6) and adv["offline"] == pytest.approx(0.1)
    assert science.implicit_bias_finding(table, "t", "s").verdict == "reproduced"
    flipped = table.assign(noise_advantage=-table["noise_advantage"])
    assert science.implicit_bias_finding(flipped, "t", "s").verdict == "not reproduced"
    both = table.assign(noise_advantage=table["noise_advantage"].abs())  # helps online too: not the claim
    assert science.implicit_bias_finding(both, "t", "s").verdict == "not reproduced"


def test_equal_loss_verdict_follows_the_ratio():
    def summary(ratio_online, ratio_offline):
        rows = []
        for regime, ratio in (("online", ratio_online), ("offline", ratio_offline)):
            rows += [{"task": "t", "regime": regime, "kind": "seed", "median_tv_equal_loss": 0.1,
                      "median_tv_equal_step": 0.1, "ratio_to_seed_baseline": 1.0},
                     {"task": "t", "regime": regime, "kind": "noise_cross_seed", "median_tv_equal_loss": 0.1 * ratio,
                      "median_tv_equal_step": 0.2, "ratio_to_seed_baseline": ratio}]
        return pd.DataFrame(rows)

    close = science.equal_loss_finding(summary(1.1, 2.0), "t", "s")
    assert close.verdict == "reproduced" and close.reference is None and close.source == "none"
    assert science.equal_loss_finding(summary(1.5, 2.0), "t", "s").verdict == "partially reproduced"
    assert science.equal_loss_finding(summary(2.5, 2.0), "t", "s").verdict == "not reproduced"
    assert science.equal_loss_finding(summary(1.5, 1.1), "t", "s").verdict == "not reproduced"  # no partial band
