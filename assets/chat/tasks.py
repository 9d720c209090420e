"""Task worlds with checkable answers: one entry point for building conversations and judging answers.

The worlds live in their own modules (`arithmetic`, `facts_questions`, `instructions`) and share the table
shape of `task_table.TASK_COLUMNS`. Here: the conversation of a problem (for SFT or for prompting), the
answer checker of any row, the verifiable reward RL starts from, and the words a tokenizer must know.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from assets.chat.arithmetic import ArithmeticSpec, arithmetic_problems, check_arithmetic
from assets.chat.facts_questions import FactsQuestionSpec, check_facts, facts_questions
from assets.chat.format import assistant_message
from assets.chat.instructions import InstructionSpec, check_instructions, instruction_problems
from assets.chat.task_table import SPLITS, TASK_COLUMNS

__all__ = [
    "SPLITS",
    "TASK_COLUMNS",
    "ArithmeticSpec",
    "FactsQuestionSpec",
    "InstructionSpec",
    "arithmetic_problems",
    "facts_questions",
    "instruction_problems",
    "check_answer",
    "score_answers",
    "verifiable_reward",
    "conversation",
    "prompt_messages",
    "task_words",
]

CHECKERS = {"arithmetic": check_arithmetic, "facts": check_facts, "instructions": check_instructions}


def check_answer(row: dict | pd.Series, answer: str | None) -> bool:
    """Is `answer` (the assistant's final answer text) right for this task row? None counts as wrong (so does
    the NaN that pandas puts in place of a None in a frame built from rows)."""
    task = row["task"]
    if task not in CHECKERS:
        raise ValueError(f"row.task must be one of {list(CHECKERS)}, got {task!r}")
    return isinstance(answer, str) and CHECKERS[task](row, answer)


def score_answers(rows: pd.DataFrame, answers: Sequence[str | None]) -> np.ndarray:
    """check_answer over aligned rows and answers, as a bool array."""
    if len(rows) != len(answers):
        raise ValueError(f"score_answers: {len(rows)} rows but {len(answers)} answers")
    return np.array(
        [check_answer(row, a) for (_, row), a in zip(rows.iterrows(), answers, strict=True)], dtype=bool
    )


def verifiable_reward(rows: pd.DataFrame, answers: Sequence[str | None]) -> np.ndarray:
    """The RL reward of the verifiable-rewards recipe: 1.0 for a right answer, 0.0 otherwise."""
    return score_answers(rows, answers).astype(np.float64)


def prompt_messages(row: dict | pd.Series) -> list[dict]:
    """The problem as a conversation to answer (system if any, then user)."""
    return json.loads(row["messages"])


def conversation(row: dict | pd.Series, *, with_reasoning: bool = True) -> list[dict]:
    """The problem and its worked solution as a full conversation, ready for SFT.

    with_reasoning=False keeps the reasoning part empty (an "answer directly" baseline).
    """
    reasoning = str(row["reasoning"]) if with_reasoning else ""
    return [*prompt_messages(row), assistant_message(reasoning, str(row["answer"]))]


def task_words(*frames: pd.DataFrame) -> list[str]:
    """Every whitespace-separated word in the text columns of the task tables, sorted.

    With a word-level tokenizer built over these (plus any corpus vocabulary), every task text is tokenised
    without <unk>.
    """
    found: set[str] = set()
    for frame in frames:
        for column in ("system", "prompt", "reasoning", "answer"):
            for text in frame[column].astype(str):
                found.update(text.split())
    return sorted(found)
