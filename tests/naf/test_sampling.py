"""Scoring and sampling under combinations, and CP-k, with toy bigram models whose laws are known."""

import math
from types import SimpleNamespace

import pytest
import torch

from assets.naf.combine import cp_delta, cp_kl, sequence_k_bits, single
from assets.naf.sampling import cp_k_sample, sample, score_tokens


class Bigram(torch.nn.Module):
    """A causal LM whose next-token law depends only on the last token: probs[last]."""

    def __init__(self, probs):
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(probs, dtype=torch.float32).log(), requires_grad=False)

    def forward(self, input_ids, use_cache=False):
        return SimpleNamespace(logits=self.table[input_ids])


Q1 = Bigram([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
Q2 = Bigram([[0.2, 0.2, 0.6], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])


def test_scores_match_the_tables():
    ids = torch.tensor([[0, 1, 2, 2], [2, 0, 0, 1]])
    scores = score_tokens({"q1": Q1, "q2": Q2}, ids, 1, {"cp_delta": (["q1", "q2"], cp_delta)}, batch_size=1)
    expected_q1 = torch.tensor([[0.2, 0.1, 0.4], [0.3, 0.7, 0.2]]).log()
    assert torch.allclose(scores.logprob["q1"], expected_q1, atol=1e-6)
    # CP-Δ after token 0: min = (0.2, 0.2, 0.1) / 0.5
    assert math.isclose(float(scores.logprob["cp_delta"][0, 0].exp()), 0.4, rel_tol=1e-5)
    assert math.isclose(float(scores.log_z["cp_delta"][0, 0].exp()), 0.5, rel_tol=1e-5)
    with pytest.raises(ValueError, match="unknown models"):
        score_tokens({"q1": Q1}, ids, 1, {"x": (["q1", "q9"], cp_delta)})
    with pytest.raises(ValueError, match="start"):
        score_tokens({"q1": Q1}, ids, 0)


@pytest.mark.parametrize(("rule", "expected"), [
    (cp_delta, [0.4, 0.4, 0.2]),
    (cp_kl, [math.sqrt(0.14) / (math.sqrt(0.14) + 0.2 + math.sqrt(0.06)), 0.2 / (math.sqrt(0.14) + 0.2 + math.sqrt(0.06)),
             math.sqrt(0.06) / (math.sqrt(0.14) + 0.2 + math.sqrt(0.06))]),
])
def test_sampling_follows_the_combined_law(rule, expected):
    prompts = torch.zeros(6000, 1, dtype=torch.long)
    ids = sample([Q1, Q2], rule, prompts, 1, generator=torch.Generator().manual_seed(0), batch_size=2048)
    freq = torch.bincount(ids[:, 1], minlength=3).double() / len(ids)
    # 6000 draws: standard error <= 0.0065; 4.5 sigma
    assert torch.allclose(freq, torch.tensor(expected, dtype=torch.float64), atol=0.03)
    assert torch.equal(ids[:, :1], prompts)


def test_greedy_and_single_model_sampling():
    prompts = torch.tensor([[0], [1]])
    greedy = sample([Q1], single(0), prompts, 3, generator=torch.Generator(), temperature=0.0)
    assert greedy.tolist() == [[0, 0, 0, 0], [1, 1, 1, 1]]
    # each model's favourite is the other's least likely token: the minimum favours the compromise, token 1
    a, b = Bigram([[0.6, 0.3, 0.1]] * 3), Bigram([[0.1, 0.3, 0.6]] * 3)
    for rule in (cp_delta, cp_kl):
        assert sample([a, b], rule, torch.tensor([[2]]), 2, generator=torch.Generator(), temperature=0.0).tolist() == [[2, 1, 1]]
    assert sample([a, b], single(1), torch.tensor([[2]]), 1, generator=torch.Generator(), temperature=0.0).tolist() == [[2, 2]]


def test_cp_k_keeps_only_samples_within_k():
    proposal = Bigram([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    safe = [Bigram([[1 / 3] * 3] * 3)] * 2
    prompts = torch.zeros(200, 1, dtype=torch.long)
    k = 2.0
    result = cp_k_sample(proposal, safe, prompts, 3, k, max_tries=20, generator=torch.Generator().manual_seed(1))
    # recompute k_x from the tables: log2(proposal / (1/3)) summed over tokens
    scores = score_tokens({"p": proposal, "s": safe[0]}, result.ids, 1)
    recomputed = sequence_k_bits(scores.logprob["p"], [scores.logprob["s"]])
    assert torch.allclose(recomputed, result.k_bits, atol=1e-5)
    assert result.accepted.all() and (result.k_bits <= k).all()
    # the all-repeat continuation 0,0,0 has k = 3 log2(2.7) = 4.3 > k: CP-k never outputs it, p mostly does
    assert not (result.ids[:, 1:] == 0).all(-1).any()
    assert (result.tries > 1).any() and (result.tries <= 20).all()


def test_cp_k_gives_up_after_max_tries():
    proposal = Bigram([[0.98, 0.01, 0.01]] * 3)
    safe = [Bigram([[0.01, 0.01, 0.98]] * 3)]
    result = cp_k_sample(proposal, safe, torch.zeros(5, 1, dtype=torch.long), 2, 0.0, max_tries=3,
                         generator=torch.Generator().manual_seed(0))
    assert not result.accepted.any() and (result.tries == 3).all() and not result.first_accepted.any()
    assert torch.isfinite(result.k_bits).all() and (result.k_bits > 0).all()
    with pytest.raises(ValueError, match="max_tries"):
        cp_k_sample(proposal, safe, torch.zeros(1, 1, dtype=torch.long), 2, 1.0, max_tries=0,
                    generator=torch.Generator())


def test_kv_cache_sampling_matches_full_forward_passes():
    from assets.lm.model import ModelSize, build_model

    size = ModelSize(name="t", d_model=16, n_layers=1, n_heads=2, d_ff=32, context_length=16)
    models = [build_model(size, 12, seed=s).eval() for s in (0, 1)]
    prompts = torch.randint(0, 12, (5, 3), generator=torch.Generator().manual_seed(0))
    runs = [sample(models, cp_delta, prompts, 6, generator=torch.Generator().manual_seed(3), use_cache=c)
            for c in (True, False)]
    assert torch.equal(runs[0], runs[1])
    # and the scores of a sampled sequence agree with a step-by-step recomputation
    scores = score_tokens({"a": models[0]}, runs[0], 3)
    full = models[0](input_ids=runs[0]).logits.log_softmax(-1)
    expected = full[:, 2:-1].gather(-1, runs[0][:, 3:].unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(scores.logprob["a"], expected, atol=1e-5)
