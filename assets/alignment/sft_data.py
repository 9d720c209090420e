"""From judged candidates to the SFT data of every method: the spec removed, the same prompts and answers.

`sft_table` takes the filter's kept candidate of each prompt and **strips the policy** from its prompt (the
system message the generator saw), so the model must learn to recall the spec rather than read it. Each row
then carries one prompt, one final answer and the reasoning of each method:

- ``deliberative``: the kept chain of thought, policy citations included (deliberative alignment's SFT data);
- ``no_citation``: the same chain of thought with every citation sentence removed (`strip_citations`);
- ``direct``: no reasoning at all (direct SFT on the answers, the paper's main baseline).

Prompts and answers are identical across methods by construction; `check_identical` verifies it on the
conversations actually trained on, by a content hash of each method's prompts and answers
(`prompt_answer_digest`, also recorded with each trained model). `fit_context` drops the prompts whose longest (deliberative) conversation
does not fit the model's positions, for every method at once.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from assets.alignment.generator import strip_citations
from assets.chat.format import assistant_message, encode_conversation
from assets.safety.policy import CLAUSES, render_policy

METHODS = ("deliberative", "no_citation", "direct")
SFT_COLUMNS = ["item_id", "evaluation", "category", "family", "template_id", "expected", "answer_truth",
               "forbidden", "clauses", "request", "meta", "messages", "answer", "reasoning_deliberative",
               "reasoning_no_citation", "reasoning_direct", "error", "candidate"]


def strip_policy(messages: list[dict], policy: str | None = None) -> list[dict]:
    """The conversation without the policy: system messages holding the policy text are removed; raises
    ValueError if a clause of the policy is still present anywhere."""
    policy = render_policy() if policy is None else policy
    kept = [m for m in messages if not (m["role"] == "system" and m["content"] == policy)]
    if policy_in(kept):
        raise ValueError("the policy is still in the prompt after stripping its system message")
    return kept


def policy_in(messages: list[dict]) -> bool:
    """Does any message hold a clause of the policy (its rendered line, or its text)?"""
    lines = render_policy().splitlines()
    texts = [c.text for c in CLAUSES]
    return any(piece in str(m.get("content") or "") for m in messages for piece in (*lines, *texts))


def sft_table(judged: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """One row per kept prompt (SFT_COLUMNS): the prompt without the policy, the final answer, and each
    method's reasoning. `judged` is `keep_best`'s output; `items` the battery's items."""
    kept = judged[judged["kept"].astype(bool)]
    if kept.empty:
        raise ValueError("no candidate was kept: the judge rejected every prompt")
    by_id = items.set_index("item_id")
    rows = []
    for r in kept.itertuples():
        item = by_id.loc[r.item_id]
        prompt = strip_policy(json.loads(r.spec_messages))
        rows.append({"item_id": r.item_id, "evaluation": r.evaluation, "category": r.category,
                     "family": r.family, "template_id": r.template_id, "expected": r.expected,
                     "answer_truth": item["answer"], "forbidden": item["forbidden"], "clauses": item["clauses"],
                     "request": item["request"], "meta": item["meta"], "messages": json.dumps(prompt), "answer": r.answer,
                     "reasoning_deliberative": r.reasoning, "reasoning_no_citation": strip_citations(r.reasoning),
                     "reasoning_direct": "", "error": r.error, "candidate": int(r.candidate)})
    return pd.DataFrame(rows, columns=SFT_COLUMNS)


def prompts_with_policy(table: pd.DataFrame) -> int:
    """How many SFT prompts still hold a clause of the policy (0 when it was stripped everywhere)."""
    return int(sum(policy_in(json.loads(m)) for m in table["messages"]))


def judge_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The table's rows as items for the judge (the item columns under their item names), e.g. RL prompts."""
    return table.assign(answer=table["answer_truth"])


def conversations(table: pd.DataFrame, method: str) -> list[list[dict]]:
    """The SFT conversations of one method: the stripped prompt, then its reasoning and the final answer."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    return [[*json.loads(r.messages), assistant_message(getattr(r, f"reasoning_{method}"), r.answer)]
            for r in table.itertuples()]


def fit_context(table: pd.DataFrame, tokenizer, context_length: int) -> tuple[pd.DataFrame, int]:
    """(rows whose deliberative conversation fits `context_length` tokens, how many were dropped)."""
    fits = [len(encode_conversation(tokenizer, c)[0]) <= context_length
            for c in conversations(table, "deliberative")]
    kept = table[fits].reset_index(drop=True)
    if kept.empty:
        raise ValueError(f"no SFT conversation fits the model's {context_length} positions")
    return kept, int(len(table) - len(kept))


def repeat_comply(table: pd.DataFrame, repeats: int) -> pd.DataFrame:
    """The table with every prompt the policy asks to answer (comply) present `repeats` times: the battery's
    train split is mostly requests to refuse (every jailbreak is one), and this shifts the mix toward answering.
    1 keeps the split as it is (the default); every method gets the same repeated rows."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    comply = table[table["expected"] == "comply"]
    return pd.concat([table, *[comply] * (repeats - 1)], ignore_index=True)


def replay_conversations(task_frames, n: int, seed: int = 0) -> list[list[dict]]:
    """`n` of the starting point's own training conversations (the chat tasks' train split, what chat-sft was
    fine-tuned on, with their worked solutions), drawn without replacement in a seeded order, to replay beside
    every method's safety data: the same conversations for each method, none of them about the policy. 0: none;
    more than the split holds: all of it."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    from assets.chat.study import split_rows
    from assets.chat.tasks import conversation

    rows = split_rows(list(task_frames), "train")
    if n == 0 or rows.empty:
        return []
    picked = np.random.default_rng([seed, 7, 11]).permutation(len(rows))[:n]
    return [conversation(rows.iloc[int(i)]) for i in sorted(picked)]


def prompt_answer_texts(conversations_: list[list[dict]]) -> list[str]:
    """Each conversation's prompt and final answer as one text (the reasoning left out)."""
    return [json.dumps([c[:-1], c[-1]["content"]], sort_keys=True) for c in conversations_]


def prompt_answer_digest(conversations_: list[list[dict]]) -> str:
    """A content hash of the conversations' prompts and final answers, in order, reasoning left out: equal for
    two methods exactly when they train on the same prompts and answers (the digest MLflow records for
    `prompt_answer_texts` as a dataset input, `assets.lm.registration.DatasetInput.of_texts`)."""
    return hashlib.sha256("\x1e".join(prompt_answer_texts(conversations_)).encode()).hexdigest()[:16]


def check_identical(by_method: dict[str, list[list[dict]]]) -> dict:
    """Do every method's conversations have the same prompts and final answers, in the same order (the
    reasoning alone differs)? Counts, each method's `prompt_answer_digest` and how many methods' digests
    differ from the first method's (`methods_differing`; 0 when all share them). It records, never raises, so a
    difference shows in the findings and the asset check instead of stopping the run."""
    methods = list(by_method)
    digests = {m: prompt_answer_digest(c) for m, c in by_method.items()}
    reference = by_method[methods[0]]
    same_length = all(len(c) == len(reference) for c in by_method.values())
    differ = sum(len({c[i][-1]["reasoning"] for c in by_method.values()}) > 1
                 for i in range(len(reference))) if same_length else -1
    return {"conversations": len(reference), "methods": len(methods), "reasoning_differs": differ,
            "methods_differing": sum(d != digests[methods[0]] for d in digests.values()), "digests": digests}
