"""The independent byte n-gram judge (a proper distribution that prefers corpus-like text) and the verdict
rules of the findings."""

import math

import numpy as np

from assets.watermark import findings as f
from assets.watermark.ngram import ByteNGram
from assets.watermark.study import calibrated_threshold, empirical_pvalue

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


def test_verdict_rules():
    assert f.detection_verdict(0.95) == "reproduced"
    assert f.detection_verdict(0.6) == "partially reproduced"
    assert f.detection_verdict(0.2) == "not reproduced"
    assert f.quality_verdict(1.05) == "reproduced"
    assert f.quality_verdict(1.3, 0.95) == "partially reproduced"  # the interval still reaches a small loss
    assert f.quality_verdict(1.3, 1.2) == "not reproduced"
    assert f.quality_verdict(1.3) == "not reproduced"  # no interval: the point estimate decides
    assert f.attack_verdict(0.9, 1.02, 20) == "reproduced"
    assert f.attack_verdict(0.9, 1.4, 20, 1.2) == "partially reproduced"
    assert f.attack_verdict(0.3, 1.0, 20) == "partially reproduced"
    assert f.attack_verdict(0.3, 1.4, 20, 1.2) == "not reproduced"
    assert f.attack_verdict(0.0, 1.0, 20) == "not reproduced"
    assert f.attack_verdict(float("nan"), 1.0, 0) == "not comparable"
