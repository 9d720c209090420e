"""What the chat room's Dagster side shows of its tables and tokenizer, as plain functions: a task table's
counts and example, the chat template rendered, accuracy by budget setting."""

from __future__ import annotations

from typing import Any

import pandas as pd


def problems_by_split(frame: pd.DataFrame) -> dict[str, int]:
    """Problems per split, as `<split>_problems`."""
    return {f"{split}_problems": int(n) for split, n in frame.groupby("split").size().to_dict().items()}


def problems_by_kind(frame: pd.DataFrame) -> pd.DataFrame:
    """Problems per kind and number of steps."""
    return frame.groupby(["kind", "n_steps"]).size().rename("problems").reset_index()


def worked_example(frame: pd.DataFrame) -> str:
    """The first problem in markdown: **prompt** -> worked solution => **answer**."""
    first = frame.iloc[0]
    return f"**{first['prompt']}** -> {first['reasoning']} => **{first['answer']}**"


def template_example(tokenizer: Any) -> str:
    """The chat template rendered on a system and a user turn, up to the assistant's generation prompt."""
    return "`" + tokenizer.apply_chat_template([{"role": "system", "content": "answer in upper case ."},
                                                {"role": "user", "content": "compute 1 + 2"}],
                                               tokenize=False, add_generation_prompt=True) + "`"


def accuracy_by_setting(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per model and task (rows) and budget or effort setting (columns)."""
    return table.pivot_table(index=["model", "task"], columns="setting", values="accuracy", sort=False).reset_index()
