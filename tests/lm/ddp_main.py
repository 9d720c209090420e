"""Train a tiny model on a synthetic seeded token stream; works alone or under torchrun.

    python -m tests.lm.ddp_main --out DIR [--steps 8 --batch-size 8 ...]
    torchrun --nproc_per_node 2 -m tests.lm.ddp_main --out DIR [...]

Rank 0 writes DIR/params.safetensors (final parameters) and DIR/curve.csv (the loss curve). With the same
arguments (same global batch) both launches should give the same parameters up to float rounding; the DDP
test checks exactly that. The DDP test's workload; the project's one torchrun entry point is pipelines/torchrun_main.py.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np


def synthetic_stream(
    n_tokens: int, vocab_size: int, seed: int, noise_seed: int = 0, period: int = 24
) -> np.ndarray:
    """A learnable stream: a `seed`-determined pattern of `period` tokens repeated, with 5% of tokens replaced
    at random (`noise_seed`), so train and validation streams share the pattern but not the noise."""
    pattern = np.random.default_rng(seed).integers(0, vocab_size, period)
    rng = np.random.default_rng([seed, noise_seed])
    tokens = np.resize(pattern, n_tokens)
    noise = rng.random(n_tokens) < 0.05
    tokens[noise] = rng.integers(0, vocab_size, int(noise.sum()))
    return tokens.astype(np.int64)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="output directory (written by rank 0)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8, help="global batch, in sequences")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--eval-interval", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab", type=int, default=32)
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=16)
    p.add_argument("--tokens", type=int, default=4096, help="length of the synthetic train stream")
    p.add_argument("--device", default="cpu")
    p.add_argument("--fused-projections", action="store_true", help="train the fused view (assets.lm.fused)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import torch
    from safetensors.torch import save_file

    from assets.lm.model import ModelSize, build_model
    from assets.lm.training import TrainConfig, train

    args = parse_args(argv)
    # One thread per rank: two ranks on two cores, and the same kernels as the one-process reference.
    torch.set_num_threads(1)
    size = ModelSize(name="ddp-test", d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                     d_ff=2 * args.d_model, context_length=args.context)
    model = build_model(size, args.vocab, seed=args.seed)
    train_tokens = synthetic_stream(args.tokens, args.vocab, seed=args.seed)
    val_tokens = synthetic_stream(args.tokens // 4, args.vocab, seed=args.seed, noise_seed=1)
    cfg = TrainConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        grad_accum_steps=args.grad_accum,
        learning_rate=args.lr,
        min_lr=args.lr / 10,
        warmup_steps=args.warmup_steps,
        eval_interval=args.eval_interval,
        eval_batches=2,
        seed=args.seed,
        device=args.device,
        fused_projections=args.fused_projections or None,
    )
    result = train(model, train_tokens, val_tokens, cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        # Clone: tied weights share storage, which safetensors refuses to write twice.
        state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(args.out / "params.safetensors"))
        result.curve.to_csv(args.out / "curve.csv", index=False)
        summary = {
            "final_val_loss": result.final_val_loss,
            "tokens_seen": result.tokens_seen,
            "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        }
        (args.out / "summary.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
