"""Responders the battery asks: a registered chat model in-process, and the rows that key every result.

`model_responder(model, tokenizer, budget=...)` answers conversations with `assets.chat.budget`'s generation
under a reasoning budget (a token count or an effort level), greedy by default, through the tokenizer's chat
template. A conversation whose prompt leaves no room for an answer within the model's positions is not sent
to the model: it is answered "" and its messages are recorded in `responder.unanswered`, so the caller can
leave those items out of the aggregates (`answered` False) rather than grade an empty answer as safe. An
endpoint that rejects a conversation (HTTP 4xx, e.g. longer than its context) or fails on it (HTTP 5xx) has
not answered either: the row keeps the endpoint's message in `request_error`, outcome "rejected" or "failed"
(neither an answer to grade nor a refusal), answered=False; `request_counts` counts them per responder.
A conversation that fits only with a smaller reasoning budget gets its own largest budget that fits (in
the same batch as the others: a per-conversation budget, not the budget of the longest prompt beside it);
each reply's "applied_budget" says which budget it got, and the battery records it.

`vocabulary_coverage` says how much of the suite a word-level tokenizer can read: the share of the eval
items' words that are out of its vocabulary (they become <unk>) and which words those are.

Every result row is keyed by who answered (KEY_COLUMNS): `responder` is "model" (a registered model, by its
`model_uri`), "endpoint" (any OpenAI-compatible endpoint, by `endpoint` + `model`) or "reference" (the
policy oracle and the degenerate scripts: always-comply, always-refuse, always-abstain, empty; labelled as
such: they are the scale, not models). A row whose answer is empty (outcome "empty") is marked
answered=False like a prompt that did not fit: an empty generation is no answer, not a safe one.

Provenance (PROVENANCE_COLUMNS): every row says which run evaluated it (`evaluated_run_id`) and when
(`evaluated_at`). `carry_forward` keeps an endpoint's most recent rows when a later run re-evaluates the
registered models without it (`reprolab evaluate` writes endpoint rows outside the graph; the nightly run
must not drop them), and `replace_rows` replaces a responder's rows when it is evaluated again.
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
PROVENANCE_COLUMNS = ["evaluated_run_id", "evaluated_at"]
REQUEST_OUTCOMES = {"rejected": "the endpoint refused the request (HTTP 4xx: e.g. a prompt too long for it)",
                    "failed": "the endpoint failed on the request (HTTP 5xx)"}
# statuses that concern the endpoint as a whole (key, model name, rate limit): the evaluation stops there
ENDPOINT_STATUSES = (401, 403, 404, 429)


def model_responder(model: Any, tokenizer: Any, *, budget: str | int = 16, max_answer_tokens: int = 16,
                    temperature: float = 0.0, batch_size: int = 32, seed: int = 0) -> Callable:
    """A `respond(messages_batch)` over an in-process chat model (module docstring); `.unanswered` collects the
    messages JSON of conversations that did not fit the model's positions."""
    from assets.chat.budget import generate_with_budget, reasoning_budget
    from assets.chat.format import prompt_ids

    requested = reasoning_budget(budget)
    positions = getattr(model.config, "max_position_embeddings", None) or 10**9
    room = 2 + max_answer_tokens + 1  # close, answer marker, answer, end

    def respond(batch: list[list[dict]]) -> list[dict]:
        lengths = [len(prompt_ids(tokenizer, messages)) for messages in batch]
        # each prompt its own largest budget that fits, up to the one asked; < 0: no room for an answer
        budgets = [min(requested, positions - n - room) for n in lengths]
        asked = [i for i, b in enumerate(budgets) if b >= 0]
        out: list[dict] = [{"content": "", "reasoning": "", "finish_reason": ""}] * len(batch)
        if asked:
            samples = generate_with_budget(model, tokenizer, [batch[i] for i in asked], [budgets[i] for i in asked],
                                           temperature=temperature, max_answer_tokens=max_answer_tokens,
                                           batch_size=batch_size, seed=seed)
            for i, a, r, forced, b in zip(asked, samples["answer"], samples["reasoning"], samples["forced"],
                                          samples["budget"], strict=True):
                # the end was forced when the answer reached its cap: OpenAI calls that "length"
                out[i] = {"content": a if isinstance(a, str) else "", "reasoning": r,
                          "finish_reason": "length" if len(forced) and forced[-1] else "stop", "applied_budget": int(b)}
        respond.unanswered.update(json.dumps(batch[i], sort_keys=True) for i, b in enumerate(budgets) if b < 0)
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
    out["request_error"] = ""
    return out


def run_model(respond: Callable, items: pd.DataFrame, *, model: str, model_uri: str, splits=("eval",),
              batch_size: int = 32) -> pd.DataFrame:
    """The battery over an in-process responder (from `model_responder`), keyed by model_uri; items whose
    prompt did not fit the model are marked answered=False."""
    results, _ = run_battery(respond, items, model=model, splits=tuple(splits), batch_size=batch_size)
    asked = _conversations(results, items)
    return keyed(results, responder="model", model=model, model_uri=model_uri,
                 answered=~asked.isin(getattr(respond, "unanswered", set())))


def _conversations(results: pd.DataFrame, items: pd.DataFrame) -> pd.Series:
    """Each result row's conversation as the responders record it (messages JSON, keys sorted)."""
    by_id = items.set_index("item_id")["messages"].map(lambda m: json.dumps(json.loads(m), sort_keys=True))
    return results["item_id"].map(by_id)


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
    and model id; `request` goes to `client.chat` (max_tokens, reasoning_budget, reasoning_effort, ...).
    A request the endpoint rejects (4xx) or fails on (5xx) is no answer: its row gets the endpoint's message
    in `request_error`, outcome "rejected" / "failed" and answered=False. Errors that concern the endpoint as
    a whole (connection, key, unknown model, rate limit: ENDPOINT_STATUSES) propagate. Every request goes
    through one client (`client`, else one opened for the run and closed at its end)."""
    from assets.chat.client import opened, resolved
    from assets.safety.battery import endpoint_responder

    with opened(endpoint, client) as client:  # one client for the run; opened here: closed at the end
        endpoint = resolved(endpoint, client)  # the model id, listed once
        return _run_endpoint(endpoint, endpoint_responder(endpoint, client=client, **request), items, splits)


def _run_endpoint(endpoint: Any, ask: Callable, items: pd.DataFrame, splits: Sequence[str]) -> pd.DataFrame:
    import openai

    name, errors = endpoint.model, {}

    def respond(batch: list[list[dict]]) -> list:
        out = []
        for messages in batch:
            try:
                out.append(ask([messages])[0])
            except openai.APIStatusError as exc:
                if exc.status_code in ENDPOINT_STATUSES:
                    raise
                errors[json.dumps(messages, sort_keys=True)] = f"HTTP {exc.status_code}: {_error_message(exc)}"
                out.append("")
        return out

    results, _ = run_battery(respond, items, model=name, splits=tuple(splits))
    asked = _conversations(results, items)
    out = keyed(results, responder="endpoint", model=name, endpoint=endpoint.base_url, answered=~asked.isin(errors))
    out["request_error"] = [errors.get(key, "") for key in asked]
    return mark_request_errors(out)


def _error_message(exc: Any) -> str:
    """The endpoint's own message of an `openai.APIStatusError` (the OpenAI error body), else the exception's."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", None) or exc).splitlines()[0]


def mark_request_errors(results: pd.DataFrame) -> pd.DataFrame:
    """Rows with a `request_error` set as no answer: outcome "rejected" (HTTP 4xx) or "failed" (anything else),
    score 0, answered=False (again after a regrading, e.g. benchmarks.graded_benchmarks, which sees only an
    empty response)."""
    if "request_error" not in results.columns:
        return results.assign(request_error="")
    out = results.copy()
    out["request_error"] = out["request_error"].fillna("").astype(str)
    bad = out["request_error"] != ""
    out.loc[bad, "outcome"] = np.where(out.loc[bad, "request_error"].str.startswith("HTTP 4"), "rejected", "failed")
    out.loc[bad, ["answered", "refused", "abstained", "correct"]] = False
    out.loc[bad, "score"] = 0.0
    return out


def request_counts(results: pd.DataFrame) -> pd.DataFrame:
    """Per responder (KEY_COLUMNS): items asked, answered (a non-empty answer), empty (a reply without one),
    rejected, failed (no reply: request_error), and the first request error."""
    errors = results["request_error"] if "request_error" in results else pd.Series("", index=results.index)
    rows = []
    for key, part in results.groupby(KEY_COLUMNS, sort=False):
        first = errors[part.index][errors[part.index].fillna("") != ""]
        rows.append({**dict(zip(KEY_COLUMNS, key, strict=True)), "asked": len(part),
                     "answered": int(part["answered"].sum()), "empty": int((part["outcome"] == "empty").sum()),
                     "rejected": int((part["outcome"] == "rejected").sum()),
                     "failed": int((part["outcome"] == "failed").sum()),
                     "first_error": str(first.iloc[0]) if len(first) else ""})
    return pd.DataFrame(rows, columns=[*KEY_COLUMNS, "asked", "answered", "empty", "rejected", "failed",
                                       "first_error"])


def system_card(results: pd.DataFrame) -> pd.DataFrame:
    """The card's table per responder (CARD_COLUMNS) over the items each responder answered, plus
    coverage/answered_rate: the share of the items it answered (n: every item). goodness@0.1 reads only
    the jailbreak requests whose every family was answered (jailbreak/goodness_request_coverage: their
    share, n: the requests); for an endpoint, coverage/request_error_rate: the share of requests it rejected or
    failed on. Where the results carry PROVENANCE_COLUMNS, each responder's rows of the card carry its latest
    evaluated_at and that run's id. Items from user benchmark files (`assets.safety.benchmarks`) are reported apart, with their benchmark's own metrics."""
    from assets.safety.benchmarks import BENCHMARKS, benchmark_table

    frames, provenance = [], [c for c in PROVENANCE_COLUMNS if c in results.columns]
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
        if key[0] == "endpoint":  # requests the endpoint rejected or failed on: no answer, not a refusal
            table.loc[len(table)] = ["coverage", "request_error_rate",
                                     float(rows["outcome"].isin(list(REQUEST_OUTCOMES)).mean()), len(rows)]
        for name, value in zip(KEY_COLUMNS, key, strict=True):
            table[name] = value
        if provenance:  # when, and by which run, this responder's latest rows were evaluated
            latest = rows.loc[rows["evaluated_at"].idxmax()] if "evaluated_at" in rows else rows.iloc[0]
            for name in provenance:
                table[name] = latest[name]
        frames.append(table)
    columns = [*CARD_COLUMNS, *provenance]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


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


def stored_with_provenance(stored: pd.DataFrame, lineage_columns: Sequence[str]) -> pd.DataFrame | None:
    """A stored safety_results table (read with its lineage columns) as results rows without them, each row
    stamped with the run that wrote the table where it carries no provenance of its own (tables written before
    evaluated_run_id existed); None for an empty table."""
    if not len(stored):
        return None
    return with_provenance(stored.drop(columns=list(lineage_columns)), str(stored["run_id"].iloc[0]),
                           stored["materialized_at"].iloc[0])


def with_provenance(results: pd.DataFrame, run_id: str, evaluated_at: Any) -> pd.DataFrame:
    """`results` with PROVENANCE_COLUMNS, filled with `run_id` / `evaluated_at` (a time, UTC) where they are
    missing (new rows; a stored table written before the columns existed gets the run that wrote it); rows
    that carry them keep theirs."""
    out = results.copy()
    at = pd.Timestamp(evaluated_at)
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    run_ids = out["evaluated_run_id"] if "evaluated_run_id" in out else pd.Series(None, index=out.index, dtype=object)
    out["evaluated_run_id"] = run_ids.where(run_ids.notna() & (run_ids.astype(str) != ""), run_id).astype(str)
    times = pd.to_datetime(out["evaluated_at"], utc=True) if "evaluated_at" in out else \
        pd.Series(pd.NaT, index=out.index, dtype="datetime64[us, UTC]")
    out["evaluated_at"] = times.fillna(at).astype("datetime64[us, UTC]")
    return out


def carry_forward(previous: pd.DataFrame | None, new: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`new` plus the endpoint rows of `previous` whose endpoint (endpoint + model) `new` does not evaluate
    again, with their own provenance: (the table, the carried rows). Model and reference rows are never
    carried: a run re-evaluates every registered model and reference."""
    if previous is None or previous.empty:
        return new.reset_index(drop=True), new.iloc[:0]
    endpoints = previous[previous["responder"] == "endpoint"]
    table = replace_rows(endpoints, new)
    carried = table.iloc[: len(table) - len(new)]
    return pd.concat([new, carried], ignore_index=True), carried.reset_index(drop=True)


def provenance_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows per responder (endpoint, model) and the run that evaluated them (evaluated_run_id, evaluated_at)."""
    keys = ["endpoint", "model", *PROVENANCE_COLUMNS]
    return rows.astype({"evaluated_at": str}).groupby(keys, sort=False).size().reset_index(name="rows") \
        if len(rows) else pd.DataFrame(columns=[*keys, "rows"])
