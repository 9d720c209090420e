"""Networks x steps per second: the batched parity trainer against a plain one-model-at-a-time loop.

    python benchmarks/parity_throughput.py                         # CPU, one thread, ~1 minute
    python benchmarks/parity_throughput.py --device cuda --models 256 --width 1000 --n 50

Both sides train the same networks (same seeds: same initial weights, same batches) by online SGD with the
paper's defaults (2-layer ReLU MLP, B=32, η=0.1, hinge loss) and the same per-step convergence check. The
batched side is ``assets.parity.trainer.train_batched`` (stacked weights, batched matmuls, hand-written
gradients) with curve logging reduced to the first and last step; the plain side is
``assets.parity.reference.train_reference`` (nn.Module, autograd, torch.optim.SGD), one seed after another.
The per-model rate of the plain loop does not depend on how many models it trains, so it runs fewer
(``--plain-models``). Target on CPU: ratio >= 10.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from assets.lm.threads import torch_threads  # noqa: E402
from assets.parity.architectures import Network  # noqa: E402
from assets.parity.reference import train_reference  # noqa: E402
from assets.parity.trainer import TrainSpec, train_batched  # noqa: E402


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="mlp", choices=["mlp", "polynet"])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--models", type=int, default=64, help="networks the batched trainer trains at once")
    parser.add_argument("--plain-models", type=int, default=4, help="networks the plain loop trains, one by one")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many timings per side")
    args = parser.parse_args(argv)

    net = Network(args.arch, args.n, args.k, args.width)
    # max_steps bounds the run; no early stop, so both sides do exactly args.steps steps per network
    spec = TrainSpec(max_steps=args.steps, eval_size=2048, curve_samples=256, gap_samples=0,
                     log_every=args.steps, log_growth=float(args.steps + 1), stop_when_converged=False)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def batched() -> float:
        sync()
        start = time.perf_counter()
        train_batched(net, spec, list(range(args.models)), device=args.device)
        sync()
        return args.models * args.steps / (time.perf_counter() - start)

    def plain() -> float:
        sync()
        start = time.perf_counter()
        for seed in range(args.plain_models):
            train_reference(net, spec, seed, device=args.device, dtype=torch.float32)
        sync()
        return args.plain_models * args.steps / (time.perf_counter() - start)

    with torch_threads(args.threads):
        batched_rate = max(batched() for _ in range(args.repeats))
        plain_rate = max(plain() for _ in range(args.repeats))
    ratio = batched_rate / plain_rate
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    print(f"device {args.device} ({name}), threads {torch.get_num_threads() if not args.threads else args.threads}; "
          f"{args.arch} n={args.n} k={args.k} width={args.width}, B={spec.batch_size}, {args.steps} steps")
    print(f"batched ({args.models} networks at once): {batched_rate:10.0f} network-steps/s")
    print(f"plain loop (one network at a time):   {plain_rate:10.0f} network-steps/s")
    print(f"ratio batched / plain: {ratio:.1f}x (target >= 10x on CPU)")
    return ratio


if __name__ == "__main__":
    main()
