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
