"""The fused training view (`assets.lm.fused`): the same function and the same training as the Hugging Face
layers, weights written back into the model every study saves and loads."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from assets.lm.fused import FusedDecoder, fused_view, unsupported_reason
from assets.lm.loss import NextTokenLoss
from assets.lm.model import ModelSize, build_model, load_checkpoint, save_checkpoint
from assets.lm.training import TrainConfig, TrainingDivergedError, train

VOCAB = 40


def size(n_kv_heads=None) -> ModelSize:
    return ModelSize("fused", d_model=32, n_layers=2, n_heads=4, d_ff=80, context_length=24, n_kv_heads=n_kv_heads)


def stream(n: int, seed: int = 0) -> np.ndarray:
    return np.resize(np.random.default_rng(seed).integers(0, VOCAB, 11), n)


def config(**overrides) -> TrainConfig:
    base = dict(max_steps=16, batch_size=8, learning_rate=1e-2, min_lr=1e-3, warmup_steps=2, eval_interval=8,
                eval_batches=2, seed=0)
    return TrainConfig(**{**base, **overrides})


@pytest.mark.parametrize("n_kv_heads, tie", [(None, True), (None, False), (2, True)])
def test_fused_view_computes_the_hugging_face_logits(n_kv_heads, tie):
    model = build_model(size(n_kv_heads), VOCAB, seed=3, tie_embeddings=tie).eval()
    with torch.no_grad():  # move every weight off its initial value so each copy is checked
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    fused = FusedDecoder.from_llama(model)
    x = torch.randint(0, VOCAB, (3, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(input_ids=x).logits
        got = F.linear(fused(x), fused.head_weight)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert (fused.head is None) == tie
    assert sum(p.numel() for p in fused.parameters()) == sum(p.numel() for p in model.parameters())


def test_the_view_of_a_model_already_off_the_cpu_lives_where_the_model_does():
    """A model loaded onto CUDA before training (chat SFT, royalties fine-tunes, the defender) must get a view on
    CUDA: the meta device stands in for it here (no tensor of it is on the CPU, so mixing devices raises)."""
    model = build_model(size(2), VOCAB, seed=1).to("meta")
    fused = FusedDecoder.from_llama(model)
    tensors = dict(fused.named_parameters()) | dict(fused.named_buffers())
    assert {"cos", "sin", "embed.weight"} <= set(tensors)
    assert {name: t.device.type for name, t in tensors.items() if t.device.type != "meta"} == {}


def test_write_back_splits_the_fused_weights_into_the_hugging_face_layers():
    model = build_model(size(2), VOCAB, seed=1, tie_embeddings=False)
    fused = FusedDecoder.from_llama(model)
    with torch.no_grad():
        for i, p in enumerate(fused.parameters()):  # every element distinct: a wrong row or offset shows
            p.copy_(torch.arange(p.numel(), dtype=p.dtype).reshape(p.shape) + 10_000.0 * i)
    fused.write_back(model)
    attn = model.model.layers[1].self_attn
    block = fused.blocks[1]
    q, k, v = block.qkv.weight.split([attn.q_proj.out_features, attn.k_proj.out_features,
                                      attn.v_proj.out_features])
    assert torch.equal(attn.q_proj.weight, q) and torch.equal(attn.k_proj.weight, k)
    assert torch.equal(attn.v_proj.weight, v)
    gate, up = block.gate_up.weight.chunk(2)
    assert torch.equal(model.model.layers[1].mlp.gate_proj.weight, gate)
    assert torch.equal(model.model.layers[1].mlp.up_proj.weight, up)
    assert torch.equal(model.lm_head.weight, fused.head.weight)
    assert torch.equal(model.model.norm.weight, fused.norm)
    assert torch.equal(FusedDecoder.from_llama(model).blocks[1].qkv.weight, block.qkv.weight)  # and back


def test_training_fused_is_training_the_same_model():
    results, weights = {}, {}
    for fused in (False, True):
        model = build_model(size(), VOCAB, seed=0)
        results[fused] = train(model, stream(3000), stream(600), config(fused_projections=fused))
        weights[fused] = {k: v.clone() for k, v in model.state_dict().items()}
    a, b = results[False].curve, results[True].curve
    np.testing.assert_allclose(b["train_loss"], a["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(b["val_loss"].dropna(), a["val_loss"].dropna(), rtol=1e-5)
    assert a["train_loss"].iloc[-1] < 0.5 * a["train_loss"].iloc[0]  # it learned, so the match means something
    init = build_model(size(), VOCAB, seed=0).state_dict()
    for name, value in weights[True].items():  # the Hugging Face model holds the fused run's weights
        torch.testing.assert_close(value, weights[False][name], rtol=1e-4, atol=1e-5)
    assert max(float((weights[True][k] - init[k]).abs().max()) for k in init) > 1e-2


def test_fused_chunked_loss_matches_the_fused_plain_loss():
    fused = FusedDecoder.from_llama(build_model(size(), VOCAB, seed=0))
    x = torch.randint(0, VOCAB, (4, 24), generator=torch.Generator().manual_seed(2))
    y = torch.roll(x, -1, dims=1)
    grads = []
    for chunk_rows in (None, 13):
        fused.zero_grad()
        loss = NextTokenLoss(fused, chunk_rows)(x, y)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in fused.parameters()]))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(grads[1][1], grads[0][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_a_checkpoint_after_fused_training_loads_and_scores_as_trained(tmp_path):
    model = build_model(size(), VOCAB, seed=0)
    result = train(model, stream(3000), stream(600), config(fused_projections=True, loss_chunk_rows=16))
    save_checkpoint(model, None, tmp_path / "ckpt")
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    x = torch.as_tensor(stream(25, seed=1)[None, :24])
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=x).logits, model.eval()(input_ids=x).logits)
    # the pattern was being learned (ln 40 = 3.7 at the start), and the saved model is the trained one
    assert result.final_val_loss < 0.5 * result.curve["train_loss"].iloc[0]


def test_weights_are_written_back_when_the_run_raises():
    model = build_model(size(), VOCAB, seed=0)
    before = model.model.layers[0].self_attn.q_proj.weight.clone()
    with pytest.raises(TrainingDivergedError):
        train(model, stream(3000), stream(600), config(fused_projections=True, learning_rate=50.0,
                                                                 min_lr=1.0, divergence_factor=1.5))
    assert not torch.equal(model.model.layers[0].self_attn.q_proj.weight, before)


def test_auto_fuses_on_cuda_only_and_refuses_models_it_cannot_fuse():
    model = build_model(size(), VOCAB, seed=0)
    assert unsupported_reason(model) is None
    assert fused_view(model, None, "cpu") is None  # None: CUDA only
    assert isinstance(fused_view(model, None, "cuda"), FusedDecoder)
    assert fused_view(model, False, "cuda") is None
    biased = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                                          num_hidden_layers=1, num_attention_heads=4, attention_bias=True))
    assert "attention_bias" in unsupported_reason(biased)
    assert fused_view(biased, None, "cuda") is None  # auto falls back to the Hugging Face layers
    with pytest.raises(ValueError, match="cannot be fused: attention_bias"):
        train(biased, stream(3000), stream(600), config(fused_projections=True, context_length=16))
    model.model.embed_tokens.weight.requires_grad_(False)
    assert "frozen" in unsupported_reason(model)
    with pytest.raises(ValueError, match="fused_projections"):
        TrainConfig(fused_projections="yes")
