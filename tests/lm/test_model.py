"""The model family: sizes, seeded construction, parameter and FLOP counts."""

import pytest
import torch

from assets.lm.model import ModelSize, build_model, count_parameters, model_flops_per_token

SIZE = ModelSize("tiny", d_model=32, n_layers=2, n_heads=4, d_ff=64, context_length=16, n_kv_heads=2)
VOCAB = 40


def test_model_size_rejects_bad_shapes_naming_the_field():
    with pytest.raises(ValueError, match="n_heads"):
        ModelSize("x", d_model=30, n_layers=1, n_heads=4, d_ff=8, context_length=8)
    with pytest.raises(ValueError, match="n_kv_heads"):
        ModelSize("x", d_model=32, n_layers=1, n_heads=4, d_ff=8, context_length=8, n_kv_heads=3)
    with pytest.raises(ValueError, match="context_length"):
        ModelSize("x", d_model=32, n_layers=1, n_heads=4, d_ff=8, context_length=0)


def test_build_model_is_a_seeded_sdpa_llama():
    a = build_model(SIZE, VOCAB, seed=3)
    b = build_model(SIZE, VOCAB, seed=3)
    c = build_model(SIZE, VOCAB, seed=4)
    assert a.config._attn_implementation == "sdpa"
    assert a.config.num_key_value_heads == 2 and a.config.max_position_embeddings == 16
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)
    assert a.lm_head.weight is a.model.embed_tokens.weight  # tied by default


def test_build_model_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(SIZE, VOCAB, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_build_model_rejects_token_ids_outside_vocab():
    with pytest.raises(ValueError, match="eos_token_id"):
        build_model(SIZE, VOCAB, seed=0, eos_token_id=VOCAB)


def test_count_parameters_matches_the_llama_formula():
    d, kv, ff, L, V = 32, 2 * 8, 64, 2, VOCAB
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * ff + 2 * d  # q,o + k,v + MLP + two RMSNorms
    body = L * per_layer + d  # + final norm
    tied = build_model(SIZE, V, seed=0)
    untied = build_model(SIZE, V, seed=0, tie_embeddings=False)
    assert count_parameters(tied) == V * d + body
    assert count_parameters(untied) == 2 * V * d + body
    assert count_parameters(tied, non_embedding=True) == body
    assert count_parameters(untied, non_embedding=True) == V * d + body


def test_flops_per_token_is_six_n_plus_attention():
    untied = build_model(SIZE, VOCAB, seed=0, tie_embeddings=False)
    norms = (2 * SIZE.n_layers + 1) * SIZE.d_model
    n_matmul = count_parameters(untied, non_embedding=True) - norms  # every matmul weight incl. the LM head
    attention = 12 * SIZE.n_layers * SIZE.d_model * SIZE.context_length
    assert model_flops_per_token(SIZE, VOCAB) == 6 * n_matmul + attention
