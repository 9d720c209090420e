"""Scoring and sampling: token statistics, sequence log-probs, and the KV-cached generation loop."""

import math

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from assets.lm.inference import generate, sequence_logprob, token_statistics
from assets.lm.model import ModelSize, build_model

SIZE = ModelSize("tiny", d_model=32, n_layers=2, n_heads=4, d_ff=64, context_length=32, n_kv_heads=2)
VOCAB = 24


@pytest.fixture(scope="module")
def model():
    # A larger init spreads the logits, so argmax ties and near-uniform distributions do not blur the tests.
    return build_model(SIZE, VOCAB, seed=0, init_std=0.3).eval()


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, VOCAB, (3, 9), generator=torch.Generator().manual_seed(0))


def test_logprobs_match_a_manual_log_softmax_and_entropy_is_bounded(model, ids):
    stats = token_statistics(model, ids)
    with torch.no_grad():
        logp = model(ids).logits.float().log_softmax(-1)
    manual = logp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
    torch.testing.assert_close(stats["logprob"][:, :-1], manual)
    assert stats["logprob"][:, -1].isnan().all()  # no next token after the last one
    assert (stats["entropy"] >= 0).all() and (stats["entropy"] <= math.log(VOCAB) + 1e-5).all()
    manual_entropy = -(logp.exp() * logp).sum(-1)
    torch.testing.assert_close(stats["entropy"], manual_entropy)
    assert stats["hidden"].shape == (3, 9, SIZE.d_model) and stats["layer"] == SIZE.n_layers


def test_padding_does_not_change_the_unpadded_sequence(model, ids):
    seq = ids[:1]
    ref = token_statistics(model, seq)
    pad = torch.zeros(1, 4, dtype=torch.long)
    left = torch.cat([pad, seq], 1)
    right = torch.cat([seq, pad], 1)
    mask_left = torch.cat([torch.zeros_like(pad), torch.ones_like(seq)], 1)
    batch = token_statistics(
        model, torch.cat([left, right]), torch.cat([mask_left, mask_left.flip(1)]), layer=1, batch_size=2
    )
    ref1 = token_statistics(model, seq, layer=1)
    for key in ("logprob", "entropy"):
        torch.testing.assert_close(batch[key][0, 4:], ref[key][0], equal_nan=True, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batch[key][1, :9], ref[key][0], equal_nan=True, atol=1e-5, rtol=1e-5)
        assert batch[key][0, :4].isnan().all() and batch[key][1, 9:].isnan().all()
    torch.testing.assert_close(batch["hidden"][0, 4:], ref1["hidden"][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch["hidden"][1, :9], ref1["hidden"][0], atol=1e-5, rtol=1e-5)
    assert batch["mask"].sum() == 18


def test_hidden_state_layer_convention(model, ids):
    embeddings = token_statistics(model, ids, layer=0)["hidden"]
    torch.testing.assert_close(embeddings, model.model.embed_tokens.weight[ids].detach())
    last = token_statistics(model, ids, layer=-1)["hidden"]
    torch.testing.assert_close(last, token_statistics(model, ids)["hidden"])
    with torch.no_grad():
        torch.testing.assert_close(last, model.model(ids).last_hidden_state)
    with pytest.raises(ValueError, match="layer"):
        token_statistics(model, ids, layer=SIZE.n_layers + 1)


def test_sequence_logprob_sums_the_continuation(model, ids):
    stats = token_statistics(model, ids)
    single = sequence_logprob(model, ids[0, :4], ids[0, 4:])
    assert single.dim() == 0
    assert float(single) == pytest.approx(float(stats["logprob"][0, 3:8].sum()), abs=1e-4)
    batch = sequence_logprob(
        model, [ids[0, :4].tolist(), ids[1, :2].tolist()], [ids[0, 4:].tolist(), ids[1, 2:5].tolist()]
    )
    assert float(batch[0]) == pytest.approx(float(single), abs=1e-4)
    assert float(batch[1]) == pytest.approx(float(stats["logprob"][1, 1:4].sum()), abs=1e-4)
    with pytest.raises(ValueError, match="at least one token"):
        sequence_logprob(model, [[]], [[1, 2]])


def test_greedy_generation_equals_an_uncached_argmax_loop(model, ids):
    prompt = ids[:2, :4]
    out = generate(model, prompt, 8, temperature=0)
    manual = prompt.clone()
    with torch.no_grad():
        for _ in range(8):
            manual = torch.cat([manual, model(manual).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, manual)
    assert torch.equal(generate(model, prompt, 8, top_k=1), manual)  # top-1 sampling is greedy


def test_left_padded_prompts_generate_like_unpadded_ones(model, ids):
    prompt = ids[0, :4]
    padded = torch.cat([torch.zeros(3, dtype=torch.long), prompt])
    mask = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    out = generate(
        model,
        torch.stack([padded, ids[1, :7]]),
        6,
        temperature=0,
        attention_mask=torch.stack([mask, torch.ones(7, dtype=torch.long)]),
    )
    assert torch.equal(out[0, 3:], generate(model, prompt, 6, temperature=0)[0])


def test_seeded_sampling_is_reproducible(model, ids):
    a = generate(model, ids[:2, :3], 20, seed=7)
    assert torch.equal(a, generate(model, ids[:2, :3], 20, seed=7))
    assert not torch.equal(a, generate(model, ids[:2, :3], 20, seed=8))


class BanToken(LogitsProcessor):
    def __init__(self, token: int):
        self.token, self.lengths = token, []

    def __call__(self, input_ids, scores):
        self.lengths.append(input_ids.shape[1])
        scores = scores.clone()
        scores[:, self.token] = -float("inf")
        return scores


def test_a_logits_processor_ban_is_respected(model, ids):
    prompt = ids[:1, :4]
    favourite = int(generate(model, prompt, 1, temperature=0)[0, -1])  # what greedy would say next
    ban = BanToken(favourite)
    greedy = generate(model, prompt, 10, temperature=0, logits_processors=LogitsProcessorList([ban]))
    assert favourite not in greedy[0, 4:].tolist()
    assert ban.lengths == list(range(4, 14))  # processors see the ids generated so far
    sampled = generate(
        model, prompt.expand(4, -1), 30, logits_processors=[BanToken(favourite)], temperature=2.0
    )
    assert favourite not in sampled[:, 4:].flatten().tolist()


def test_a_custom_sampler_picks_the_tokens(model, ids):
    calls = []

    def sampler(logits, step):
        calls.append((tuple(logits.shape), step))
        return torch.full((logits.shape[0],), (step * 5) % VOCAB)

    out = generate(model, ids[:2, :3], 6, sampler=sampler)
    assert calls == [((2, VOCAB), s) for s in range(6)]
    assert out[:, 3:].tolist() == [[(s * 5) % VOCAB for s in range(6)]] * 2


def test_generation_stops_after_eos(model, ids):
    eos = 3

    def sampler(logits, step):  # row 0 says eos at step 1, row 1 at step 3
        return torch.tensor([eos if step >= 1 else 7, eos if step >= 3 else 7])

    out = generate(model, ids[:2, :2], 10, sampler=sampler, eos_token_id=eos)
    assert out.shape == (2, 2 + 4)
    assert out[0, 2:].tolist() == [7, eos, eos, eos] and out[1, 2:].tolist() == [7, 7, 7, eos]
