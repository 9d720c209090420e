"""Kuditipudi EXP / EXP-edit: the sampler, the statistics against the authors' scalar code, p-values,
and detection of a tiny model's watermarked text before and after a few insertions and deletions."""

import math

import numpy as np
import pytest
import torch

from assets.watermark.exp_sampling import (
    cost_tensor,
    edit_statistic,
    exp_key,
    exp_sampler,
    exp_statistic,
    levenshtein_reference,
    permutation_pvalues,
    statistic,
)
from assets.watermark.schemes import build_schemes


def test_key_is_reproducible_and_uniform():
    xi = exp_key(7, 16, 50)
    assert torch.equal(xi, torch.rand((16, 50), generator=torch.Generator().manual_seed(7)))
    assert xi.shape == (16, 50) and 0 <= float(xi.min()) and float(xi.max()) < 1


def test_statistics_match_the_scalar_dynamic_programme():
    xi = exp_key(3, 12, 40)
    tokens = torch.randint(40, (3, 9), generator=torch.Generator().manual_seed(1))
    cost = cost_tensor(tokens, xi)
    for block in (9, 5):
        edit = edit_statistic(cost, gamma=0.4, block=block)
        plain = exp_statistic(cost, block=block)
        for b in range(3):
            row = tokens[b].tolist()
            windows = [row[i:i + block] for i in range(9 - block + 1)]
            ref_edit = min(levenshtein_reference(w, [xi[(j + t) % 12] for t in range(block)], 0.4)
                           for w in windows for j in range(12))
            ref_plain = min(sum(math.log(1 - float(xi[(j + t) % 12, w[t]])) for t in range(block))
                            for w in windows for j in range(12))
            assert math.isclose(float(edit[b]), ref_edit, rel_tol=1e-4, abs_tol=1e-4)
            assert math.isclose(float(plain[b]), ref_plain, rel_tol=1e-4, abs_tol=1e-4)
            assert float(edit[b]) <= float(plain[b]) + 1e-5  # the diagonal path is one alignment
    with pytest.raises(ValueError, match="block"):
        exp_statistic(cost, block=10)


def test_exp_sampling_is_argmax_and_follows_the_model_distribution():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    logits = probs.log().expand(4000, 5)
    xi = exp_key(11, 4000, 5)
    picks = exp_sampler(xi, torch.arange(4000))(logits, 0)  # row b at shift b: key row b
    # row b uses key row b: the argmax of xi^(1/p), compared in float64 logs (xi^(1/p) underflows in float32)
    assert torch.equal(picks, (xi.double().log() / probs.double()).argmax(-1))
    freq = torch.bincount(picks, minlength=5).float() / 4000
    assert torch.allclose(freq, probs, atol=0.03) and int(freq[4] * 4000) == 0


def test_null_p_values_are_near_uniform():
    xi = exp_key(0, 20, 300)
    tokens = torch.randint(300, (120, 16), generator=torch.Generator().manual_seed(5))
    for edit in (False, True):
        p = permutation_pvalues(tokens, xi, edit=edit, runs=19, seed=2)["p_value"]
        assert 0.38 < p.mean() < 0.62
        assert np.mean(p <= 0.1) < 0.2


def _edit(row: list[int], rng: np.random.Generator, vocab: int, n_edits: int) -> list[int]:
    row = list(row)
    for i in range(n_edits):
        at = int(rng.integers(1, len(row) - 1))
        if i % 2:
            row.insert(at, int(rng.integers(vocab)))
        else:
            del row[at]
    return row


def test_tiny_model_exp_watermark_is_detected_and_edit_detection_survives_edits(tiny_lm):
    scheme = build_schemes(120, key_length=32)["exp_edit"]
    prompts = torch.randint(120, (6, 4), generator=torch.Generator().manual_seed(0))
    marked = scheme.generate(tiny_lm, prompts, 24, seed=1)
    plain = torch.randint(120, (6, 24), generator=torch.Generator().manual_seed(9))
    clean = scheme.detect(marked, runs=39, seed=3)
    null = scheme.detect(plain, runs=39, seed=3)
    assert (clean["p_value"] <= 0.025).all()  # every text at the floor 1/40
    assert np.median(null["p_value"]) > 0.1
    rng = np.random.default_rng(0)
    edited = torch.tensor([_edit(r, rng, 120, 4) for r in marked.tolist()])  # 2 deletions, 2 insertions
    after = scheme.detect(edited, runs=39, seed=3)
    assert (after["p_value"] <= 0.05).mean() >= 5 / 6
    assert (after["score"] > null["score"].max()).all()


def test_statistic_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[B, m\]"):
        statistic(torch.zeros(3, dtype=torch.long), exp_key(0, 4, 10), edit=True)
    with pytest.raises(ValueError, match="runs"):
        permutation_pvalues(torch.zeros(1, 4, dtype=torch.long), exp_key(0, 4, 10), edit=False, runs=0)
