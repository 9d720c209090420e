"""The shape every task world shares: one row per problem, with its prompt, worked solution and answer.

Columns (TASK_COLUMNS):
  task_id    "<task>-<split>-<nnnnnn>", unique.
  task       "arithmetic", "facts" or "instructions".
  kind       the sub-family, e.g. "chain", "sum", "single_hop", "earlier_born", "upper_case".
  split      "train", "validation" or "test".
  system     the system message ("" when there is none).
  prompt     the user message.
  messages   the prompt conversation (system if any, then user) as JSON, ready for `apply_chat_template`.
  reasoning  the worked solution, step by step (the assistant's reasoning part).
  answer     the reference final answer (what the assistant's answer part should say).
  n_steps    how many steps the worked solution takes.
  constraint JSON with what a checker needs beyond `answer` ("{}" for tasks without a constraint).

Text is lower-case words separated by single spaces (names keep their capital), so a word-level tokenizer
covers a task world exactly (`assets.chat.tasks.task_words`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

TASK_COLUMNS = [
    "task_id",
    "task",
    "kind",
    "split",
    "system",
    "prompt",
    "messages",
    "reasoning",
    "answer",
    "n_steps",
    "constraint",
]
SPLITS = ("train", "validation", "test")


def task_row(
    task: str,
    kind: str,
    prompt: str,
    reasoning: str,
    answer: str,
    n_steps: int,
    *,
    system: str = "",
    constraint: dict | None = None,
) -> dict:
    """One problem as a dict of TASK_COLUMNS (task_id and split are filled by `split_problems`)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    return {
        "task_id": "",
        "task": task,
        "kind": kind,
        "split": "",
        "system": system,
        "prompt": prompt,
        "messages": json.dumps(messages),
        "reasoning": reasoning,
        "answer": answer,
        "n_steps": int(n_steps),
        "constraint": json.dumps(constraint or {}, sort_keys=True),
    }


def check_split_sizes(n_train: int, n_validation: int, n_test: int) -> None:
    for name, value in (("n_train", n_train), ("n_validation", n_validation), ("n_test", n_test)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


def split_problems(
    task: str, rows: Sequence[dict], n_train: int, n_validation: int, n_test: int
) -> pd.DataFrame:
    """Cut distinct problems (drawn in a seeded order) into train/validation/test, in that order.

    Rows must already be distinct by prompt (a problem is in exactly one split). Raises if there are fewer
    rows than the splits ask for.
    """
    check_split_sizes(n_train, n_validation, n_test)
    wanted = n_train + n_validation + n_test
    if len(rows) < wanted:
        raise ValueError(
            f"{task}: only {len(rows)} distinct problems exist for the settings given, but the "
            f"splits ask for {wanted}; ask for fewer or widen the settings"
        )
    splits = ["train"] * n_train + ["validation"] * n_validation + ["test"] * n_test
    frame = pd.DataFrame(list(rows[:wanted]), columns=TASK_COLUMNS)
    frame["split"] = splits
    counters = {s: 0 for s in SPLITS}
    ids = []
    for split in splits:
        ids.append(f"{task}-{split}-{counters[split]:06d}")
        counters[split] += 1
    frame["task_id"] = ids
    frame["n_steps"] = frame["n_steps"].astype(np.int64)
    return frame[TASK_COLUMNS]


def draw_distinct(draw, wanted: int, *, max_tries_per_row: int = 50, key=None) -> list[dict]:
    """Call `draw()` (one problem row) until `wanted` distinct problems are collected: distinct prompts
    (system + prompt), or distinct `key(row)` when given (e.g. the fact a question asks, whatever its words).

    Gives up after wanted * max_tries_per_row draws and returns what it has (the caller reports the
    shortfall).
    """
    seen: set = set()
    rows: list[dict] = []
    for _ in range(max(wanted, 1) * max_tries_per_row):
        if len(rows) == wanted:
            break
        row = draw()
        identity = (row["system"], row["prompt"]) if key is None else key(row)
        if identity not in seen:
            seen.add(identity)
            rows.append(row)
    return rows


def words(text: str) -> list[str]:
    """The whitespace-separated words of an answer, lower-cased (answers compare case-insensitively)."""
    return str(text).lower().split()
