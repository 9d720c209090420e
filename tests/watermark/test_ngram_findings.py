"""The independent byte n-gram judge (a proper distribution that prefers corpus-like text), and the findings
of a hand-made attack: success after the fixed budget and at its checkpoints, quality as a condition."""

import json
import math

import numpy as np
import pandas as pd

from assets.findings import check_findings_frame, findings_frame
from assets.watermark import findings as f
from assets.watermark.attack import success_at
from assets.watermark.ngram import ByteNGram
from assets.watermark.study import calibrated_threshold, empirical_pvalue, summarise

CORPUS = ["def add(a, b):\n    return a + b\n", "def sub(a, b):\n    return a - b\n",
          "for i in range(10):\n    print(i)\n"] * 20


def test_judge_is_a_distribution_over_bytes():
    judge = ByteNGram(4).fit(CORPUS)
    for context in (b"def ad", b"    ret", b"zzz", b"\xff\xfe", b""):
        total = sum(2.0 ** judge.logprobs_of_bytes(bytes([b]), context)[0] for b in range(256))
        assert math.isclose(total, 1.0, rel_tol=1e-9), (context, total)


def test_judge_prefers_corpus_like_text():
    judge = ByteNGram(5).fit(CORPUS)
    good, bad = judge.bits_per_byte(["def add(a, b):\n    return a + b\n", "q8#Zk!x@w%Lp^3&tY*"])
    assert good < 2.0 and bad > 8.0  # unseen bytes cost more than the uniform 8 bits


def test_threshold_and_empirical_p_value():
    null = np.arange(1, 201, dtype=float)  # 1..200
    t = calibrated_threshold(null, 0.01)
    assert t == 199.0 and np.mean(null > t) == 0.005
    p = empirical_pvalue(np.array([250.0, 200.0, 0.0]), null)
    assert np.allclose(p, [1 / 201, 2 / 201, 1.0])


def _attack(success: dict[str, list[bool | None]], bits_after: dict[str, list[float]], steps: int = 8):
    """A hand-made attack: per scheme, which texts the walk frees (True: lets go at step 2 and stays free; False:
    stays detected; None: never detected, before the walk or after) and the judge's bits/byte after (1.0
    before)."""
    results, walk, row = [], [], 0
    for name, freed in success.items():
        for i, ok in enumerate(freed):
            before = ok is not None
            results.append({"scheme": name, "text_id": i, "perturbation": "resample", "protocol": "fixed budget",
                            "detected_before": before, "detected_after": ok is False, "attack_success": ok is True,
                            "quality_kept": True, "steps": steps, "accepted_steps": steps // 2,
                            "tokens_changed": 0.3, "oracle_logprob_before": -2.0, "oracle_logprob_after": -1.9,
                            "judge_bits_per_byte_before": 1.0, "judge_bits_per_byte_after": bits_after[name][i],
                            "first_undetected_step": 2.0 if ok else np.nan})
            walk += [{"scheme": name, "row": row, "step": t, "detected": before and not (ok and t >= 2)}
                     for t in range(steps + 1)]
            row += 1
    return pd.DataFrame(results), pd.DataFrame(walk)


def _calibration(names):
    return pd.DataFrame([{"scheme": n, "kind": "kgw", "gamma": 0.25, "delta": 2.0, "key_length": 0, "edit_gamma": 0.4,
                          "threshold": 2.0, "permutation_runs": 9, "n_calibration": 100, "n_held_out": 100,
                          "held_out_false_positives": 1, "held_out_false_positive_rate": 0.01,
                          "p_below_fpr_rate": 1.0, "z_threshold_rate": 1.0, "null_p_mean": 0.5,
                          "null_p_ks_pvalue": 0.5, "n_null": 200, "vocab_size": 120} for n in names])


def _findings(success, bits_after, earlier_budget=None, steps=8):
    results, walk = _attack(success, bits_after, steps)
    calibration = _calibration(list(success))
    summary = summarise(results, calibration, 1.0, 1.0, walk, steps, earlier_budget)
    frame = findings_frame(f.build_findings(summary, calibration, "unit"))
    assert check_findings_frame(frame) == []
    return summary.set_index("scheme"), frame.set_index("metric")


def test_findings_judge_success_after_the_fixed_budget_with_quality_as_a_condition():
    n = 8
    summary, by = _findings({"good": [True] * 6 + [False] * 2, "costly": [True] * n, "weak": [True] + [False] * 7},
                            {"good": [1.0] * n, "costly": [1.5] * n, "weak": [1.0] * n})
    assert summary.loc["good", "attack_success_rate"] == 0.75
    assert summary.loc["good", "success_rate_half"] == 0.75 and summary.loc["good", "median_steps_to_success"] == 2
    assert by.loc["attack_success_good", "verdict"] == "reproduced"
    # every text freed, but a clear quality loss (x2^0.5, the interval far above 1.1): the claim fails
    assert by.loc["quality_ratio_costly", "verdict"] == "not reproduced"
    assert by.loc["attack_success_costly", "verdict"] == "not reproduced"
    assert by.loc["attack_success_weak", "verdict"] == "not reproduced"  # 1 of 8 freed
    assert by.loc["attack_success_worst", "ours"] == 1 / 8
    assert by.loc["detection_rate_before_worst", "verdict"] == "reproduced"
    # no earlier budget on this profile
    assert by.loc["attack_success_good", "post_hoc"] == f"{f.INTERVAL_RULE}; {f.UPPER_END_RULE}"
    assert {metric for metric, _ in f.CHECKS.values()} <= set(by.index)


def test_an_inconclusive_quality_loss_is_partial_and_the_lengthened_walk_is_post_hoc():
    bits = [1.0, 1.0, 1.0, 1.6, 1.0, 1.0, 1.0, 1.0]  # one text much worse: x1.13 with a wide interval
    summary, by = _findings({"kgw": [True] * 8}, {"kgw": [b + 0.1 for b in bits]}, earlier_budget=40, steps=60)
    assert summary.loc["kgw", "judge_perplexity_ratio"] > 1.1 > summary.loc["kgw", "judge_perplexity_ratio_low"]
    assert by.loc["quality_ratio_kgw", "verdict"] == "partially reproduced"
    assert by.loc["attack_success_kgw", "verdict"] == "partially reproduced"
    assert summary.loc["kgw", "earlier_budget_steps"] == 40 and summary.loc["kgw", "success_rate_earlier_budget"] == 1
    assert by.loc["attack_success_kgw", "post_hoc"].startswith("walk lengthened from 40 to 60 steps")
    assert "success after 40 steps: 100%" in by.loc["attack_success_kgw", "post_hoc"]


def _quality(ratio: float, low: float, high: float) -> str:
    from assets.findings import Finding, Rule
    return Finding("watermark", "q", 1.0, rule=Rule.at_least(f.MOST, partial=f.SOME),
                   conditions=f.quality_conditions(ratio, low, high)).verdict


def test_quality_is_small_only_when_the_whole_interval_is_within_the_bar():
    assert _quality(1.05, 0.95, 1.09) == "reproduced"
    assert _quality(1.07, 0.77, 1.49) == "partially reproduced"  # point within the bar, interval far past it
    assert _quality(1.19, 0.94, 1.51) == "partially reproduced"  # point above, interval still reaches the bar
    assert _quality(1.28, 1.06, 1.55) == "not reproduced"  # above the moderate bar (the docstring says so)
    assert _quality(1.20, 1.12, 1.30) == "not reproduced"  # a clear loss: the lower end above the bar
    assert _quality(1.05, math.nan, math.nan) == "reproduced"  # no interval: the point estimate decides


def test_worst_post_hoc_says_the_lengthened_walk_once_with_every_schemes_rate_and_names_the_oracle():
    bits = [1.0] * 8
    _, by = _findings({"kgw": [True] * 8, "exp": [True] * 4 + [False] * 4}, {"kgw": bits, "exp": bits},
                      earlier_budget=40, steps=60)
    post = by.loc["attack_success_worst", "post_hoc"]
    assert post.count("walk lengthened from 40 to 60 steps") == 1
    assert "success after 40 steps: kgw 100%, exp 50%" in post and f.UPPER_END_RULE in post
    for metric in ("attack_success_kgw", "attack_success_worst"):
        assert f.RESAMPLE_ORACLE in by.loc[metric, "note"]
    assert f.RESAMPLE_ORACLE not in by.loc["quality_ratio_kgw", "note"]


def test_success_counts_only_texts_detected_before_the_walk_and_quality_has_a_95_interval():
    """Four of six texts detected before the walk (three freed at step 2, one kept), two never detected: success
    is 3 of the 4 detected, at every checkpoint from step 2 on; quality over all six texts, by hand."""
    marks = [True, True, True, False, None, None]
    bits = [1.1, 1.3, 1.0, 1.2, 1.0, 1.0]  # after the walk, 1.0 before: differences 0.1, 0.3, 0, 0.2, 0, 0
    summary, by = _findings({"kgw": marks}, {"kgw": bits})
    row = summary.loc["kgw"]
    assert row["n_detected_before"] == 4 and row["detection_rate_before"] == 4 / 6
    assert row["attack_success_rate"] == 3 / 4 and row["success_rate_half"] == 3 / 4
    assert row["success_rate_quarter"] == 3 / 4 and row["median_steps_to_success"] == 2
    results, walk = _attack({"kgw": marks}, {"kgw": bits})
    freed = success_at(walk, 6, 8, [0, 2, 8])
    assert freed[2].tolist() == freed[8].tolist() == [True, True, True, False, False, False]  # undetected: not freed
    assert not freed[0].any()
    # mean difference 0.1 bit/byte; squared deviations 0, .04, .01, .01, .01, .01 sum to 0.08 (sample variance
    # 0.016); the half-width of the 95% normal interval is 1.96 * sqrt(0.016 / 6) = 0.10121
    half = 1.96 * math.sqrt(0.08 / 5 / 6)
    assert math.isclose(half, 0.101214, rel_tol=1e-5)
    assert math.isclose(row["judge_perplexity_ratio"], 2 ** 0.1, rel_tol=1e-9)  # x1.0718
    assert math.isclose(row["judge_perplexity_ratio_low"], 2 ** (0.1 - half), rel_tol=1e-9)  # x0.99916
    assert math.isclose(row["judge_perplexity_ratio_high"], 2 ** (0.1 + half), rel_tol=1e-9)  # x1.14967
    assert math.isclose(row["judge_perplexity_ratio_low"], 0.99916, rel_tol=1e-5)
    assert math.isclose(row["judge_perplexity_ratio_high"], 1.14967, rel_tol=1e-5)
    # the point estimate is within x1.10 but the interval's upper end is not: partially, not reproduced
    assert by.loc["quality_ratio_kgw", "verdict"] == "partially reproduced"
    assert by.loc["attack_success_kgw", "verdict"] == "partially reproduced"


def test_the_worst_attack_finding_takes_the_largest_quality_loss_of_any_scheme():
    """The scheme with the lowest success ("hard", 5 of 8 freed) loses no quality; another ("costly") frees
    every text but one of its texts loses 3 bits/byte: judge perplexity x2^(3/8) = x1.30, past the moderate bar,
    with a wide interval (x0.78-x2.16). The worst finding judges the lowest success with the largest quality
    loss of any scheme (point estimate and interval ends, each the worst), so it fails."""
    summary, by = _findings({"hard": [True] * 5 + [False] * 3, "costly": [True] * 8},
                            {"hard": [1.0] * 8, "costly": [1.0] * 7 + [4.0]})
    costly = summary.loc["costly"]
    assert math.isclose(costly["judge_perplexity_ratio"], 2 ** (3 / 8)) and 2 ** (3 / 8) > 1 + f.MODERATE_QUALITY_LOSS
    assert costly["judge_perplexity_ratio_low"] < 0.8 and costly["judge_perplexity_ratio_high"] > 2.1
    assert summary.loc["hard", ["judge_perplexity_ratio_low", "judge_perplexity_ratio_high"]].tolist() == [1.0, 1.0]
    assert by.loc["attack_success_hard", "verdict"] == "reproduced"  # no quality loss, 62% freed
    assert by.loc["attack_success_costly", "verdict"] == "not reproduced"
    worst = by.loc["attack_success_worst"]
    assert worst["ours"] == 5 / 8
    conditions = {c["name"]: c["value"] for c in json.loads(worst["conditions"])}
    assert conditions == {"judge_perplexity_ratio": costly["judge_perplexity_ratio"],  # the largest of each
                          "judge_perplexity_ratio_low95": 1.0,  # hard's lower end is the larger
                          "judge_perplexity_ratio_high95": costly["judge_perplexity_ratio_high"]}
    assert worst["verdict"] == "not reproduced"  # the point estimate past x1.25 (with hard's x1.0: partially)
