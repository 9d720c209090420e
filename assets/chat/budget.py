"""Inference with a compute knob: a hard reasoning budget, effort levels, k samples and majority vote.

The generation prompt opens the reasoning (`<|assistant|> <|reasoning|>`). A logits processor enforces the
turn's grammar while the LM family's KV-cached loop (`assets.lm.inference.generate`) samples:

- reasoning: at most `budget` tokens. When a row has written `budget` reasoning tokens and not closed
  them, `<|/reasoning|>` is forced (budget 0 forces it at once). `<|answer|>` and `<|end|>` cannot be
  written while reasoning, so every turn has the shape reasoning, close, answer, end.
- `<|answer|>` is forced right after `<|/reasoning|>`; the answer gets at most `max_answer_tokens` tokens,
  then `<|end|>` is forced.

So a completion never has more than `budget` reasoning tokens, and always ends with an answer part.
Compute per answer (what the inference-time-compute study plots against): reasoning tokens, generated
tokens, and forward FLOPs ~ 2 * N * tokens processed, with N the non-embedding parameters (Kaplan et al.'s
C_forward = 2N per token; attention's context-dependent term is left out) and tokens processed = prompt
tokens + generated tokens - 1 (the last token is sampled but never fed back). Only the answer's own tokens
count: padding and the idle rows of a batch are a batching cost, not the answer's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from assets.chat.format import ChatTokenIds, chat_token_ids, parse_assistant_turn, prompt_ids
from assets.lm.inference import generate
from assets.lm.model import count_parameters

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

EFFORT_BUDGETS = {"low": 16, "medium": 64, "high": 256}
SAMPLE_COLUMNS = [
    "prompt_index",
    "sample_index",
    "budget",
    "reasoning",
    "answer",
    "reasoning_tokens",
    "generated_tokens",
    "prompt_tokens",
    "flops",
    "budget_exhausted",
    "finished",
    "prompt_ids",
    "completion_ids",
    "forced",
]
ANSWER_COLUMNS = [
    "prompt_index",
    "budget",
    "k",
    "answer",
    "votes",
    "reasoning_tokens",
    "generated_tokens",
    "flops",
    "mean_reasoning_tokens",
]


def reasoning_budget(effort: str | int, efforts: Mapping[str, int] = EFFORT_BUDGETS) -> int:
    """Budget in tokens for an effort level ("low", "medium", "high") or a budget given directly."""
    if isinstance(effort, str):
        if effort not in efforts:
            raise ValueError(
                f"effort must be one of {list(efforts)} or a token budget (int >= 0), got {effort!r}"
            )
        return int(efforts[effort])
    if isinstance(effort, bool) or not isinstance(effort, int | np.integer) or effort < 0:
        raise ValueError(f"budget must be an int >= 0 or one of {list(efforts)}, got {effort!r}")
    return int(effort)


class ReasoningBudget:
    """Logits processor that enforces the assistant turn's grammar with a reasoning budget (module docstring).

    Called as processor(input_ids [B, P + s], scores [B, V]) -> scores, where P is the (left-padded) prompt
    width. `budget` is one budget for every row or a sequence of B (each row's own). Records, per step, which rows had their token forced (`forced`, a list of [B] bool tensors).
    """

    def __init__(self, ids: ChatTokenIds, prompt_width: int, budget: int | Sequence[int],
                 max_answer_tokens: int) -> None:
        self.ids, self.prompt_width = ids, prompt_width
        self.budget, self.max_answer_tokens = budget, max_answer_tokens  # one budget, or one per row
        self._budgets: dict[torch.device, torch.Tensor] = {}
        self.forced: list[torch.Tensor] = []
        self._banned: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def banned(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(token ids banned while reasoning, token ids banned in the answer) on `device`: built there once, not
        copied from the host at every generated token."""
        import torch

        if device not in self._banned:
            ids = self.ids
            self._banned[device] = (
                torch.tensor([ids.answer, ids.end], device=device),
                torch.tensor([ids.reasoning, ids.end_reasoning, ids.answer], device=device),
            )
        return self._banned[device]

    def budgets(self, device: torch.device) -> int | torch.Tensor:
        """The budget: an int, or the per-row budgets as a [B] tensor on `device` (built there once)."""
        import torch

        if isinstance(self.budget, int | np.integer):
            return int(self.budget)
        if device not in self._budgets:
            self._budgets[device] = torch.tensor([int(b) for b in self.budget], device=device)
        return self._budgets[device]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        ids = self.ids
        written = input_ids[:, self.prompt_width :]
        steps = written.size(1)
        is_close = written == ids.end_reasoning
        closed = is_close.any(1)
        # Index of the first close (argmax finds the first True); the whole written part while still open.
        first_close = is_close.int().argmax(1) if steps else torch.zeros_like(closed, dtype=torch.long)
        n_reasoning = torch.where(closed, first_close, steps)
        last = written[:, -1] if steps else torch.full_like(closed, -1, dtype=torch.long)
        n_answer = steps - n_reasoning - 2  # tokens after <|/reasoning|> <|answer|>
        force = torch.full_like(last, -1)
        force = torch.where(~closed & (n_reasoning >= self.budgets(scores.device)), ids.end_reasoning, force)
        force = torch.where(closed & (last == ids.end_reasoning), ids.answer, force)
        force = torch.where(
            closed & (last != ids.end_reasoning) & (n_answer >= self.max_answer_tokens), ids.end, force
        )
        # Masks rather than row indices, and index tensors built once: no host-device sync per generated token.
        neg_inf = torch.finfo(scores.dtype).min
        banned_in_reasoning, banned_in_answer = self.banned(scores.device)
        scores = scores.clone()
        scores[:, banned_in_reasoning] = torch.where(
            ~closed[:, None], neg_inf, scores[:, banned_in_reasoning]
        )
        scores[:, banned_in_answer] = torch.where(closed[:, None], neg_inf, scores[:, banned_in_answer])
        forced_rows = (force >= 0)[:, None]
        target = force.clamp(min=0)[:, None]
        kept = scores.gather(1, target)
        scores = torch.where(forced_rows, neg_inf, scores)
        scores.scatter_(1, target, torch.where(forced_rows, 0.0, kept))
        self.forced.append(forced_rows[:, 0])
        return scores


def derived_seed(*parts: int) -> int:
    """A seed for one part of a seeded run (a chunk of a generation, a step of RL), from the run's seed and
    the part's indices through np.random.SeedSequence: distinct parts never share a stream, unlike
    `seed + index` (where step s, chunk 1 and step s + 1, chunk 0 would collide)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint32)[0])


def generate_with_budget(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[Mapping[str, Any]]],
    budget: str | int | Sequence[int],
    *,
    k: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    max_answer_tokens: int = 16,
    batch_size: int = 64,
    seed: int = 0,
) -> pd.DataFrame:
    """k sampled assistant turns per conversation under a reasoning budget, one row per sample
    (SAMPLE_COLUMNS).

    Prompts are batched (sorted by length, left-padded) with a KV cache. temperature 0 is greedy (k copies
    are then identical). `budget` is a token count or an effort level, or a sequence of token counts (one per
    conversation). If a prompt plus the longest turn would not fit the model's positions, the budget is
    lowered to fit and the `budget` column says so: one budget is lowered for every conversation (to what
    the longest prompt fits); per-conversation budgets are lowered each on its own (to what its prompt fits).
    prompt_ids / completion_ids / forced hold each sample's tokens (completion up to and including
    `<|end|>`) and which completion tokens were forced, which RL needs.
    """
    import torch

    per_prompt = not isinstance(budget, str | int | np.integer)
    requested = [reasoning_budget(b) for b in budget] if per_prompt else reasoning_budget(budget)
    if per_prompt and len(requested) != len(conversations):
        raise ValueError(f"got {len(requested)} budgets for {len(conversations)} conversations")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if not isinstance(max_answer_tokens, int) or max_answer_tokens < 1:
        raise ValueError(f"max_answer_tokens must be a positive int, got {max_answer_tokens!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    ids = chat_token_ids(tokenizer)
    prompts = [prompt_ids(tokenizer, messages) for messages in conversations]
    answer_room = 2 + max_answer_tokens + 1  # close, answer marker, answer, end
    max_positions = getattr(model.config, "max_position_embeddings", None) or 10**9
    longest = max(len(p) for p in prompts)
    if max_positions - longest - answer_room < 0:
        raise ValueError(
            f"a prompt of {longest} tokens leaves no room for an answer of {max_answer_tokens} "
            f"tokens within the model's {max_positions} positions"
        )
    if per_prompt:  # each prompt its own largest budget that fits
        budgets = [min(b, max_positions - len(p) - answer_room) for b, p in zip(requested, prompts, strict=True)]
    else:  # one budget: the largest every prompt fits
        budgets = [min(requested, max_positions - longest - answer_room)] * len(prompts)
    n_params = count_parameters(model, non_embedding=True)
    device = next(model.parameters()).device

    jobs = [(i, j) for i in range(len(prompts)) for j in range(k)]
    jobs.sort(key=lambda job: len(prompts[job[0]]))  # similar lengths together: less padding
    rows: list[dict] = []
    for chunk_index, start in enumerate(range(0, len(jobs), batch_size)):
        chunk = jobs[start : start + batch_size]
        width = max(len(prompts[i]) for i, _ in chunk)
        batch = torch.full((len(chunk), width), ids.pad, dtype=torch.long)
        mask = torch.zeros_like(batch)
        for r, (i, _) in enumerate(chunk):
            batch[r, width - len(prompts[i]) :] = torch.tensor(prompts[i])
            mask[r, width - len(prompts[i]) :] = 1
        chunk_budgets = [budgets[i] for i, _ in chunk]
        one = len(set(chunk_budgets)) == 1
        processor = ReasoningBudget(ids, width, chunk_budgets[0] if one else chunk_budgets, max_answer_tokens)
        out = generate(
            model,
            batch.to(device),
            max(chunk_budgets) + answer_room,
            logits_processors=[processor],
            temperature=temperature,
            top_k=top_k,
            eos_token_id=ids.end,
            seed=derived_seed(seed, chunk_index),
            attention_mask=mask.to(device),
        )
        completions = out[:, width:].tolist()  # one copy to the host for the whole chunk
        forced = (  # off the CPU, `generate` may have run (and the processor recorded) steps past the cut
            torch.stack(processor.forced, 1)[:, : out.size(1) - width].cpu()
            if processor.forced
            else torch.zeros(len(chunk), 0, dtype=torch.bool)
        )
        for r, (i, j) in enumerate(chunk):
            completion = completions[r]
            if ids.end in completion:
                completion = completion[: completion.index(ids.end) + 1]
            turn = parse_assistant_turn(tokenizer, completion)
            processed = len(prompts[i]) + len(completion) - 1
            rows.append(
                {
                    "prompt_index": i,
                    "sample_index": j,
                    "budget": budgets[i],
                    "reasoning": turn.reasoning,
                    "answer": turn.answer if turn.closed_reasoning else None,
                    "reasoning_tokens": turn.reasoning_tokens,
                    "generated_tokens": len(completion),
                    "prompt_tokens": len(prompts[i]),
                    "flops": 2.0 * n_params * processed,
                    # The budget ran out when the close of the reasoning was forced rather than written.
                    "budget_exhausted": bool(forced[r, turn.reasoning_tokens])
                    if turn.closed_reasoning
                    else True,
                    "finished": turn.finished,
                    "prompt_ids": prompts[i],
                    "completion_ids": completion,
                    "forced": forced[r, : len(completion)].tolist(),
                }
            )
    rows.sort(key=lambda row: (row["prompt_index"], row["sample_index"]))
    return _with_answers(pd.DataFrame(rows, columns=SAMPLE_COLUMNS), rows)


def _with_answers(frame: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """Put the answers back as objects: building a frame from rows turns a missing answer (None) into NaN."""
    frame["answer"] = pd.Series([row["answer"] for row in rows], index=frame.index, dtype=object)
    return frame


def normalise_answer(answer: str) -> str:
    """Default vote key: lower-case words, single spaces."""
    return " ".join(str(answer).lower().split())


def majority_vote(
    answers: Sequence[str | None], key: Callable[[str], str] = normalise_answer
) -> tuple[str | None, int]:
    """The most common answer and its vote count; empty or missing answers do not vote.

    Answers with the same `key` are one candidate (reported in the form first seen); a tie goes to the
    candidate seen first. (None, 0) when nobody answered.
    """
    firsts: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for answer in answers:
        if not isinstance(answer, str) or not answer.strip():  # None (or a NaN from pandas): no answer
            continue
        k = key(answer)
        firsts.setdefault(k, answer)
        counts[k] += 1
    if not counts:
        return None, 0
    best = max(counts, key=lambda c: (counts[c], -list(firsts).index(c)))
    return firsts[best], counts[best]


def answer_with_budget(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[Mapping[str, Any]]],
    budget: str | int,
    *,
    k: int = 1,
    key: Callable[[str], str] = normalise_answer,
    **generation: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(answers, samples): per conversation the majority-vote answer of k samples and the compute they spent
    together (ANSWER_COLUMNS: summed reasoning/generated tokens and FLOPs over the k samples), and the
    per-sample table of `generate_with_budget`."""
    samples = generate_with_budget(model, tokenizer, conversations, budget, k=k, **generation)
    rows = []
    for i, group in samples.groupby("prompt_index", sort=True):
        answer, votes = majority_vote(group["answer"].tolist(), key=key)
        rows.append(
            {
                "prompt_index": i,
                "budget": int(group["budget"].iloc[0]),
                "k": k,
                "answer": answer,
                "votes": votes,
                "reasoning_tokens": int(group["reasoning_tokens"].sum()),
                "generated_tokens": int(group["generated_tokens"].sum()),
                "flops": float(group["flops"].sum()),
                "mean_reasoning_tokens": float(group["reasoning_tokens"].mean()),
            }
        )
    return _with_answers(pd.DataFrame(rows, columns=ANSWER_COLUMNS), rows), samples
