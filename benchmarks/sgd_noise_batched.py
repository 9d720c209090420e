"""Speed of the batched synthetic trainer: one group of M networks trained at once vs the same M runs one
at a time (same code path, M=1), on one CPU thread. Prints the ratio measured in this run.

    .venv/bin/python benchmarks/sgd_noise_batched.py [--runs 12] [--steps 400] [--batch 16]
"""

import argparse
import time

import torch

from assets.sgd_noise.data import TeacherTask
from assets.sgd_noise.synthetic import RunSpec, SweepSpec, train_group


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = TeacherTask()
    sweep = SweepSpec(student_width=64, steps=args.steps, eval_size=1024, distance_samples=256, log_points=20)
    lrs = [0.05, 0.1, 0.2]
    specs = [RunSpec(lrs[i % len(lrs)], i // len(lrs)) for i in range(args.runs)]
    start = time.perf_counter()
    together = train_group(task, "online", args.batch, specs, sweep)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    alone = [train_group(task, "online", args.batch, [spec], sweep) for spec in specs]
    sequential = time.perf_counter() - start
    key = specs[-1].key("online", args.batch)
    same = abs(together.curves[together.curves["run_key"] == key]["eval_loss"].iloc[-1]
               - alone[-1].curves["eval_loss"].iloc[-1])
    print(f"{args.runs} runs x {args.steps} steps, B={args.batch}: batched {batched:.2f}s, one at a time "
          f"{sequential:.2f}s, speed-up x{sequential / batched:.1f} (final-loss difference {same:.2e})")


if __name__ == "__main__":
    main()
