"""Training throughput of the project's model and loop against a minimal hand-written GPT of the same shape.

    python benchmarks/train_throughput.py                       # CPU, < 1 minute
    python benchmarks/train_throughput.py --device cuda --bf16 --compile --size 768,12,12,1024 --batch 32

The project side is `assets.lm.training.train` on `build_model(...)` (a transformers LlamaForCausalLM), timed
by train's own per-step clock. The minimal side is the same architecture written in plain PyTorch below
(RMSNorm pre-norm blocks, rotary SDPA causal attention, SwiGLU MLP, tied head), trained by a bare loop with the
same optimizer, schedule, clipping, data sampler and per-step loss read-back. The ratio project / minimal is
the cost of going through Hugging Face. On CUDA, MFU = model_flops_per_token * tokens/s / peak bf16 FLOPs.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from assets.lm.data import TokenStream  # noqa: E402
from assets.lm.model import ModelSize, build_model, count_parameters, model_flops_per_token  # noqa: E402
from assets.lm.training import TrainConfig, configure_optimizer, lr_at, train  # noqa: E402

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}  # dense, no sparsity


# --- the minimal GPT ------------------------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self, size: ModelSize):
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = size.n_heads, size.kv_heads, size.head_dim
        self.attn_norm = nn.RMSNorm(size.d_model, eps=1e-6)
        self.qkv = nn.Linear(size.d_model, (size.n_heads + 2 * size.kv_heads) * size.head_dim, bias=False)
        self.out = nn.Linear(size.d_model, size.d_model, bias=False)
        self.mlp_norm = nn.RMSNorm(size.d_model, eps=1e-6)
        self.gate_up = nn.Linear(size.d_model, 2 * size.d_ff, bias=False)
        self.down = nn.Linear(size.d_ff, size.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).split(
            [self.n_heads * self.head_dim, self.n_kv * self.head_dim, self.n_kv * self.head_dim], dim=-1
        )
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.n_kv != self.n_heads)
        x = x + self.out(y.transpose(1, 2).reshape(B, T, -1))
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class MinimalGPT(nn.Module):
    def __init__(self, size: ModelSize, vocab_size: int, rope_theta: float = 10000.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, size.d_model)
        self.blocks = nn.ModuleList(Block(size) for _ in range(size.n_layers))
        self.norm = nn.RMSNorm(size.d_model, eps=1e-6)
        inv_freq = 1.0 / rope_theta ** (torch.arange(0, size.head_dim, 2).float() / size.head_dim)
        angles = torch.outer(torch.arange(size.context_length).float(), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.embed(idx)
        cos, sin = self.cos[:T].to(x.dtype), self.sin[:T].to(x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.norm(x) @ self.embed.weight.T  # tied head


def train_minimal(model: nn.Module, stream: TokenStream, cfg: TrainConfig) -> list[float]:
    """The bare loop: same sampler, schedule, AdamW groups, clipping and per-step loss read-back as `train`."""
    device_type = cfg.device.split(":")[0]
    model.to(cfg.device).train()
    optimizer = configure_optimizer(model, cfg, device_type)
    runner = torch.compile(model) if cfg.compile else model
    generator = torch.Generator().manual_seed(cfg.seed)
    seconds = []
    for step in range(1, cfg.max_steps + 1):
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, y = stream.get_batch(cfg.batch_size, generator)
        x, y = x.to(cfg.device, non_blocking=True), y.to(cfg.device, non_blocking=True)
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = runner(x)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the project loop reads the loss every step too (and that synchronises CUDA)
        seconds.append(time.perf_counter() - t0)
    return seconds


# --- the comparison -----------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="128,4,4,128", help="d_model,layers,heads,context (default 128,4,4,128)")
    p.add_argument(
        "--d-ff", type=int, default=None, help="SwiGLU width (default 8/3 d_model, rounded up to 32)"
    )
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--batch", type=int, default=16, help="sequences per step")
    p.add_argument("--steps", type=int, default=10, help="timed steps per run")
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed steps first (allocator, compile)")
    p.add_argument("--repeats", type=int, default=3, help="alternate the two runs this often")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--compile", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    d, layers, heads, context = (int(v) for v in args.size.split(","))
    d_ff = args.d_ff or 32 * math.ceil(8 * d / 3 / 32)
    size = ModelSize("bench", d, layers, heads, d_ff, context)
    total_steps = args.warmup_steps + args.steps
    cfg = TrainConfig(
        max_steps=total_steps,
        batch_size=args.batch,
        learning_rate=1e-3,
        min_lr=1e-4,
        warmup_steps=args.warmup_steps,
        eval_interval=10**9,
        eval_batches=1,
        device=args.device,
        bf16=args.bf16,
        compile=args.compile,
        divergence_factor=None,
        seed=0,
    )
    tokens = np.random.default_rng(0).integers(0, args.vocab, 200_000)
    stream = TokenStream(tokens, context)
    tokens_per_step = args.batch * context

    # Per-step times from alternating runs; the median resists bursts of load from other processes.
    step_seconds: dict[str, list[float]] = {"project": [], "minimal": []}
    for _ in range(args.repeats):
        curve = train(build_model(size, args.vocab, seed=0), tokens, tokens[:20_000], cfg).curve
        step_seconds["project"] += list(tokens_per_step / curve["tokens_per_s"])[args.warmup_steps :]
        torch.manual_seed(0)
        step_seconds["minimal"] += train_minimal(MinimalGPT(size, args.vocab), stream, cfg)[
            args.warmup_steps :
        ]
    best = {name: tokens_per_step / float(np.median(secs)) for name, secs in step_seconds.items()}

    minimal_params = count_parameters(MinimalGPT(size, args.vocab))
    project_params = count_parameters(build_model(size, args.vocab, seed=0))
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"device {device_name} threads {torch.get_num_threads()} | size d={d} L={layers} H={heads} T={context} "
        f"d_ff={d_ff} V={args.vocab} | batch {args.batch} | bf16 {args.bf16} compile {args.compile}"
    )
    print(f"params project {project_params:,} minimal {minimal_params:,}")
    for name, rate in best.items():
        print(f"{name:8s} {rate:12,.0f} tokens/s (median step)")
    print(f"ratio project/minimal {best['project'] / best['minimal']:.3f}")
    if args.device.startswith("cuda"):
        peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in device_name), None)
        flops = model_flops_per_token(size, args.vocab)
        if peak is None:
            print(f"MFU: unknown peak FLOPs for {device_name}")
        else:
            for name, rate in best.items():
                print(f"MFU {name:8s} {flops * rate / peak:.1%} (of {peak:.3g} bf16 FLOP/s)")


if __name__ == "__main__":
    main()
