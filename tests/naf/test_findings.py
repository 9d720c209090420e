"""The verdict rules on hand-made numbers: the factor, CP-k's rate, the perplexity cost and small k."""

import math

import pandas as pd
import pytest

from assets.naf import findings as f


def regurgitation(p_bits, delta_bits, cp_k_exact, p_rate=0.5, cp_k_rate=0.0):
    rows = []
    for i, (pb, db, ck) in enumerate(zip(p_bits, delta_bits, cp_k_exact, strict=True)):
        common = {"doc_id": f"d{i}", "duplicate_count": 16, "sampled_near_exact_rate": 0.0}
        rows += [{**common, "model": "p", "logprob_bits": pb, "p_exact": 2.0 ** pb, "sampled_exact_rate": p_rate},
                 {**common, "model": "cp_delta", "logprob_bits": db, "p_exact": 2.0 ** db, "sampled_exact_rate": 0.0},
                 {**common, "model": "cp_kl", "logprob_bits": db, "p_exact": 2.0 ** db, "sampled_exact_rate": 0.0},
                 {**common, "model": "cp_k", "logprob_bits": math.nan, "p_exact": ck, "sampled_exact_rate": cp_k_rate}]
    # a lower level, which the headline ignores
    rows.append({"doc_id": "low", "duplicate_count": 1, "model": "p", "logprob_bits": -40.0, "p_exact": 2.0 ** -40,
                 "sampled_exact_rate": 0.0, "sampled_near_exact_rate": 0.0})
    return pd.DataFrame(rows)


def test_factor_is_the_ratio_of_mean_exact_extraction_probabilities():
    numbers = f.regurgitation_numbers(regurgitation([-1.0, -3.0], [-11.0, -2000.0], [0.0, 0.0]))
    delta = numbers["cp_delta"]
    # means: p (0.5 + 0.125) / 2; CP-Δ 2^-11 / 2 (the other term underflows but is handled in log space)
    assert delta["factor"] == pytest.approx(0.625 * 2 ** 11)
    assert delta["p_visible"] and f.regurgitation_verdict(delta) == "reproduced"
    assert math.isfinite(delta["factor"])
    cpk = numbers["cp_k"]
    assert cpk["factor"] == math.inf and cpk["rate_far_less"] and f.cp_k_verdict(cpk) == "reproduced"


def test_verdicts_follow_the_thresholds():
    weak = f.regurgitation_numbers(regurgitation([-1.0], [-3.0], [0.3], cp_k_rate=0.3))
    assert weak["cp_delta"]["factor"] == pytest.approx(4.0)
    assert f.regurgitation_verdict(weak["cp_delta"]) == "partially reproduced"
    assert f.cp_k_verdict(weak["cp_k"]) == "not reproduced"
    none = f.regurgitation_numbers(regurgitation([-1.0], [-1.5], [0.3]))
    assert f.regurgitation_verdict(none["cp_delta"]) == "not reproduced"
    faint = f.regurgitation_numbers(regurgitation([-20.0], [-40.0], [0.0], p_rate=0.0))
    assert not faint["cp_delta"]["p_visible"]
    assert f.regurgitation_verdict(faint["cp_delta"]) == "partially reproduced"  # far less, but of almost nothing
    assert [f.perplexity_verdict(c) for c in (0.05, 0.2, 0.4)] == ["reproduced", "partially reproduced",
                                                                   "not reproduced"]


def test_k_verdict_needs_a_non_vacuous_bound():
    p = {"median_k_bits_top": 40.0}
    assert f.k_verdict({"p95_k_bits": 20.0, "information_bits": 45.0, "median_k_bits_top": 10.0}, p) == "reproduced"
    assert f.k_verdict({"p95_k_bits": 50.0, "information_bits": 45.0, "median_k_bits_top": 10.0}, p) == "partially reproduced"
    assert f.k_verdict({"p95_k_bits": 50.0, "information_bits": 45.0, "median_k_bits_top": 41.0}, p) == "not reproduced"
