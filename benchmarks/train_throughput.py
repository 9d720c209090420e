"""Training throughput and MFU of the project's trainer against a minimal hand-written GPT of the same shape.

    python benchmarks/train_throughput.py                  # CPU, about a minute: the "cpu" shape
    python benchmarks/train_throughput.py --quick          # CPU smoke run, seconds (prints, writes nothing)
    python benchmarks/train_throughput.py --device cuda    # the 124M and ~10M shapes, bf16 + compile

The project side is `assets.lm.training.train` on `build_model(...)` (a transformers LlamaForCausalLM), timed
by train's own clock (losses read back every --warmup-steps steps: one window per read-back), once training the
Hugging Face layers as they are and once through the fused training view (`TrainConfig.fused_projections`,
`assets.lm.fused`: one q/k/v matmul, one gate/up matmul; the default on CUDA). The minimal side
is the same architecture in plain PyTorch below (RMSNorm pre-norm blocks, fused QKV and gate/up projections,
rotary SDPA causal attention, SwiGLU, tied head) trained by a bare loop with the same optimizer, schedule,
clipping and data sampler, reading its losses back in the same windows. With --chunked-loss ROWS the project
also runs fused with `TrainConfig.loss_chunk_rows=ROWS` (the chunked linear + cross-entropy).

MFU = model_flops_per_token (6 N_matmul + 12 L d T, PaLM/nanoGPT) x tokens/s / peak dense bf16 FLOP/s of the
card (PEAK_BF16_FLOPS, by device name); n/a on CPU. The table (date, device) is written to --out, by default
benchmarks/results/train_throughput_<cpu|cuda>.md, for the README to quote.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
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

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12,
                   "L4": 121e12, "A10": 125e12}  # dense, no sparsity; matched by substring of the card's name
# name: (d_model, layers, heads, context, vocabulary, batch)
SHAPES = {
    "124M": (768, 12, 12, 1024, 50304, 32),  # GPT-2 small's shape (the measurement)
    "10M": (384, 6, 6, 512, 8192, 32),  # ~10.6M non-embedding parameters
    "cpu": (128, 4, 4, 128, 2048, 16),
    "quick": (64, 2, 2, 64, 512, 8),
}


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


def train_minimal(model: nn.Module, stream: TokenStream, cfg: TrainConfig, window: int) -> list[float]:
    """The bare loop: same sampler, schedule, AdamW groups and clipping as `train`; no host sync inside a window.

    Returns the seconds of each window of `window` steps (losses summed on the device, read once per window).
    """
    device_type = cfg.device.split(":")[0]
    model.to(cfg.device).train()
    optimizer = configure_optimizer(model, cfg, device_type)
    runner = torch.compile(model) if cfg.compile else model
    generator = torch.Generator().manual_seed(cfg.seed)
    pinned = device_type == "cuda"
    windows, summed, t0 = [], torch.zeros((), device=cfg.device), time.perf_counter()
    for step in range(1, cfg.max_steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, y = stream.get_batch(cfg.batch_size, generator)
        if pinned:
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(cfg.device, non_blocking=True), y.to(cfg.device, non_blocking=True)
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = runner(x)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        summed += loss.detach()
        if step % window == 0:
            summed.item()  # one read-back (and device sync) per window, as the project's loop does
            windows.append(time.perf_counter() - t0)
            summed, t0 = torch.zeros((), device=cfg.device), time.perf_counter()
    return windows


# --- the comparison -----------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--shapes", default=None, help=f"comma list of {list(SHAPES)} (default: 124M,10M on CUDA, "
                                                  "cpu on CPU, quick with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: the quick shape, few steps, one repeat")
    p.add_argument("--steps", type=int, default=None, help="timed steps per run (rounded up to whole windows)")
    p.add_argument("--warmup-steps", type=int, default=None, help="untimed first steps (compile), also the "
                                                                  "read-back window")
    p.add_argument("--repeats", type=int, default=None, help="alternate the runs this often; best kept")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="default: on CUDA only")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="default: on CUDA only")
    p.add_argument("--chunked-loss", type=int, default=None, metavar="ROWS",
                   help="also time the project with loss_chunk_rows=ROWS")
    p.add_argument("--out", default=None, help="markdown table path ('-': none; default "
                                               "benchmarks/results/train_throughput_<cpu|cuda>.md, none in --quick)")
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.shapes = (args.shapes or ("quick" if args.quick else "124M,10M" if cuda else "cpu")).split(",")
    args.steps = args.steps or (6 if args.quick else 30 if cuda else 12)
    args.warmup_steps = args.warmup_steps or (2 if args.quick else 10 if cuda else 3)
    args.steps = args.warmup_steps * math.ceil(args.steps / args.warmup_steps)
    args.repeats = args.repeats or (1 if args.quick or cuda else 2)
    args.bf16 = cuda if args.bf16 is None else args.bf16
    args.compile = cuda if args.compile is None else args.compile
    if args.out is None and not args.quick:
        args.out = f"benchmarks/results/train_throughput_{'cuda' if cuda else 'cpu'}.md"
    return args


def measure(shape: str, args: argparse.Namespace) -> list[dict]:
    """tokens/s of each trainer on one shape: the best of --repeats alternating runs."""
    d, layers, heads, context, vocab, batch = SHAPES[shape]
    size = ModelSize(shape, d, layers, heads, 32 * math.ceil(8 * d / 3 / 32), context)
    window = args.warmup_steps
    cfg = TrainConfig(max_steps=window + args.steps, batch_size=batch, learning_rate=1e-3, min_lr=1e-4,
                      warmup_steps=window, eval_interval=10**9, eval_batches=1, device=args.device, bf16=args.bf16,
                      compile=args.compile, divergence_factor=None, seed=0, loss_readback_steps=window)
    tokens = np.random.default_rng(0).integers(0, vocab, 2_000_000 if args.device != "cpu" else 200_000)
    stream, tokens_per_step = TokenStream(tokens, context), batch * context
    fused = dataclasses.replace(cfg, fused_projections=True)
    variants = {"project, Hugging Face layers": dataclasses.replace(cfg, fused_projections=False),
                "project, fused projections": fused, "minimal": cfg}
    if args.chunked_loss:
        variants[f"project, fused, chunked loss ({args.chunked_loss} rows)"] = dataclasses.replace(
            fused, loss_chunk_rows=args.chunked_loss)
    best = dict.fromkeys(variants, 0.0)
    for _ in range(args.repeats):
        for name, run_cfg in variants.items():
            if name == "minimal":
                torch.manual_seed(0)
                seconds = sum(train_minimal(MinimalGPT(size, vocab), stream, run_cfg, window)[1:])
            else:
                curve = train(build_model(size, vocab, seed=0), tokens, tokens[:50_000], run_cfg).curve
                timed = curve[curve["step"] > window]
                seconds = float((tokens_per_step / timed["tokens_per_s"]).sum())
            best[name] = max(best[name], args.steps * tokens_per_step / seconds)
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in device_name), None)
    flops = model_flops_per_token(size, vocab)
    params = count_parameters(build_model(size, vocab, seed=0))
    return [{"shape": f"{shape} (d={d} L={layers} H={heads} T={context} V={vocab} B={batch})", "params": params,
             "trainer": name, "tokens_per_s": rate, "mfu": flops * rate / peak if peak else None,
             "ratio": rate / best["minimal"]} for name, rate in best.items()]


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Training throughput, {date}, {device_name} (torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads), bf16 {args.bf16}, compile {args.compile}, "
             f"{args.steps} timed steps after {args.warmup_steps}, best of {args.repeats}.", "",
             "| shape | parameters | trainer | tokens/s | MFU | ratio to minimal |", "|---|---|---|---|---|---|"]
    for r in rows:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        lines.append(f"| {r['shape']} | {r['params'] / 1e6:.1f}M | {r['trainer']} | {r['tokens_per_s']:,.0f} | "
                     f"{mfu} | {r['ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    rows: list[dict] = []
    for shape in args.shapes:  # the table is rewritten after each shape, so a time limit keeps what was measured
        rows += measure(shape, args)
        table = markdown(rows, args)
        if args.out and args.out != "-":
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(table)
    print(table)
    if args.out and args.out != "-":
        print(f"written to {args.out}")
    return rows


if __name__ == "__main__":
    main()
