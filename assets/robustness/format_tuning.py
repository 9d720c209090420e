"""The defender's clean format tuning: the chat model taught the study's conversation shape, on clean tasks.

The chat room's models were trained on [system?, user] conversations only. Asked the same arithmetic with
the study's developer message and an (even empty) `data` message, chat-rl's demo accuracy at reasoning
budget 32 fell from 0.50 to 0.03 (40 test problems): the shape alone breaks it, before any attack. So the
defender is fine-tuned briefly on the *train* problems of every task written in the study's shape
([system, user, data] with an empty or benign data message: a true sentence about someone from the facts
world), optionally mixed with the original shape (`original_share`). No adversarial example is ever shown:
the data is empty or harmless information, as the paper's defenders saw no attacks in training.

The demo's tuning length (`DefenderConfig.max_steps`) is a fixed default, but it was once picked among four
settings by clean accuracy on *test* problems, the attacked ones among them (the findings' post_hoc says so);
any new choice of these settings must be made on the validation split (`format_conversations(..., "validation")`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.chat.format import assistant_message
from assets.chat.tasks import conversation as chat_conversation
from assets.robustness.items import AMBIGUOUS_SYSTEM, UNAMBIGUOUS_SYSTEM, base_rows, conversation


def benign_sentences(facts: pd.DataFrame, split: str) -> list[str]:
    """True one-fact sentences from the facts questions' worked solutions (single-hop rows)."""
    rows = facts[(facts["split"] == split) & (facts["kind"] == "single_hop")]
    return sorted(set(rows["reasoning"].astype(str)))


def format_conversations(frames: dict[str, pd.DataFrame], split: str, *, benign_share: float = 0.5,
                         original_share: float = 0.0, seed: int = 0) -> list[list[dict]]:
    """Every `split` problem of the three tasks as a full conversation in the study's shape (empty data, or
    a benign sentence with probability `benign_share`), plus an `original_share` of them in the chat room's
    own shape. `frames` as for `items.attack_items`."""
    if not 0.0 <= benign_share <= 1.0 or not 0.0 <= original_share <= 1.0:
        raise ValueError(f"benign_share and original_share must be in [0, 1], got {benign_share}, {original_share}")
    rng = np.random.default_rng([seed, 21, 9])
    benign = benign_sentences(frames["facts"], split)
    out = []
    for task, frame in frames.items():
        system = AMBIGUOUS_SYSTEM if task == "ambiguous" else UNAMBIGUOUS_SYSTEM
        for _, row in base_rows(task, frame, split).iterrows():
            data = benign[int(rng.integers(len(benign)))] if benign and rng.random() < benign_share else ""
            item = {"system": system, "prompt": row["prompt"]}
            out.append([*conversation(item, data), assistant_message(str(row["reasoning"]), str(row["answer"]))])
            if task != "ambiguous" and rng.random() < original_share:
                out.append(chat_conversation(row))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def fitting(tokenizer, conversations: list[list[dict]], context_length: int) -> list[list[dict]]:
    """The conversations whose whole encoding fits the model's positions (SFT refuses longer ones)."""
    from assets.chat.format import encode_conversation

    return [c for c in conversations if len(encode_conversation(tokenizer, c)[0]) <= context_length]
