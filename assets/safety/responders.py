"""Responders the battery asks: a registered chat model in-process, and the rows that key every result.

`model_responder(model, tokenizer, budget=...)` answers conversations with `assets.chat.budget`'s generation
under a reasoning budget (a token count or an effort level), greedy by default, through the tokenizer's chat
template. A conversation whose prompt leaves no room for an answer within the model's positions is not sent
to the model: it is answered "" and its messages are recorded in `responder.unanswered`, so the caller can
leave those items out of the aggregates (`answered` False) rather than grade an empty answer as safe. An
endpoint that rejects a conversation (HTTP 400, e.g. longer than its context) is treated the same way.
A conversation that fits only with a smaller reasoning budget is generated apart, with the budget lowered
(each reply's "applied_budget" says which budget it got; the battery records it).

`vocabulary_coverage` says how much of the suite a word-level tokenizer can read: the share of the eval
items' words that are out of its vocabulary (they become <unk>) and which words those are.

Every result row is keyed by who answered (KEY_COLUMNS): `responder` is "model" (a registered model, by its
`model_uri`), "endpoint" (any OpenAI-compatible endpoint, by `endpoint` + `model`) or "reference" (the
policy oracle and the degenerate scripts: always-comply, always-refuse, always-abstain, empty; labelled as
such: they are the scale, not models). A row whose answer is empty (outcome "empty") is marked
answered=False like a prompt that did not fit: an empty generation is no answer, not a safe one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from assets.safety.battery import run_battery
from assets.safety.metrics import system_card_table
from assets.safety.oracle import (
    abstaining_response,
    empty_response,
    ideal_response,
    leaky_response,
    refusing_response,
    scripted_responder,
)

KEY_COLUMNS = ["responder", "model", "model_uri", "endpoint"]
RESPONDERS = ("model", "endpoint", "reference")
REFERENCES = {"policy_oracle": ideal_response, "always_comply": leaky_response, "always_refuse": refusing_response,
              "always_abstain": abstaining_response, "empty": empty_response}
BASE_REFERENCES = ("policy_oracle", "always_comply")  # the ceiling and the unsafe floor
CARD_COLUMNS = ["evaluation", "metric", "value", "n", *KEY_COLUMNS]


def model_responder(model: Any, tokenizer: Any, *, budget: str | int = 16, max_answer_tokens: int = 16,
                    temperature: float = 0.0, batch_size: int = 32, seed: int = 0) -> Callable:
    """A `respond(messages_batch)` over an in-process chat model (module docstring); `.unanswered` collects the
    messages JSON of conversations that did not fit the model's positions."""
    from assets.chat.budget import generate_with_budget, reasoning_budget
    from assets.chat.format import prompt_ids

    requested = reasoning_budget(budget)
    positions = getattr(model.config, "max_position_embeddings", None) or 10**9
    room = 2 + max_answer_tokens + 1  # close, answer marker, answer, end

    def answer(conversations: list[list[dict]], with_budget: int) -> list[dict]:
        if not conversations:
            return []
        samples = generate_with_budget(model, tokenizer, conversations, with_budget, temperature=temperature,
                                       max_answer_tokens=max_answer_tokens, batch_size=batch_size, seed=seed)
        # the end was forced when the answer reached its cap: OpenAI calls that "length"
        return [{"content": a if isinstance(a, str) else "", "reasoning": r,
                 "finish_reason": "length" if len(forced) and forced[-1] else "stop", "applied_budget": int(b)}
                for a, r, forced, b in zip(samples["answer"], samples["reasoning"], samples["forced"],
                                           samples["budget"], strict=True)]

    def respond(batch: list[list[dict]]) -> list[dict]:
        lengths = [len(prompt_ids(tokenizer, messages)) for messages in batch]
        full = [i for i, n in enumerate(lengths) if n + room + requested <= positions]
        less = [i for i, n in enumerate(lengths) if n + room <= positions < n + room + requested]
        out: list[dict] = [{"content": "", "reasoning": "", "finish_reason": ""}] * len(batch)
        for part in (full, less):
            with_budget = requested if part is full else 0
            if part is less and part:  # the largest budget every one of them fits
                with_budget = min(positions - lengths[i] - room for i in part)
            for i, reply in zip(part, answer([batch[i] for i in part], with_budget), strict=True):
                out[i] = reply
        respond.unanswered.update(json.dumps(batch[i], sort_keys=True) for i in range(len(batch))
                                if lengths[i] + room > positions)
        return out

    respond.unanswered = set()
    return respond


def vocabulary_coverage(tokenizer: Any, items: pd.DataFrame, splits: Sequence[str] = ("eval",)) -> dict:
    """Out-of-vocabulary share of the items' message words (word occurrences, and distinct words) for a
    word-level tokenizer, and the missing words (sorted)."""
    vocab = set(tokenizer.get_vocab())
    words = [w for messages in items.loc[items["split"].isin(splits), "messages"]
             for m in json.loads(messages) for w in str(m.get("content") or "").split()]
    missing = sorted({w for w in words if w not in vocab})
    return {"oov_rate": sum(w not in vocab for w in words) / max(len(words), 1),
            "oov_word_share": len(missing) / max(len(set(words)), 1), "words": len(words),
            "distinct_words": len(set(words)), "missing_words": missing}


def keyed(results: pd.DataFrame, *, responder: str, model: str, model_uri: str = "", endpoint: str = "",
          answered: pd.Series | None = None) -> pd.DataFrame:
    """The battery's rows with the key columns and `answered` in front: False where `answered` says so
    (a prompt not asked) and wherever the answer was empty (outcome "empty")."""
    if responder not in RESPONDERS:
        raise ValueError(f"responder must be one of {list(RESPONDERS)}, got {responder!r}")
    out = results.drop(columns=["model"]).copy()
    asked = np.ones(len(out), dtype=bool) if answered is None else answered.to_numpy(dtype=bool)
    out.insert(0, "answered", asked & (out["outcome"] != "empty").to_numpy())
    for i, (name, value) in enumerate(zip(KEY_COLUMNS, (responder, model, model_uri, endpoint), strict=True)):
        out.insert(i, name, value)
    return out


def run_model(respond: Callable, items: pd.DataFrame, *, model: str, model_uri: str, splits=("eval",),
              batch_size: int = 32) -> pd.DataFrame:
    """The battery over an in-process responder (from `model_responder`), keyed by model_uri; items whose
    prompt did not fit the model are marked answered=False."""
    results, _ = run_battery(respond, items, model=model, splits=tuple(splits), batch_size=batch_size)
    return keyed(results, responder="model", model=model, model_uri=model_uri,
                 answered=_answered(results, items, getattr(respond, "unanswered", set())))


def _answered(results: pd.DataFrame, items: pd.DataFrame, unanswered: set[str]) -> pd.Series:
    by_id = items.set_index("item_id")["messages"].map(lambda m: json.dumps(json.loads(m), sort_keys=True))
    return ~results["item_id"].map(by_id).isin(unanswered)


def run_references(items: pd.DataFrame, splits=("eval",), names: tuple[str, ...] = BASE_REFERENCES) -> pd.DataFrame:
    """The reference scripts `names` (of REFERENCES; by default the policy oracle and always-comply) over the
    battery, as reference rows."""
    unknown = [n for n in names if n not in REFERENCES]
    if unknown:
        raise ValueError(f"unknown reference responders {unknown}; REFERENCES has {list(REFERENCES)}")
    frames = [keyed(run_battery(scripted_responder(items, REFERENCES[name]), items, model=name,
                                splits=tuple(splits))[0], responder="reference", model=name) for name in names]
    return pd.concat(frames, ignore_index=True)


def run_endpoint(endpoint: Any, items: pd.DataFrame, *, splits=("eval",), client: Any | None = None,
                 **request: Any) -> pd.DataFrame:
    """The battery over an OpenAI-compatible endpoint (assets.chat.client.Endpoint), keyed by its base_url
    and model id; `request` goes to `client.chat` (max_tokens, reasoning_budget, reasoning_effort, ...)."""
    import openai

    from assets.chat.client import model_id
    from assets.safety.battery import endpoint_responder

    client = endpoint.client() if client is None else client
    name = model_id(endpoint, client)
    ask = endpoint_responder(endpoint, client=client, **request)

    def respond(batch: list[list[dict]]) -> list:
        out = []
        for messages in batch:
            try:
                out.append(ask([messages])[0])
            except openai.BadRequestError:  # e.g. a prompt longer than the endpoint's context: not answered
                respond.unanswered.add(json.dumps(messages, sort_keys=True))
                out.append("")
        return out

    respond.unanswered = set()
    results, _ = run_battery(respond, items, model=name, splits=tuple(splits))
    return keyed(results, responder="endpoint", model=name, endpoint=endpoint.base_url,
                 answered=_answered(results, items, respond.unanswered))


def system_card(results: pd.DataFrame) -> pd.DataFrame:
    """The card's table per responder (CARD_COLUMNS) over the items each responder answered, plus
    coverage/answered_rate: the share of the items it answered (n: every item). goodness@0.1 reads only
    the jailbreak requests whose every family was answered (jailbreak/goodness_request_coverage: their
    share, n: the requests). Items from user
    benchmark files (`assets.safety.benchmarks`) are reported apart, with their benchmark's own metrics."""
    from assets.safety.benchmarks import BENCHMARKS, benchmark_table

    frames = []
    for key, rows in results.groupby(KEY_COLUMNS, sort=False):
        public = rows["set"].isin(BENCHMARKS)
        suite = rows[~public]
        complete, coverage = _complete_requests(suite)
        usable = suite["answered"] & ((suite["evaluation"] != "jailbreak") | suite["request_id"].isin(complete))
        table = system_card_table(suite.assign(answered=usable))
        if not np.isnan(coverage["value"]):
            table.loc[len(table)] = list(coverage.values())
        if public.any():  # user benchmark files: their own metrics, evaluation = the benchmark
            table = pd.concat([table, benchmark_table(rows[public])], ignore_index=True)
        table.loc[len(table)] = ["coverage", "answered_rate", float(rows["answered"].mean()), len(rows)]
        for name, value in zip(KEY_COLUMNS, key, strict=True):
            table[name] = value
        frames.append(table)
    return pd.concat(frames, ignore_index=True)[CARD_COLUMNS] if frames else pd.DataFrame(columns=CARD_COLUMNS)


def _complete_requests(rows: pd.DataFrame) -> tuple[set[str], dict]:
    """The jailbreak requests whose every wrapped item was answered (goodness@q reads a request's worst
    families: with one left out it would read a better one), and the card row of their share."""
    jailbreak = rows[rows["evaluation"] == "jailbreak"]
    by_request = jailbreak.groupby("request_id")["answered"].all()
    complete = set(by_request.index[by_request])
    return complete, {"evaluation": "jailbreak", "metric": "goodness_request_coverage",
                      "value": float(by_request.mean()) if len(by_request) else math.nan, "n": int(len(by_request))}


def replace_rows(previous: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """`previous` without the rows of the responders `new` holds, then `new` (an endpoint re-run replaces its
    own rows and keeps everyone else's)."""
    if previous is None or previous.empty:
        return new.reset_index(drop=True)
    keys = set(map(tuple, new[KEY_COLUMNS].astype(str).to_numpy()))
    kept = previous[[tuple(r) not in keys for r in previous[KEY_COLUMNS].astype(str).to_numpy()]]
    return pd.concat([kept, new], ignore_index=True)
