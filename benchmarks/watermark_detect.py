"""Tokens scored per second: the vectorised KGW detector against a plain per-token loop; and what the
watermarks cost in generation.

    python benchmarks/watermark_detect.py                 # CPU, one thread, ~half a minute
    python benchmarks/watermark_detect.py --device cuda --texts 2048 --vocab 16384 --threads 0

Detection: the same random texts are scored by ``assets.watermark.greenlist.kgw_detect`` (one batched
gather into the green-list table, lazily filled from the seeding rule) and by ``kgw_detect_loop``, the
per-token reference that re-derives each green list from its seed (``torch.randperm`` on a generator seeded
with hash_key × previous token), as the authors' detector does; the loop's rate does not depend on how many
texts it scores, so it scores fewer (``--loop-texts``). The vectorised detector is timed cold (its first
call fills the table for the previous tokens it meets) and warm. A second baseline, a Python loop over
tokens that reads the warm table, separates "no re-seeding" from "no Python loop". Target: >= 20x over the
per-token reference. Generation: a fresh model of the demo code-small shape generates the same batch plain,
with the KGW logits processor (cold and warm table), the Unigram processor and the EXP sampler.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from assets.lm.inference import generate  # noqa: E402
from assets.lm.model import ModelSize, build_model  # noqa: E402
from assets.lm.threads import torch_threads  # noqa: E402
from assets.watermark.exp_sampling import exp_key, exp_sampler  # noqa: E402
from assets.watermark.greenlist import (  # noqa: E402
    KGWGreenLists,
    UnigramGreenList,
    kgw_detect,
    kgw_detect_loop,
    kgw_logits_processor,
    unigram_logits_processor,
)


def _timed(fn, repeats: int = 1, sync=lambda: None) -> float:
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def detection(args) -> float:
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(args.vocab, (args.texts, args.length), generator=gen)
    lists = KGWGreenLists(args.vocab, 0.25)
    n_tokens = args.texts * (args.length - 1)
    cold = _timed(lambda: kgw_detect(tokens, lists))
    warm = _timed(lambda: kgw_detect(tokens, lists), repeats=3)
    loop_tokens = tokens[: args.loop_texts]
    n_loop = args.loop_texts * (args.length - 1)
    loop = _timed(lambda: [kgw_detect_loop(row.tolist(), lists) for row in loop_tokens])

    def cached_loop():
        table = lists.mask_rows(torch.arange(args.vocab))  # warm: every row filled already
        for row in loop_tokens.tolist():
            green = sum(bool(table[p, c]) for p, c in zip(row[:-1], row[1:], strict=False))
            _ = (green - 0.25 * (len(row) - 1))

    cached = _timed(cached_loop)
    # the two sides agree
    fast = kgw_detect(loop_tokens, lists)
    slow = [kgw_detect_loop(row.tolist(), lists)["z"] for row in loop_tokens]
    assert all(abs(a - b) < 1e-9 for a, b in zip(fast["z"], slow, strict=True))
    rates = {"vectorised (cold table)": n_tokens / cold, "vectorised (warm table)": n_tokens / warm,
             "per-token loop, re-seeding (reference)": n_loop / loop, "per-token loop, cached table": n_loop / cached}
    print(f"KGW detection, V={args.vocab}, {args.texts} texts x {args.length} tokens "
          f"(loops: {args.loop_texts} texts)")
    for name, rate in rates.items():
        print(f"  {name:42s} {rate:14,.0f} tokens/s")
    ratio = rates["vectorised (cold table)"] / rates["per-token loop, re-seeding (reference)"]
    print(f"  ratio vectorised (cold) / per-token reference: {ratio:,.1f}x (target >= 20x); warm: "
          f"{rates['vectorised (warm table)'] / rates['per-token loop, re-seeding (reference)']:,.0f}x; "
          f"warm vs cached loop: {rates['vectorised (warm table)'] / rates['per-token loop, cached table']:,.0f}x")
    return ratio


def generation(args) -> None:
    device = args.device
    model = build_model(ModelSize("bench", 64, 2, 4, 192, 256), args.vocab, seed=0).to(device).eval()
    prompts = torch.randint(args.vocab, (args.gen_batch, 16), generator=torch.Generator().manual_seed(1)).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    n = args.gen_tokens
    lists = KGWGreenLists(args.vocab, 0.25)
    xi = exp_key(42, 256, args.vocab).to(device)
    shifts = torch.randint(256, (args.gen_batch,), generator=torch.Generator().manual_seed(2)).to(device)
    generate(model, prompts, 4, seed=0)  # warm-up: first-call allocations are no one's overhead
    plain = _timed(lambda: generate(model, prompts, n, seed=0), 3, sync)
    kgw_cold = _timed(lambda: generate(model, prompts, n, seed=0, logits_processors=[kgw_logits_processor(lists)]),
                      1, sync)
    runs = {
        "plain sampling": plain,
        "KGW processor (cold table)": kgw_cold,
        "KGW processor (warm table)": _timed(lambda: generate(model, prompts, n, seed=0,
                                                              logits_processors=[kgw_logits_processor(lists)]), 3, sync),
        "Unigram processor": _timed(lambda: generate(model, prompts, n, seed=0, logits_processors=[
            unigram_logits_processor(UnigramGreenList(args.vocab, 0.5))]), 3, sync),
        "EXP sampler": _timed(lambda: generate(model, prompts, n, seed=0, sampler=exp_sampler(xi, shifts)), 3, sync),
    }
    print(f"generation, {args.gen_batch} x {n} new tokens, V={args.vocab}, device {device} (best of 3; plain "
          "sampling draws with torch.multinomial, the EXP sampler takes an argmax)")
    for name, seconds in runs.items():
        print(f"  {name:30s} {args.gen_batch * n / seconds:10,.0f} tokens/s  overhead {seconds / plain - 1:+7.1%}")


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--loop-texts", type=int, default=8)
    parser.add_argument("--gen-batch", type=int, default=32)
    parser.add_argument("--gen-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    with torch_threads(args.threads, "cpu"):
        ratio = detection(args)
        generation(args)
    return ratio


if __name__ == "__main__":
    main()
