"""The ICLT's mutual-information score on known distributions, and the batched test on a real model."""

import math

import numpy as np
import pytest
import torch

from assets.lm.model import ModelSize, build_model
from assets.uncertainty.iclt import IcltSettings, fit_score_classifier, iclt, mutual_information


def test_perfect_copying_gives_the_candidates_entropy():
    p_x = np.array([[0.5, 0.25, 0.25], [0.9, 0.05, 0.05]])
    copy = np.broadcast_to(np.eye(3), (2, 3, 3))
    out = mutual_information(p_x, copy)
    h = -(p_x * np.log(p_x)).sum(1)
    np.testing.assert_allclose(out["mi"], h, atol=1e-9)
    np.testing.assert_allclose(out["h_y"], h, atol=1e-9)
    np.testing.assert_allclose(out["h_y_given_x"], 0.0, atol=1e-9)


def test_context_that_changes_nothing_gives_zero_information():
    p_x = np.array([[0.4, 0.3, 0.2, 0.1]])
    same = np.repeat(p_x[:, None, :], 4, axis=1) * 7.0  # unnormalised on purpose: renormalised inside
    out = mutual_information(p_x, same)
    assert out["mi"][0] == pytest.approx(0.0, abs=1e-12)
    assert out["h_y"][0] == pytest.approx(-(p_x * np.log(p_x)).sum(), rel=1e-9)


def test_two_candidates_half_copying_matches_the_closed_form():
    # X uniform on 2 candidates; after candidate j the model puts 0.75 on j: a binary symmetric channel
    p_x = np.array([[0.5, 0.5]])
    p_y = np.array([[[0.75, 0.25], [0.25, 0.75]]])
    expected = math.log(2) - (-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert mutual_information(p_x, p_y)["mi"][0] == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="p_y_given_x"):
        mutual_information(p_x, p_y[:, :1])


def test_score_classifier_learns_the_direction():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(1.0, 0.3, 200), rng.normal(0.0, 0.3, 200)])
    labels = np.r_[np.ones(200), np.zeros(200)].astype(int)
    p, slope = fit_score_classifier(scores, labels, np.array([-1.0, 2.0]))
    assert slope > 0 and p[0] < 0.05 and p[1] > 0.95
    p_flip, slope_flip = fit_score_classifier(-scores, labels, np.array([-1.0, 2.0]))
    assert slope_flip < 0 and p_flip[0] > 0.95


def test_iclt_batches_prompts_and_stays_in_context():
    size = ModelSize("t", 32, 2, 2, 64, 48)
    model = build_model(size, 20, seed=0).eval()
    prompts = [[1, 5, 6, 7], [1, 8], list(range(4, 20)) * 3]  # the last is longer than fits: cut
    settings = IcltSettings(top_k=3, max_continuation=5, batch_size=2)
    out = iclt(model, prompts, bos_id=1, eos_id=2, pad_id=0, end_ids={2, 3}, context_length=48, settings=settings)
    assert out["mi"].shape == (3,) and out["top_ids"].shape == (3, 3)
    assert np.all(out["mi"] >= 0) and np.all(out["mi"] <= out["h_y"] + 1e-9)
    assert np.all(out["continuation_length"] <= 5)
    # batching does not change the answer
    one = iclt(model, prompts[:1], bos_id=1, eos_id=2, pad_id=0, end_ids={2, 3}, context_length=48,
               settings=IcltSettings(top_k=3, max_continuation=5, batch_size=1))
    np.testing.assert_allclose(one["mi"], out["mi"][:1], atol=1e-5)
    with torch.no_grad(), pytest.raises(ValueError, match="context_length"):
        iclt(model, prompts, bos_id=1, eos_id=2, pad_id=0, end_ids={2}, context_length=8, settings=settings)
