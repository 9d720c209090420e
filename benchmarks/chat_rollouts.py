"""Rollouts per second of the budgeted, KV-cached generation that RL and evaluation use: batched (prompts x k
samples in batches of --batch) against one sample at a time (batch 1, the same code path), on a model of the
demo's chat size. Prints the ratio measured in this run.

    .venv/bin/python benchmarks/chat_rollouts.py [--prompts 8] [--k 8] [--budget 32] [--batch 64] [--threads 1]
"""

import argparse
import time

import torch

from assets.chat.budget import generate_with_budget
from assets.chat.format import install_chat_format
from assets.chat.tasks import ArithmeticSpec, arithmetic_problems, prompt_messages, task_words
from assets.corpora.tokenization import train_word_level_tokenizer
from assets.lm.model import ModelSize, build_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--budget", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    problems = arithmetic_problems(ArithmeticSpec(n_train=args.prompts, n_validation=0, n_test=0))
    tokenizer = install_chat_format(train_word_level_tokenizer([*task_words(problems), *map(str, range(100))]))
    size = ModelSize("chat-demo", d_model=64, n_layers=2, n_heads=4, d_ff=192, context_length=128)
    # A wide init: an untrained model of normal init rarely closes its reasoning, so every rollout runs to the
    # budget either way; the comparison is of the same tokens generated two ways.
    model = build_model(size, len(tokenizer), seed=0, init_std=0.5).eval()
    conversations = [prompt_messages(r) for _, r in problems.iterrows()]

    def run(batch: int) -> tuple[float, int]:
        start = time.perf_counter()
        samples = generate_with_budget(model, tokenizer, conversations, args.budget, k=args.k, temperature=1.0,
                                       max_answer_tokens=4, batch_size=batch, seed=0)
        return time.perf_counter() - start, int(samples["generated_tokens"].sum())

    run(args.batch)  # warm-up
    batched, batched_tokens = run(args.batch)
    alone, alone_tokens = run(1)
    n = args.prompts * args.k
    print(f"{n} rollouts (budget {args.budget}, {args.threads} thread(s)): batched (batch {args.batch}) "
          f"{n / batched:.1f} rollouts/s ({batched_tokens / batched:.0f} tokens/s), one at a time "
          f"{n / alone:.1f} rollouts/s ({alone_tokens / alone:.0f} tokens/s); speed-up x{alone / batched:.1f}")


if __name__ == "__main__":
    main()
