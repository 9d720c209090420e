"""The paper's labelling and per-token-id class balancing on hand-made tables with known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from assets.uncertainty.labels import (
    ALEATORIC,
    EPISTEMIC,
    UNLABELLED,
    Thresholds,
    agreement,
    balance_by_token,
    class_counts,
    label_table,
    proxy_labels,
    quantile_thresholds,
    truth_labels,
)


def test_proxy_labels_follow_the_papers_rule():
    th = Thresholds(entropy_min=1.0, zero_entropy=0.2, entropy_delta=0.1)
    small = np.array([0.5, 1.5, 1.5, 1.5, 1.5, 2.0, 1.0])
    large = np.array([0.0, 0.1, 1.45, 1.65, 0.8, 2.09, 0.19])
    assert proxy_labels(small, large, th).tolist() == [
        UNLABELLED,  # small model sure enough: below the floor
        EPISTEMIC,  # large model confident
        ALEATORIC,  # large as unsure (|1.45 - 1.5| <= 0.1)
        UNLABELLED,  # large more unsure than small by 0.15
        UNLABELLED,  # in between: neither confident nor as unsure
        ALEATORIC,
        EPISTEMIC,  # entropy exactly at the floor counts (>=)
    ]
    capped = Thresholds(entropy_min=1.0, entropy_max=1.8)
    assert proxy_labels(small, large, capped)[5] == UNLABELLED


def test_thresholds_reject_overlapping_classes_and_bad_values():
    with pytest.raises(ValueError, match="entropy_min"):
        Thresholds(entropy_min=0.25, zero_entropy=0.2, entropy_delta=0.1)
    with pytest.raises(ValueError, match="entropy_max"):
        Thresholds(entropy_min=1.0, entropy_max=0.5)
    with pytest.raises(ValueError, match="zero_entropy"):
        Thresholds(zero_entropy=-1.0)


def test_balancing_keeps_equal_counts_per_token_id_and_drops_one_class_tokens():
    # token 7: 3 epistemic, 1 aleatoric; token 8: 2 and 2; token 9: epistemic only; token 5: unlabelled only
    tokens = np.array([7, 7, 7, 7, 8, 8, 8, 8, 9, 9, 5])
    labels = np.array([EPISTEMIC, EPISTEMIC, EPISTEMIC, ALEATORIC, EPISTEMIC, ALEATORIC, ALEATORIC, EPISTEMIC,
                       EPISTEMIC, EPISTEMIC, UNLABELLED])
    for seed in range(5):
        keep = balance_by_token(tokens, labels, seed=seed)
        kept = pd.DataFrame({"token": tokens[keep], "label": labels[keep]})
        per_token = kept.groupby(["token", "label"]).size().unstack(fill_value=0)
        assert per_token.to_dict() == {ALEATORIC: {7: 1, 8: 2}, EPISTEMIC: {7: 1, 8: 2}}
        assert keep[3] and keep[4:8].all() and not keep[8:].any()
        assert class_counts(labels, keep) == {"epistemic": 3, "aleatoric": 3, "unlabelled": 0}
    # which of token 7's three epistemic rows survives depends on the seed
    assert len({tuple(np.flatnonzero(balance_by_token(tokens, labels, seed=s)[:3])) for s in range(10)}) > 1


def test_label_table_balances_and_labels_the_truth():
    tokens = pd.DataFrame({
        "token_id": [4, 4, 4, 4, 6],
        "small_entropy": [1.5, 1.5, 2.0, 0.3, 1.2],
        "large_entropy": [0.1, 1.45, 0.0, 0.0, 1.2],
        "true_entropy": [0.0, 2.3, 0.0, 0.0, math.nan],
    })
    th = Thresholds(entropy_min=1.0)
    out = label_table(tokens, th, balanced=True, seed=0)
    assert out["label"].tolist() == [EPISTEMIC, ALEATORIC, EPISTEMIC, UNLABELLED, ALEATORIC]
    assert int(out["kept"].sum()) == 2 and out.loc[1, "kept"] and not out.loc[4, "kept"]
    assert out["truth_label"].tolist() == [EPISTEMIC, ALEATORIC, EPISTEMIC, UNLABELLED, UNLABELLED]
    unbalanced = label_table(tokens, th, balanced=False)
    assert unbalanced["kept"].tolist() == [True, True, True, False, True]
    rate, n = agreement(out["label"].to_numpy(), out["truth_label"].to_numpy())
    assert n == 3 and rate == 1.0


def test_truth_labels_use_the_true_entropy_and_an_aleatoric_floor():
    th = Thresholds(entropy_min=1.0)
    small = np.array([1.5, 1.5, 1.5, 1.5, 0.5])
    true = np.array([0.0, 0.5, 1.0, 3.0, 3.0])
    assert truth_labels(small, true, th).tolist() == [EPISTEMIC, UNLABELLED, ALEATORIC, ALEATORIC, UNLABELLED]
    assert truth_labels(small, true, th, aleatoric_min=2.0).tolist()[2:4] == [UNLABELLED, ALEATORIC]
    with pytest.raises(ValueError, match="aleatoric_min"):
        truth_labels(small, true, th, aleatoric_min=0.1)


def test_quantile_thresholds_read_the_floor_then_the_tokens_above_it():
    # H_s 0..8: its median (the floor) is 4. The five tokens above it have H_l 0, 1, 2, 6.5, 8 (their 0.25 quantile:
    # 1.0) and |H_l - H_s| 4, 4, 4, 0.5, 0 (0.25 quantile: 0.5); the four below it have H_l 10 (over all nine
    # tokens the H_l quantile would be 2.0 and the gap's 4.0: the tokens below the floor do not count)
    hs = np.arange(9.0)
    hl = np.array([10.0, 10.0, 10.0, 10.0, 0.0, 1.0, 2.0, 6.5, 8.0])
    th = quantile_thresholds(hs, hl)
    assert th.entropy_min == 4.0 and th.entropy_max == math.inf and th.allow_overlap
    assert th.zero_entropy == pytest.approx(1.0, abs=1e-8) and th.zero_entropy > 1.0  # the quantile itself counts
    assert th.entropy_delta == pytest.approx(0.5, abs=1e-8) and th.entropy_delta > 0.5
    # the quantile token itself falls in its class: H_l 1.0 epistemic, gap 0.5 aleatoric
    assert list(proxy_labels(hs, hl, th)) == [UNLABELLED] * 4 + [EPISTEMIC, EPISTEMIC, UNLABELLED, ALEATORIC, ALEATORIC]
    # other quantiles: the floor at 0.75 is 6, and above it H_l 2, 6.5, 8 (median 6.5), gaps 4, 0.5, 0 (median 0.5)
    other = quantile_thresholds(hs, hl, q_min=0.75, q_zero=0.5, q_delta=0.5)
    assert (other.entropy_min, round(other.zero_entropy, 6), round(other.entropy_delta, 6)) == (6.0, 6.5, 0.5)
    with pytest.raises(ValueError, match="at least one token"):
        quantile_thresholds(np.array([]), np.array([]))
