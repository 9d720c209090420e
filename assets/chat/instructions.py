"""Instruction following under a system message: format constraints that a program can check.

Each problem is a question from another task world (its user message, reasoning and answer kept) asked
under a system message that constrains the form of the answer:

- "upper_case":  "answer in upper case ."                  -> every letter of the answer is upper case;
- "n_words":     "answer in exactly N words ."            -> the answer has exactly N words;
- "end_word":    "end your answer with the word W ."       -> the last word is W;
- "start_word":  "begin your answer with the word W ."     -> the first word is W.

The reference answer obeys the constraint and still carries the base answer ("n_words" pads it with a
lead-in, "the answer is V"). `check_constraint` judges the form alone (what an instruction-hierarchy
study scores); `check_instructions` asks for the form and the base answer, so it cannot be passed by
format alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assets.chat.task_table import TASK_COLUMNS, task_row, words

TASK = "instructions"
CONSTRAINT_KINDS = ("upper_case", "n_words", "end_word", "start_word")
MARKER_WORDS = ("done", "indeed", "please", "okay")
LEAD_IN = ("the", "answer", "is")
MAX_EXTRA_WORDS = len(LEAD_IN)


@dataclass(frozen=True)
class InstructionSpec:
    """seed: draws the constraint of each problem; kinds: which constraints to use."""

    seed: int = 0
    kinds: tuple[str, ...] = CONSTRAINT_KINDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        unknown = [k for k in self.kinds if k not in CONSTRAINT_KINDS]
        if not self.kinds or unknown:
            raise ValueError(
                f"InstructionSpec.kinds must be a non-empty subset of {list(CONSTRAINT_KINDS)}, "
                f"got {list(self.kinds)!r}"
            )


def constrain(base_answer: str, kind: str, rng: np.random.Generator) -> tuple[str, dict, str]:
    """(system message, constraint JSON dict, reference answer) for one base answer under `kind`."""
    base = base_answer.split()
    if kind == "upper_case":
        return "answer in upper case .", {"kind": kind}, base_answer.upper()
    if kind == "n_words":
        extra = int(rng.integers(0, MAX_EXTRA_WORDS + 1))
        n = len(base) + extra
        reference = " ".join(list(LEAD_IN[MAX_EXTRA_WORDS - extra :]) + base)
        return f"answer in exactly {n} words .", {"kind": kind, "n": n}, reference
    word = MARKER_WORDS[int(rng.integers(len(MARKER_WORDS)))]
    if kind == "end_word":
        return (
            f"end your answer with the word {word} .",
            {"kind": kind, "word": word},
            f"{base_answer} {word}",
        )
    if kind == "start_word":
        return (
            f"begin your answer with the word {word} .",
            {"kind": kind, "word": word},
            f"{word} {base_answer}",
        )
    raise ValueError(f"constraint kind must be one of {list(CONSTRAINT_KINDS)}, got {kind!r}")


def instruction_problems(base: pd.DataFrame, spec: InstructionSpec) -> pd.DataFrame:
    """Every row of `base` (a task table) asked again under a system constraint; splits are kept.

    "upper_case" is only drawn for answers that have letters (upper-casing "13" would be no constraint).
    """
    missing = [c for c in TASK_COLUMNS if c not in base.columns]
    if missing:
        raise ValueError(f"instruction_problems: base is missing columns {missing}")
    rng = np.random.default_rng([spec.seed, 18, 3])
    rows = []
    for _, row in base.iterrows():
        kinds = [k for k in spec.kinds if k != "upper_case" or any(c.isalpha() for c in row["answer"])]
        kinds = kinds or [k for k in spec.kinds if k != "upper_case"] or ["end_word"]
        kind = kinds[int(rng.integers(len(kinds)))]
        system, constraint, reference = constrain(str(row["answer"]), kind, rng)
        constraint["base_answer"] = str(row["answer"])
        new = task_row(
            TASK,
            kind,
            row["prompt"],
            row["reasoning"],
            reference,
            int(row["n_steps"]),
            system=system,
            constraint=constraint,
        )
        new["split"] = row["split"]
        new["task_id"] = str(row["task_id"]).replace(str(row["task"]), TASK, 1)
        rows.append(new)
    return pd.DataFrame(rows, columns=TASK_COLUMNS).astype({"n_steps": np.int64})


def check_constraint(constraint: dict | str, answer: str) -> bool:
    """Does `answer` obey the constraint (form only)?"""
    c = json.loads(constraint) if isinstance(constraint, str) else constraint
    given = str(answer).split()
    kind = c.get("kind")
    if kind == "upper_case":
        return any(ch.isalpha() for ch in answer) and answer == answer.upper()
    if kind == "n_words":
        return len(given) == int(c["n"])
    if kind == "end_word":
        return bool(given) and given[-1] == c["word"]
    if kind == "start_word":
        return bool(given) and given[0] == c["word"]
    raise ValueError(f"constraint kind must be one of {list(CONSTRAINT_KINDS)}, got {kind!r}")


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def check_instructions(row: dict | pd.Series, answer: str) -> bool:
    """The constraint is obeyed and the base answer's words appear in order (case aside)."""
    constraint = json.loads(row["constraint"])
    return check_constraint(constraint, answer) and _contains(words(answer), words(constraint["base_answer"]))
