"""A training view of our Llama-style model with fused projections: one matmul for q/k/v, one for gate/up.

The Hugging Face `LlamaForCausalLM` that every study saves and loads keeps separate q_proj/k_proj/v_proj and
gate_proj/up_proj layers and rebuilds its rotary tables and attention mask on every forward. On a GPU that
costs time: five small matmuls where two large ones would do, and more kernels for torch.compile to fuse.
`FusedDecoder.from_llama(model)` copies a Llama model's weights into the layout of a minimal GPT (fused QKV,
fused gate/up, rotary tables computed once, SDPA causal attention, the same RMSNorm arithmetic as Hugging
Face's), the trainer trains that, and `write_back(model)` splits the weights back into the Hugging Face model,
so checkpoints stay plain `save_pretrained` directories.

The fused model computes the same function as the Hugging Face one (logits equal to float rounding, tested),
and AdamW, weight decay and global-norm clipping act element-wise or on the global norm, so training it is
training the same model: only the order of floating-point operations changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


def unsupported_reason(model: nn.Module) -> str | None:
    """Why `model` cannot be trained as a `FusedDecoder` (None when it can).

    Supported: a `LlamaForCausalLM` with SiLU SwiGLU, no projection biases, default rotary embeddings,
    head_dim = hidden_size / heads, no attention dropout and no frozen parameters: what
    `assets.lm.model.build_model` builds.
    """
    config = getattr(model, "config", None)
    if type(model).__name__ != "LlamaForCausalLM" or config is None:
        return f"{type(model).__name__} is not a LlamaForCausalLM"
    rope = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
    checks = {
        "hidden_act is not silu": config.hidden_act != "silu",
        "attention_bias is set": bool(getattr(config, "attention_bias", False)),
        "mlp_bias is set": bool(getattr(config, "mlp_bias", False)),
        f"rope_type is {rope!r}, not 'default'": rope != "default",
        "head_dim is not hidden_size / num_attention_heads":
            getattr(config, "head_dim", None) not in (None, config.hidden_size // config.num_attention_heads),
        "attention_dropout is not 0": float(getattr(config, "attention_dropout", 0.0)) != 0.0,
        "pretraining_tp is not 1": getattr(config, "pretraining_tp", 1) not in (None, 1),
        "some parameters are frozen": not all(p.requires_grad for p in model.parameters()),
    }
    failed = [reason for reason, bad in checks.items() if bad]
    return "; ".join(failed) if failed else None


def fused_view(model: nn.Module, fused_projections: bool | None, device_type: str) -> FusedDecoder | None:
    """The `FusedDecoder` the trainer trains in `model`'s place, or None to train `model` as it is.

    fused_projections None: fuse on CUDA when the model supports it (on CPU it made no difference at our demo
    shapes); True: fuse, raising a ValueError that names why a model cannot be; False: never.
    """
    reason = unsupported_reason(model)
    if fused_projections is True and reason is not None:
        raise ValueError(f"TrainConfig.fused_projections=True but this model cannot be fused: {reason}")
    if fused_projections is False or reason is not None or (fused_projections is None and device_type != "cuda"):
        return None
    return FusedDecoder.from_llama(model)


@contextlib.contextmanager
def training_view(model: nn.Module, fused_projections: bool | None, device: str) -> Iterator[nn.Module]:
    """Yield the module a training loop should train in `model`'s place, on `device`.

    That is `model` itself, or its `fused_view`, whose weights are written back into `model` when the block
    ends, also when it ends with an error; `model` is left on `device` in train mode either way.
    """
    fused = fused_view(model, fused_projections, device.split(":")[0])
    if fused is None:
        yield model.to(device)
        return
    try:
        yield fused.to(device)
    finally:
        fused.write_back(model)
        model.to(device).train()


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Hugging Face Llama's RMSNorm arithmetic: normalise in float32, cast back, then scale."""
    normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
    return weight * normed.to(x.dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding, rotate-half convention (as Hugging Face's apply_rotary_pos_emb)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class FusedBlock(nn.Module):
    """One pre-norm decoder block: x + attention(norm(x)), then x + SwiGLU(norm(x))."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, d_ff: int, eps: float):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim, self.eps = n_heads, n_kv_heads, d_model // n_heads, eps
        self.attn_norm = nn.Parameter(torch.ones(d_model))
        self.qkv = nn.Linear(d_model, (n_heads + 2 * n_kv_heads) * self.head_dim, bias=False)
        self.out = nn.Linear(n_heads * self.head_dim, d_model, bias=False)
        self.mlp_norm = nn.Parameter(torch.ones(d_model))
        self.gate_up = nn.Linear(d_model, 2 * d_ff, bias=False)
        self.down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q_dim, kv_dim = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        q, k, v = self.qkv(rms_norm(x, self.attn_norm, self.eps)).split([q_dim, kv_dim, kv_dim], dim=-1)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv_heads != self.n_heads)
        x = x + self.out(y.transpose(1, 2).reshape(B, T, q_dim))
        gate, up = self.gate_up(rms_norm(x, self.mlp_norm, self.eps)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class FusedDecoder(nn.Module):
    """``forward(input_ids) -> final hidden states``; ``head_weight`` is the output embedding (tied or not).

    Build it with `from_llama`; copy the trained weights back with `write_back`.
    """

    def __init__(self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, n_kv_heads: int, d_ff: int,
                 eps: float, inv_freq: torch.Tensor, context_length: int, tie_embeddings: bool):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(FusedBlock(d_model, n_heads, n_kv_heads, d_ff, eps) for _ in range(n_layers))
        self.norm, self.eps = nn.Parameter(torch.ones(d_model)), eps
        self.head = None if tie_embeddings else nn.Linear(d_model, vocab_size, bias=False)
        positions = torch.arange(context_length, device=inv_freq.device).float()  # where the model's tables are
        angles = positions[:, None] * inv_freq.float()[None, :]
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    @property
    def head_weight(self) -> torch.Tensor:
        return self.embed.weight if self.head is None else self.head.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        x = self.embed(input_ids)
        cos, sin = self.cos[:T].to(x.dtype), self.sin[:T].to(x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin)
        return rms_norm(x, self.norm, self.eps)

    @classmethod
    def from_llama(cls, model: nn.Module) -> FusedDecoder:
        """A fused copy of a Llama causal LM (same weights, same dtype and device); raises if unsupported."""
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"cannot fuse this model's projections: {reason}")
        c, base = model.config, model.model
        tied = model.lm_head.weight is base.embed_tokens.weight
        weight = base.embed_tokens.weight
        fused = cls(c.vocab_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads,
                    c.num_key_value_heads, c.intermediate_size, c.rms_norm_eps, base.rotary_emb.inv_freq,
                    c.max_position_embeddings, tied).to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            for (ours, theirs) in _pairs(fused, model):
                ours.copy_(torch.cat([t.detach() for t in theirs]) if isinstance(theirs, list) else theirs)
        fused.train(model.training)
        return fused

    @torch.no_grad()
    def write_back(self, model: nn.Module) -> None:
        """Copy these weights into `model` (the Llama model this was built from), splitting fused matmuls."""
        for ours, theirs in _pairs(self, model):
            if isinstance(theirs, list):
                for part, target in zip(ours.split([t.shape[0] for t in theirs]), theirs, strict=True):
                    target.copy_(part)
            else:
                theirs.copy_(ours)


def _pairs(fused: FusedDecoder, model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor | list[torch.Tensor]]]:
    """(fused parameter, the Hugging Face parameter or the list of them it concatenates along rows)."""
    base = model.model
    pairs: list = [(fused.embed.weight, base.embed_tokens.weight), (fused.norm, base.norm.weight)]
    if fused.head is not None:
        pairs.append((fused.head.weight, model.lm_head.weight))
    for block, layer in zip(fused.blocks, base.layers, strict=True):
        attn, mlp = layer.self_attn, layer.mlp
        pairs += [
            (block.attn_norm, layer.input_layernorm.weight),
            (block.qkv.weight, [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]),
            (block.out.weight, attn.o_proj.weight),
            (block.mlp_norm, layer.post_attention_layernorm.weight),
            (block.gate_up.weight, [mlp.gate_proj.weight, mlp.up_proj.weight]),
            (block.down.weight, mlp.down_proj.weight),
        ]
    return pairs
