"""What the safety study's Dagster side shows of its tables, as plain functions: counts per evaluation and
split, the mean score and the card per responder, a model's run numbers, and the findings' scale; how a
registered chat model is asked the battery, and which judge grades the free text (an endpoint, or one of the
registered chat models)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from assets.chat.post_hoc import DEMO_PHRASINGS_POST_HOC, PHRASINGS_POST_HOC, chat_post_hoc  # noqa: F401

DEMO_BUDGET = "32"
BUDGET_POST_HOC = ("demo reasoning budget 32 (was 8) chosen after seeing chat_budget_accuracy: when this was "
                   "chosen on 30 Nov 2026, the chat models' facts accuracy was 0.01 at budget 8, 0.42 at 16, "
                   "0.85 at 32 (they stopped reasoning by ~17 tokens, so 32 cost about the same as 16); this "
                   "run's numbers are in chat_budget_accuracy")


def budget_post_hoc(profile: str, budget: str | None) -> str:
    """The findings' post_hoc note: BUDGET_POST_HOC when the demo ran at DEMO_BUDGET, with the chat models' own
    (`assets.chat.post_hoc.chat_post_hoc`: the data they learn was chosen after seeing results), else that alone."""
    chat = chat_post_hoc(profile)
    if profile == "demo" and budget == DEMO_BUDGET:
        return f"{BUDGET_POST_HOC}; {chat}"
    return chat


def stamp_and_carry(results: pd.DataFrame, previous: pd.DataFrame | None, run_id: str,
                    evaluated_at: Any) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """This run's graded ``results`` (request errors marked) stamped with ``run_id`` and ``evaluated_at``, plus
    the endpoints of ``previous`` (the latest stored table) this run did not ask again, carried forward with their
    own provenance: (the table, rows carried per endpoint or None, the config's endpoints' request counts or
    None)."""
    from assets.safety import responders as r

    new = r.with_provenance(r.mark_request_errors(results), run_id, evaluated_at)
    table, carried = r.carry_forward(previous, new)
    endpoints = new[new["responder"] == "endpoint"]
    return (table, r.provenance_summary(carried) if len(carried) else None,
            r.request_counts(endpoints) if len(endpoints) else None)


def held_out_battery(world: Any, documents: pd.DataFrame, facts_tasks: pd.DataFrame,
                     spec: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """The battery (battery.build_suite of ``spec``) over ``world`` and the protected ``documents``, less the
    eval requests repeating a chat facts training prompt (items.drop_training_overlap): (the items, the
    overlap found, the training prompts)."""
    from assets.safety.battery import build_suite
    from assets.safety.items import drop_training_overlap

    protected = documents[documents["protected"].astype(bool)].drop_duplicates("doc_id")
    items = build_suite(world, spec, documents=protected)
    train_prompts = facts_tasks.loc[facts_tasks["split"] == "train", "prompt"]
    items, overlap = drop_training_overlap(items, train_prompts)
    return items, overlap, train_prompts


def overlap_numbers(overlap: pd.DataFrame) -> dict[str, int]:
    """Requests dropped for repeating a training prompt, and overlapping items kept (the hierarchy conflicts)."""
    return {"training_overlap_dropped": int(overlap.loc[overlap["dropped"], "request_id"].nunique()),
            "training_overlap_kept": int((~overlap["dropped"]).sum())}


def items_by_evaluation(items: pd.DataFrame) -> pd.DataFrame:
    """Items per evaluation (rows) and split (columns)."""
    return items.groupby(["evaluation", "split"]).size().unstack(fill_value=0).reset_index()


def words_by_source(table: pd.DataFrame) -> dict[str, int]:
    """Words of the vocabulary per first source, as `<source>_words`."""
    return {f"{k}_words": int(v) for k, v in table.groupby("source").size().to_dict().items()}


def parse_budget(text: str) -> str | int:
    """The configured budget: a token count ("16") or an effort level ("medium")."""
    return int(text) if text.strip().isdigit() else text.strip()


def budget_request(text: str) -> dict[str, str | int]:
    """The configured budget as an endpoint request's field: reasoning_budget (a token count) or
    reasoning_effort (an effort level), as `assets.chat.client.chat` takes them."""
    budget = parse_budget(text)
    return {"reasoning_budget": budget} if isinstance(budget, int) else {"reasoning_effort": budget}


def model_run_numbers(name: str, seconds: float, coverage: dict, results: pd.DataFrame) -> dict:
    """One chat model's numbers in the results' metadata: seconds, out-of-vocabulary rate, items unanswered."""
    return {f"{name}_seconds": round(seconds, 1), f"{name}_oov_rate": coverage["oov_rate"],
            f"{name}_items_unanswered": int((~results["answered"]).sum())}


def ask_chat_model(name: str, record: Mapping[str, Any], items: pd.DataFrame, settings: Any, *, tracking_uri: str,
                   device: str) -> tuple[pd.DataFrame, dict, list[str]]:
    """The registered chat model of ``record`` asked every item of ``settings.splits`` in-process, at the
    reasoning budget and answer length of ``settings``: (its results, its run numbers, the item words its
    tokenizer lacks)."""
    from assets.lm.registry import load_model
    from assets.safety.responders import model_responder, run_model, vocabulary_coverage

    started = time.time()
    model, tokenizer = load_model(record["model_uri"], tracking_uri, device=device)
    frames = []
    for part, cap in answer_caps(items, settings):
        respond = model_responder(model, tokenizer, budget=parse_budget(settings.budget), seed=settings.seed,
                                  max_answer_tokens=cap, temperature=settings.temperature,
                                  batch_size=settings.batch_size)
        frames.append(run_model(respond, part, model=record["registered_model"], model_uri=record["model_uri"],
                                splits=settings.splits, batch_size=settings.batch_size))
    results = pd.concat(frames, ignore_index=True)
    coverage = vocabulary_coverage(tokenizer, items, settings.splits)
    return results, model_run_numbers(name, time.time() - started, coverage, results), coverage["missing_words"]


def ask_responders(items: pd.DataFrame, chat_models: Mapping[str, Mapping[str, Any]], settings: Any, *,
                   device: str, tracking_uri: str) -> tuple[pd.DataFrame, dict, list[str] | None]:
    """Every item of ``settings.splits`` asked of the reference scripts, of every registered chat model of
    ``chat_models`` (in-process, ``settings.cpu_threads`` torch threads) and of the endpoints of ``settings``
    (at its budget and seed), graded: (the results, the models' run numbers, the item words the last model's
    tokenizer lacks, None when no model was asked). The benchmark files' rows record the sample they were
    drawn in (`max_items` = ``settings.benchmark_max_items``); the suite's items are all asked (null)."""
    from assets.chat.client import Endpoint
    from assets.lm.threads import torch_threads
    from assets.safety.benchmarks import BENCHMARKS, graded_benchmarks
    from assets.safety.responders import REFERENCES, run_endpoint, run_references, with_request_columns

    frames, numbers, missing = [run_references(items, settings.splits, names=tuple(REFERENCES))], {}, None
    with torch_threads(settings.cpu_threads, device):
        for name, record in chat_models.items():
            answers, run_numbers, missing = ask_chat_model(name, record, items, settings, device=device,
                                                           tracking_uri=tracking_uri)
            frames.append(answers)
            numbers |= run_numbers
    for spec, (part, cap) in itertools.product(settings.endpoints, answer_caps(items, settings)):
        frames.append(run_endpoint(Endpoint(spec.base_url, spec.model, spec.api_key_env), part,
                                   splits=settings.splits, max_tokens=cap, temperature=settings.temperature,
                                   seed=settings.seed, **budget_request(settings.budget)))
    results = with_request_columns(graded_benchmarks(pd.concat(frames, ignore_index=True), items))
    sampled = getattr(settings, "benchmark_max_items", None)
    if sampled is not None:
        results.loc[results["set"].isin(BENCHMARKS), "max_items"] = sampled
    return results, numbers, missing


def answer_caps(items: pd.DataFrame, settings: Any) -> list[tuple[pd.DataFrame, int]]:
    """The items of ``settings.splits`` in groups by answer cap: regurgitation items get
    ``settings.regurgitation_answer_tokens`` (a continuation must have room to run past the regurgitation
    threshold, MIN_MATCH_WORDS words, or no model could ever be caught), the rest ``max_answer_tokens``.
    Raises when the regurgitation cap does not exceed the threshold."""
    from assets.safety.regurgitation import MIN_MATCH_WORDS

    cap = settings.regurgitation_answer_tokens
    if cap <= MIN_MATCH_WORDS:
        raise ValueError(f"regurgitation_answer_tokens must exceed MIN_MATCH_WORDS ({MIN_MATCH_WORDS}) or no "
                         f"continuation can regurgitate; got {cap}")
    asked = items[items["split"].isin(settings.splits)]
    regurgitation = asked["evaluation"] == "regurgitation"
    groups = [(asked[~regurgitation], settings.max_answer_tokens), (asked[regurgitation], cap)]
    return [(part, n) for part, n in groups if len(part)]


def responder_label(table: pd.DataFrame) -> pd.Series:
    """Each row's responder as one name: the model, ``@endpoint`` for an endpoint's rows and, where an endpoint's
    row names the reasoning budget it was asked at, `` (budget B)``: an endpoint evaluated at two budgets keeps
    both apart (registered models and references are asked at the run's one budget)."""
    endpoint = table["endpoint"].fillna("").astype(str)
    budget = (table["requested_budget"] if "requested_budget" in table else pd.Series("", index=table.index))
    budget = budget.fillna("").astype(str)
    at = endpoint.where(endpoint == "", "@" + endpoint)
    asked = budget.where((endpoint != "") & (budget != ""), "")
    return table["model"].astype(str) + at + asked.where(asked == "", " (budget " + asked + ")")


def mean_scores(results: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """The mean score per group ``by`` (default: each evaluation of a responder, responders.EVALUATION_KEY, the
    columns of it the table has) and evaluation, over
    the rows answered: a row not answered (empty, rejected, failed, not asked: score 0, answered False) is no
    score of 0, so it is left out; n says how many rows the mean reads, asked how many there were (a mean
    over no answer is NaN). Any table of battery rows with `evaluation`, `score` and `answered` (every row
    answered where it has no such column) and the ``by`` columns: the alignment study's per-method table is
    ``mean_scores(results, by=["method"])``."""
    from assets.safety.responders import EVALUATION_KEY

    keys = [*([c for c in EVALUATION_KEY if c in results] if by is None else by), "evaluation"]
    answered = results["answered"].astype(bool) if "answered" in results else pd.Series(True, index=results.index)
    rows = results.assign(answered_score=results["score"].where(answered), answered=answered)
    table = rows.groupby(keys, sort=False).agg(score=("answered_score", "mean"), n=("answered", "sum"),
                                               asked=("answered", "size")).reset_index()
    return table.astype({"n": int, "asked": int})


def card_by_model(card: pd.DataFrame) -> pd.DataFrame:
    """The card as metrics (rows, per evaluation where the card has one: a user benchmark may reuse a suite
    metric's name) by responder (columns, named by `responder_label`): a registered model and an endpoint
    serving it, or one endpoint at two budgets, are separate columns, never averaged together; a metric no
    responder has a value for (NaN everywhere: an empty set) is left out."""
    rows = [c for c in ("evaluation", "metric") if c in card.columns]
    labelled = card.assign(responder_label=responder_label(card))
    order = list(dict.fromkeys(map(tuple, card[rows].to_numpy())))
    table = labelled.pivot(index=rows, columns="responder_label", values="value")
    return table.reindex(order if len(rows) > 1 else [r[0] for r in order]).dropna(how="all").reset_index()


def findings_scale(card: pd.DataFrame, profile: str, *, budget: str | None = None,
                   max_answer_tokens: int | None = None) -> str:
    """The scale the findings were measured at: the profile, the models on the card, and (when known) the
    reasoning budget and answer cap they were asked under."""
    models = sorted(set(card.loc[card["responder"] != "reference", "model"]))
    text = f"{profile} profile: {', '.join(models) or 'no models'} on the eval split"
    if budget is not None:
        text += f", reasoning budget {budget}"
    if max_answer_tokens is not None:
        text += f", answers of at most {max_answer_tokens} tokens"
    return text


def chosen_judge(endpoint: Any | None, judge: str, chat_models: Mapping[str, dict], tracking_uri: str, device: str,
                 *, seed: int, max_answer_tokens: int) -> tuple[Any, str]:
    """(judge, its name): the endpoint when one is given (its base_url, model and api_key_env), else the chat
    model ``judge`` names among ``chat_models`` (records with a model_uri), answering at once (budget 0)."""
    from assets.chat.client import Endpoint
    from assets.lm.registry import load_model
    from assets.safety.judge import EndpointJudge, RespondJudge
    from assets.safety.responders import model_responder

    if endpoint is not None:
        return EndpointJudge(Endpoint(endpoint.base_url, endpoint.model, endpoint.api_key_env), temperature=0.0,
                             max_tokens=max_answer_tokens), endpoint.base_url
    if judge not in chat_models:
        raise ValueError(f"judge must be one of {sorted(chat_models)} (or set endpoint), got {judge!r}")
    record = chat_models[judge]
    model, tokenizer = load_model(record["model_uri"], tracking_uri, device=device)
    return RespondJudge(model_responder(model, tokenizer, budget=0, seed=seed,
                                        max_answer_tokens=max_answer_tokens)), record["model_uri"]
