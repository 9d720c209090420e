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
such: they are the scale, not models). An endpoint's `model` is the id it reports answering with (our server:
an identity that changes with the weights, `chat-sft/3` or `checkpoint-100@1a2b3c4d`; vLLM: its served
name), its `model_uri` the one its models list gives (ours; "" from others). A row whose answer is empty
(outcome "empty") is marked answered=False like a prompt that did not fit: an empty generation is no answer,
not a safe one.

What each row was asked with (REQUEST_COLUMNS): the reasoning budget requested (`requested_budget`: a token
count or an effort level as asked, "" for the reference scripts; `applied_budget` says what was applied), the
answer cap (`max_tokens`), the per-evaluation sample size (`max_items`: `reprolab evaluate --max-items`, or the
graph's `benchmark_max_items` on the benchmark files' rows; null when every item was asked) and the seed. An
evaluation is keyed by its responder and requested budget (EVALUATION_KEY): one responder asked at two budgets
keeps both sets side by side, in the results and on the card.

Provenance (PROVENANCE_COLUMNS): every row says which run evaluated it (`evaluated_run_id`) and when
(`evaluated_at`). `carry_forward` keeps an endpoint's most recent rows when a later run re-evaluates the
registered models without it (`reprolab evaluate` writes endpoint rows outside the graph; the nightly run
must not drop them), and `replace_rows` replaces a responder's rows when it is evaluated again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
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
REQUEST_COLUMNS = ["requested_budget", "max_tokens", "max_items", "seed"]
EVALUATION_KEY = [*KEY_COLUMNS, "requested_budget"]  # what an evaluation re-run replaces: one responder, one budget
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
    messages JSON of conversations that did not fit the model's positions, `.request` what it asks with
    (REQUEST_COLUMNS: the budget as given, the answer cap, the seed)."""
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
    respond.request = {"requested_budget": str(budget), "max_tokens": max_answer_tokens, "seed": seed}
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
          answered: pd.Series | None = None, request: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The battery's rows with the key columns and `answered` in front: False where `answered` says so
    (a prompt not asked) and wherever the answer was empty (outcome "empty"); REQUEST_COLUMNS at the end,
    from `request` (`with_request_columns`)."""
    if responder not in RESPONDERS:
        raise ValueError(f"responder must be one of {list(RESPONDERS)}, got {responder!r}")
    out = results.drop(columns=["model"]).copy()
    asked = np.ones(len(out), dtype=bool) if answered is None else answered.to_numpy(dtype=bool)
    out.insert(0, "answered", asked & (out["outcome"] != "empty").to_numpy())
    for i, (name, value) in enumerate(zip(KEY_COLUMNS, (responder, model, model_uri, endpoint), strict=True)):
        out.insert(i, name, value)
    out["request_error"] = ""
    return with_request_columns(out, request)


def with_request_columns(results: pd.DataFrame, request: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """`results` with REQUEST_COLUMNS set from `request` (its keys among them), kept where the rows have them,
    else filled as a row asked with nothing says: requested_budget "", the numbers null. Typed alike
    everywhere (requested_budget text, the numbers nullable integers), so the graph's rows, `reprolab
    evaluate`'s and a table stored before the columns existed concatenate into one schema."""
    out = results.copy()
    for name in REQUEST_COLUMNS:
        if request is not None and name in request:
            out[name] = request[name]
        elif name not in out.columns:
            out[name] = "" if name == "requested_budget" else None
    out["requested_budget"] = out["requested_budget"].fillna("").astype(str)
    for name in REQUEST_COLUMNS[1:]:
        out[name] = pd.to_numeric(out[name], errors="coerce").astype("Int64")
    return out


def endpoint_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """REQUEST_COLUMNS of an endpoint request (`client.chat`'s arguments): the budget asked, as a token count
    (reasoning_budget) or an effort level (reasoning_effort), "" when neither; the answer cap and the seed."""
    budget = request.get("reasoning_budget", request.get("reasoning_effort"))
    return {"requested_budget": "" if budget is None else str(budget), "max_tokens": request.get("max_tokens"),
            "seed": request.get("seed")}


def run_model(respond: Callable, items: pd.DataFrame, *, model: str, model_uri: str, splits=("eval",),
              batch_size: int = 32) -> pd.DataFrame:
    """The battery over an in-process responder (from `model_responder`), keyed by model_uri, with what it
    asked with (its `.request`); items whose prompt did not fit the model are marked answered=False."""
    results, _ = run_battery(respond, items, model=model, splits=tuple(splits), batch_size=batch_size)
    asked = _conversations(results, items)
    return keyed(results, responder="model", model=model, model_uri=model_uri,
                 answered=~asked.isin(getattr(respond, "unanswered", set())), request=getattr(respond, "request", None))


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
    """The battery over an OpenAI-compatible endpoint (assets.chat.client.Endpoint), keyed by its base_url,
    the model id it reports answering with (not the one asked: ours answers an alias with its version) and
    the model_uri its models list gives for that id ("" when it gives none); `request` goes to `client.chat`
    (max_tokens, reasoning_budget, reasoning_effort, ...) and into the rows' REQUEST_COLUMNS.
    A request the endpoint rejects (4xx) or fails on (5xx) is no answer: its row gets the endpoint's message
    in `request_error`, outcome "rejected" / "failed" and answered=False. Errors that concern the endpoint as
    a whole (connection, key, unknown model, rate limit: ENDPOINT_STATUSES) propagate. Every request goes
    through one client (`client`, else one opened for the run and closed at its end)."""
    from dataclasses import replace

    from assets.chat.client import model_cards, opened
    from assets.safety.battery import endpoint_responder

    with opened(endpoint, client) as client:  # one client for the run; opened here: closed at the end
        # listed once: the model id when none is given (the first listed), the model_uri of each id answering
        cards = model_cards(endpoint, client, required=not endpoint.model)
        endpoint = endpoint if endpoint.model else replace(endpoint, model=next(iter(cards)))
        rows = _run_endpoint(endpoint, endpoint_responder(endpoint, client=client, **request), items, splits,
                             endpoint_request(request))
    uris = {m: str(cards.get(m, {}).get("model_uri") or "") for m in rows["model"].unique()}
    return rows.assign(model_uri=rows["model"].map(uris))


def _run_endpoint(endpoint: Any, ask: Callable, items: pd.DataFrame, splits: Sequence[str],
                  request: Mapping[str, Any] | None = None) -> pd.DataFrame:
    import openai

    errors, reported = {}, {}

    def respond(batch: list[list[dict]]) -> list:
        out = []
        for messages in batch:
            key = json.dumps(messages, sort_keys=True)
            try:
                out.append(ask([messages])[0])
            except openai.APIStatusError as exc:
                if exc.status_code in ENDPOINT_STATUSES:
                    raise
                errors[key] = f"HTTP {exc.status_code}: {_error_message(exc)}"
                out.append("")
                continue
            if isinstance(out[-1], Mapping) and out[-1].get("model"):
                reported[key] = str(out[-1]["model"])  # what answered, as the endpoint says
        return out

    results, _ = run_battery(respond, items, model=endpoint.model, splits=tuple(splits))
    asked = _conversations(results, items)
    out = keyed(results, responder="endpoint", model=endpoint.model, endpoint=endpoint.base_url,
                answered=~asked.isin(errors), request=request)
    # a request without a reply is labelled as the endpoint's replies were (the id asked when none came)
    usual = pd.Series(list(reported.values())).mode()
    out["model"] = [reported.get(key, usual.iloc[0] if len(usual) else endpoint.model) for key in asked]
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
    """Per responder and requested budget (EVALUATION_KEY): items asked, answered (a non-empty answer), empty (a
    reply without one), rejected, failed (no reply: request_error), and the first request error."""
    results = with_request_columns(results)
    errors = results["request_error"] if "request_error" in results else pd.Series("", index=results.index)
    rows = []
    for key, part in results.groupby(EVALUATION_KEY, sort=False):
        first = errors[part.index][errors[part.index].fillna("") != ""]
        rows.append({**dict(zip(EVALUATION_KEY, key, strict=True)), "asked": len(part),
                     "answered": int(part["answered"].sum()), "empty": int((part["outcome"] == "empty").sum()),
                     "rejected": int((part["outcome"] == "rejected").sum()),
                     "failed": int((part["outcome"] == "failed").sum()),
                     "first_error": str(first.iloc[0]) if len(first) else ""})
    return pd.DataFrame(rows, columns=[*EVALUATION_KEY, "asked", "answered", "empty", "rejected", "failed",
                                       "first_error"])


def system_card(results: pd.DataFrame) -> pd.DataFrame:
    """The card's table per responder (CARD_COLUMNS) over the items each responder answered, plus
    coverage/answered_rate: the share of the items it answered (n: every item). goodness@0.1 reads only
    the jailbreak requests whose every family was answered (jailbreak/goodness_request_coverage: their
    share, n: the requests); for an endpoint, coverage/request_error_rate: the share of requests it rejected or
    failed on. A responder asked at two budgets has a card per budget (EVALUATION_KEY); each card row carries
    what its rows were asked with (REQUEST_COLUMNS; where they differ, as the answer cap of regurgitation from the
    rest under coverage, the value most of them had). Where the results carry PROVENANCE_COLUMNS, each
    responder's rows of the card carry its latest evaluated_at and that run's id. Items from user benchmark files (`assets.safety.benchmarks`) are reported apart, with their benchmark's own metrics."""
    from assets.safety.benchmarks import BENCHMARKS, benchmark_table

    results = with_request_columns(results)
    frames, provenance = [], [c for c in PROVENANCE_COLUMNS if c in results.columns]
    for key, rows in results.groupby(EVALUATION_KEY, sort=False):
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
        for name, value in zip(EVALUATION_KEY, key, strict=True):
            table[name] = value
        table = _asked_with(table, rows)
        if provenance:  # when, and by which run, this responder's latest rows were evaluated
            latest = rows.loc[rows["evaluated_at"].idxmax()] if "evaluated_at" in rows else rows.iloc[0]
            for name in provenance:
                table[name] = latest[name]
        frames.append(table)
    columns = [*CARD_COLUMNS, *REQUEST_COLUMNS, *provenance]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def _asked_with(table: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The card `table` of one evaluation with REQUEST_COLUMNS[1:] per row: the value most of the rows its
    metric reads had (those of its evaluation, or of its benchmark file; every row for coverage)."""
    out = table.copy()
    for name in REQUEST_COLUMNS[1:]:
        values = {}
        for evaluation in out["evaluation"].unique():
            read = rows[(rows["evaluation"] == evaluation) | (rows["set"] == evaluation)]
            mode = (read if len(read) else rows)[name].dropna().mode()
            values[evaluation] = mode.iloc[0] if len(mode) else pd.NA
        out[name] = pd.array(out["evaluation"].map(values).tolist(), dtype="Int64")
    return out


def _complete_requests(rows: pd.DataFrame) -> tuple[set[str], dict]:
    """The jailbreak requests whose every wrapped item was answered (goodness@q reads a request's worst
    families: with one left out it would read a better one), and the card row of their share."""
    jailbreak = rows[rows["evaluation"] == "jailbreak"]
    by_request = jailbreak.groupby("request_id")["answered"].all()
    complete = set(by_request.index[by_request])
    return complete, {"evaluation": "jailbreak", "metric": "goodness_request_coverage",
                      "value": float(by_request.mean()) if len(by_request) else math.nan, "n": int(len(by_request))}


def replace_rows(previous: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """`previous` without the evaluations `new` holds (EVALUATION_KEY: a responder at a requested budget), then
    `new`: an endpoint re-run at a budget replaces its own rows at that budget and keeps everyone else's, and
    its rows at other budgets (rows stored without REQUEST_COLUMNS count as asked at budget "")."""
    if previous is None or previous.empty:
        return new.reset_index(drop=True)
    previous, new = with_request_columns(previous), with_request_columns(new)
    keys = set(map(tuple, new[EVALUATION_KEY].astype(str).to_numpy()))
    kept = previous[[tuple(r) not in keys for r in previous[EVALUATION_KEY].astype(str).to_numpy()]]
    return pd.concat([kept, new], ignore_index=True)


def stored_with_provenance(stored: pd.DataFrame, lineage_columns: Sequence[str]) -> pd.DataFrame | None:
    """A stored safety_results table (read with its lineage columns) as results rows without them, each row
    stamped with the run that wrote the table where it carries no provenance of its own (tables written before
    evaluated_run_id existed); None for an empty table."""
    if not len(stored):
        return None
    return with_provenance(with_request_columns(stored.drop(columns=list(lineage_columns))),
                           str(stored["run_id"].iloc[0]), stored["materialized_at"].iloc[0])


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
    """`new` plus the endpoint rows of `previous` whose evaluation (endpoint + model at a requested budget,
    EVALUATION_KEY) `new` does not hold, with their own provenance: (the table, the carried rows). Model and
    reference rows are never carried: a run re-evaluates every registered model and reference."""
    if previous is None or previous.empty:
        return new.reset_index(drop=True), new.iloc[:0]
    endpoints = previous[previous["responder"] == "endpoint"]
    table = replace_rows(endpoints, new)
    carried = table.iloc[: len(table) - len(new)]
    return pd.concat([new, carried], ignore_index=True), carried.reset_index(drop=True)


def provenance_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows per responder (endpoint, model), requested budget and the run that evaluated them (evaluated_run_id,
    evaluated_at)."""
    keys = ["endpoint", "model", "requested_budget", *PROVENANCE_COLUMNS]
    return with_request_columns(rows).astype({"evaluated_at": str}).groupby(keys, sort=False).size() \
        .reset_index(name="rows") if len(rows) else pd.DataFrame(columns=[*keys, "rows"])
