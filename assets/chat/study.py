"""The chat room's study pieces: the vocabulary, the pretraining text, and accuracy against reasoning budget.

- `chat_vocabulary`: every word of the facts world and of the task tables, plus every number a running
  total can reach, so a word-level tokenizer covers anything a task asks or a model may answer.
- `pretraining_texts`: the base model's stream, the facts world's training documents plus the train splits
  of the task worlds written out as plain text (question, worked solution, answer), so the base model has
  seen the facts and the step-by-step arithmetic before it sees a conversation.
- `budget_accuracy`: the premise of the inference-time-compute study, measured. Each task's test problems
  are answered under each reasoning budget (and effort level) with `assets.chat.budget`, and scored with the
  task's checker; compute per answer (reasoning tokens, FLOPs) comes with every row.
- `accuracy_rises`: the rule the WARN check applies to that table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from assets.chat.arithmetic import MAX_TOTAL
from assets.chat.budget import answer_with_budget, reasoning_budget
from assets.chat.tasks import prompt_messages, score_answers, task_words

BUDGET_COLUMNS = [
    "model",
    "task",
    "setting",
    "effort",
    "requested_budget",
    "budget",
    "n",
    "k",
    "accuracy",
    "accuracy_se",
    "mean_reasoning_tokens",
    "max_reasoning_tokens",
    "mean_generated_tokens",
    "flops_per_answer",
    "budget_exhausted_rate",
]


def build_chat_tokenizer(facts_world: dict, task_frames: Sequence[pd.DataFrame], extra_words) -> tuple[Any, int]:
    """The chat word-level tokenizer with the chat format installed: every word of the facts world (its record)
    and of the task tables, plus ``extra_words`` (read, never trained on); and how many of those were new."""
    from assets.chat.format import install_chat_format
    from assets.corpora.facts_world import vocabulary, world_from_record
    from assets.corpora.tokenization import train_word_level_tokenizer

    base = chat_vocabulary(vocabulary(world_from_record(facts_world)), *task_frames)
    words = chat_vocabulary(base, extra_words=extra_words)
    return install_chat_format(train_word_level_tokenizer(words)), len(words) - len(base)


def chat_vocabulary(world_words: Sequence[str], *task_frames: pd.DataFrame,
                    extra_words: Sequence[str] = ()) -> list[str]:
    """World words, then task words, then the numbers 0..MAX_TOTAL and digit strings, then `extra_words`
    (e.g. the safety policy's and battery's words), each once, in that order."""
    numbers = [str(i) for i in range(MAX_TOTAL + 1)]
    return list(dict.fromkeys([*world_words, *task_words(*task_frames), *numbers, *extra_words]))


def task_text(row: Mapping[str, Any] | pd.Series) -> str:
    """A problem written as plain text: system instruction (if any), question, worked solution, answer."""
    parts = [str(row["system"]), str(row["prompt"]), str(row["reasoning"]), str(row["answer"])]
    return " ".join(p for p in parts if p)


def pretraining_texts(
    facts_texts: Sequence[str], task_frames: Sequence[pd.DataFrame], split: str, *, seed: int = 0
) -> list[str]:
    """The facts texts and every task problem of `split` as plain text, shuffled together (seeded)."""
    texts = list(facts_texts)
    for frame in task_frames:
        texts += [task_text(r) for _, r in frame[frame["split"] == split].iterrows()]
    order = np.random.default_rng([seed, 18, 7]).permutation(len(texts))
    return [texts[i] for i in order]


def split_rows(frames: Sequence[pd.DataFrame], split: str) -> pd.DataFrame:
    """The rows of one split of several task tables, concatenated."""
    return pd.concat([f[f["split"] == split] for f in frames], ignore_index=True)


def rows_of_tasks(rows: pd.DataFrame, tasks: Sequence[str]) -> pd.DataFrame:
    """The rows of the named tasks; ValueError naming the field when a task is unknown or none is given."""
    known = sorted(set(rows["task"]))
    if not tasks or set(tasks) - set(known):
        raise ValueError(f"tasks must be a non-empty subset of {known}, got {list(tasks)!r}")
    return rows[rows["task"].isin(list(tasks))].reset_index(drop=True)


def reward_summary(curve: pd.DataFrame) -> dict[str, float]:
    """An RL curve in a few numbers: mean reward over its first and last thirds, final KL, rollouts/s."""
    third = max(1, len(curve) // 3)
    return {
        "first_reward": float(curve["mean_reward"].iloc[:third].mean()),
        "last_reward": float(curve["mean_reward"].iloc[-third:].mean()),
        "final_kl": float(curve["kl"].iloc[-1]),
        "rollouts_per_s": float(curve["rollouts_per_s"].median()),
    }


def evaluation_settings(budgets: Sequence[int], efforts: Mapping[str, int]) -> list[tuple[str, str, int]]:
    """(setting label, effort level or "", requested budget) for every budget and every effort level."""
    settings = [(f"budget {int(b)}", "", reasoning_budget(int(b))) for b in budgets]
    settings += [(f"effort {name}", name, reasoning_budget(name, efforts)) for name in efforts]
    return settings


def budget_accuracy(
    models: Mapping[str, Any],
    tokenizer: Any,
    problems: pd.DataFrame,
    budgets: Sequence[int],
    efforts: Mapping[str, int],
    *,
    k: int = 1,
    temperature: float = 0.0,
    max_answer_tokens: int = 8,
    batch_size: int = 64,
    seed: int = 0,
    on_done: Any = None,
) -> pd.DataFrame:
    """Accuracy of each model on each task of `problems` under each budget and effort level (BUDGET_COLUMNS).

    Every distinct requested budget is generated once per (model, task); an effort level whose budget is
    also in `budgets` reuses those answers. With k > 1 the k samples' majority answer is scored. `budget`
    is the budget actually applied (lowered when a prompt plus the reasoning would not fit the model's
    positions). accuracy_se is the binomial standard error. flops_per_answer sums the k samples.
    on_done(model, task) is called after each (model, task).
    """
    settings = evaluation_settings(budgets, efforts)
    rows = []
    for model_name, model in models.items():
        for task, group in problems.groupby("task", sort=True):
            group = group.reset_index(drop=True)
            conversations = [prompt_messages(r) for _, r in group.iterrows()]
            done: dict[int, tuple[pd.DataFrame, pd.DataFrame]] = {}
            for label, effort, requested in settings:
                if requested not in done:
                    done[requested] = answer_with_budget(
                        model,
                        tokenizer,
                        conversations,
                        requested,
                        k=k,
                        temperature=temperature,
                        max_answer_tokens=max_answer_tokens,
                        batch_size=batch_size,
                        seed=seed,
                    )
                answers, samples = done[requested]
                correct = score_answers(group, answers["answer"].tolist())
                accuracy = float(correct.mean())
                rows.append(
                    {
                        "model": model_name,
                        "task": task,
                        "setting": label,
                        "effort": effort,
                        "requested_budget": requested,
                        "budget": int(answers["budget"].iloc[0]),
                        "n": len(group),
                        "k": k,
                        "accuracy": accuracy,
                        "accuracy_se": float(np.sqrt(accuracy * (1 - accuracy) / len(group))),
                        "mean_reasoning_tokens": float(answers["reasoning_tokens"].mean()),
                        "max_reasoning_tokens": int(samples["reasoning_tokens"].max()),
                        "mean_generated_tokens": float(answers["generated_tokens"].mean()),
                        "flops_per_answer": float(answers["flops"].mean()),
                        "budget_exhausted_rate": float(samples["budget_exhausted"].mean()),
                    }
                )
            if on_done is not None:
                on_done(model_name, task)
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS)


def accuracy_rises(
    table: pd.DataFrame, task: str, *, min_gain: float = 0.1, max_drop: float = 0.05
) -> dict[str, dict[str, Any]]:
    """Per model: does accuracy on `task` rise with the budget (the "budget N" rows, in budget order)?

    Passed when accuracy at the largest budget exceeds accuracy at the smallest by at least `min_gain`, and
    no step up in budget loses more than `max_drop` (sampling noise on a small test split).
    """
    out = {}
    rows = table[(table["task"] == task) & (table["effort"] == "")]
    for model, group in rows.groupby("model", sort=True):
        curve = group.sort_values("requested_budget")
        acc = curve["accuracy"].to_numpy()
        gain = float(acc[-1] - acc[0]) if len(acc) else float("nan")
        worst_drop = float(max(0.0, *(acc[:-1] - acc[1:]))) if len(acc) > 1 else 0.0
        out[str(model)] = {
            "accuracy_by_budget": {
                int(b): float(a) for b, a in zip(curve["requested_budget"], acc, strict=True)
            },
            "gain": gain,
            "worst_drop": worst_drop,
            "passed": bool(len(acc) > 1 and gain >= min_gain and worst_drop <= max_drop),
        }
    return out
