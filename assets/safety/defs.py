"""Dagster side of the safety study (the OpenAI o1 system card's safety evaluations).

``safety_policy``: the written policy (numbered clauses); ``safety_stereotypes``: the stereotype the bias
questions probe; ``safety_items``: the battery over the facts world (refusal, jailbreak, hallucination, bias,
instruction hierarchy, regurgitation), train and eval templates disjoint; ``safety_vocabulary``: the words the
chat tokenizer adds. ``safety_results`` asks the registered chat models, the config's endpoints and the reference
scripts (the policy oracle; always-comply, always-refuse, always-abstain, empty) under one reasoning budget and
seed, one row per responder x evaluation x item; endpoint rows `reprolab evaluate` wrote are carried forward
(evaluated_run_id, evaluated_at). ``safety_judgements``: a judge's rubric verdicts beside the programmatic grades
(Cohen's kappa); ``safety_system_card``: the card per responder, with a plot; ``safety/findings``: the graders
checked on the references, and the models' numbers conditional on their helpful_accuracy.
"""

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.safety import validity
from assets.safety.findings import CHECKS
from assets.safety.tables import DEMO_BUDGET, budget_post_hoc
from resources.compute import Compute
from resources.config import StudyConfig
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import current_profile, pick, step_threads
from resources.stages import stage
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "safety"
MODEL_INS = {"chat_sft": dg.AssetIn("chat_sft"), "chat_rl": dg.AssetIn("chat_rl")}


def _check(name: str, asset: str, **kwargs) -> dg.AssetCheckSpec:
    """The data check ``name`` of ``asset``, described by what it holds the table to (validity.DESCRIPTIONS)."""
    return dg.AssetCheckSpec(name, asset=asset, description=validity.DESCRIPTIONS[name], **kwargs)


# ------------------------------------------------------------------------------------------------------ data
@dg.asset(group_name=GROUP, code_version="1", tags=stage("data"),
          check_specs=[_check("policy_valid", "safety_policy")])
def safety_policy():
    """The written policy (the "spec") every evaluation grades against: one row per numbered clause (P1 ...),
    its section, title and text. Birth year and employer are private; birth city and profession public."""
    from assets.safety.policy import policy_table

    table = policy_table()
    yield dg.Output(table, metadata={"clauses": markdown_table(table, max_rows=40)})
    yield gx_check(*validity.policy(expectations(), table), name="safety_policy", check_name="policy_valid")


class SuiteConfig(StudyConfig):
    """Sizes of the battery (assets.safety.battery.SuiteSpec): items per template, people asked about."""

    seed: int = 0
    people_pool: int | None = Field(default=pick(tiny=20, demo=50, gpu=None),
                                    description="ask about this many most-mentioned people (None: everyone)")
    n_per_template: int = Field(default=pick(tiny=1, demo=4, gpu=16), description="items per template")
    n_shots: int = Field(default=4, description="faked question-answer shots before a many-shot jailbreak's "
                         "request (about other well-known people)")
    n_stereotypes: int = Field(default=pick(tiny=2, demo=4, gpu=8),
                               description="bias: (birth city, profession) stereotypes, the population's strongest")
    n_per_context: int = Field(default=pick(tiny=1, demo=2, gpu=4), description="bias: draws (other city, order) "
                               "per context template and stereotype, each one question of every category")
    prompt_words: int = Field(default=8, description="regurgitation: opening words of a protected document the "
                              "user asks the model to continue")
    max_documents: int | None = Field(default=pick(tiny=4, demo=12, gpu=None),
                                      description="regurgitation: protected documents asked about (None: all)")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("data"),
          check_specs=[_check("stereotypes_valid", "safety_stereotypes")])
def safety_stereotypes(config: SuiteConfig, facts_world: dict):
    """The stereotype the bias questions probe, as recorded data: the strongest (birth city, profession)
    co-occurrences among the facts world's written-about people, with counts and lift."""
    from assets.corpora.facts_world import world_from_record
    from assets.safety.bias import stereotypes

    table = stereotypes(world_from_record(facts_world), config.n_stereotypes, seed=config.seed)
    yield dg.Output(table, metadata={"stereotypes": markdown_table(table)})
    yield gx_check(*validity.stereotypes(expectations(), table, config.n_stereotypes),
                   name="safety_stereotypes", check_name="stereotypes_valid")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("data"),
          ins={"documents": dg.AssetIn("facts_documents"), "facts_tasks": dg.AssetIn("chat_facts_tasks")},
          check_specs=[_check("items_valid", "safety_items")])
def safety_items(config: SuiteConfig, facts_world: dict, documents: pd.DataFrame, facts_tasks: pd.DataFrame):
    """The battery's items (assets.safety.items.ITEM_COLUMNS) over the facts world, both splits: refusal
    requests (allowed, disallowed, look-alikes), jailbreak wrappers (seen / held-out families), hallucination,
    BBQ-style bias, instruction-hierarchy conflicts and the protected documents to continue. Eval requests
    that repeat a chat facts training prompt word for word (same person, same question, same answer) are
    dropped, they would measure recall of a trained question, but for the hierarchy conflicts, where the
    user's own question must be one the model can answer (assets.safety.items.OVERLAP_KEPT_IN; metadata:
    training_overlap)."""
    from assets.corpora.facts_world import world_from_record
    from assets.safety.battery import SuiteSpec
    from assets.safety.tables import held_out_battery, items_by_evaluation, overlap_numbers

    items, overlap, train_prompts = held_out_battery(world_from_record(facts_world), documents, facts_tasks,
                                                     SuiteSpec(**config.model_dump()))
    yield dg.Output(items, metadata={"items": len(items), "by_evaluation": markdown_table(items_by_evaluation(items)),
                                     "eval_items": int((items["split"] == "eval").sum()), **overlap_numbers(overlap),
                                     "training_overlap": markdown_table(overlap.head(30))})
    valid = gx_check(*validity.items(expectations(), items), name="safety_items")
    held_out, numbers = validity.items_held_out(items, train_prompts)
    yield dg.AssetCheckResult(check_name="items_valid", asset_key="safety_items",
                              passed=bool(valid.passed and held_out), metadata={**valid.metadata, **numbers})


@dg.asset(group_name=GROUP, code_version="1", tags=stage("data"),
          check_specs=[_check("vocabulary_valid", "safety_vocabulary")])
def safety_vocabulary(safety_items: pd.DataFrame):
    """Every word of the policy, its canonical replies and both splits' items, with its first source: the chat
    tokenizer adds these so a model can read the policy and the battery (no <unk>) and write a refusal. A
    word-level tokenizer covering evaluation words is not training on them: no chat model sees an eval item."""
    from assets.safety.graders import ABSTAIN_PHRASES
    from assets.safety.items import vocabulary_table
    from assets.safety.policy import ABSTENTION, REFUSAL, UNKNOWN, render_policy
    from assets.safety.tables import words_by_source

    table = vocabulary_table(safety_items, render_policy(), (REFUSAL, ABSTENTION, UNKNOWN, *ABSTAIN_PHRASES))
    yield dg.Output(table, metadata={"words": len(table), **words_by_source(table)})
    yield gx_check(*validity.vocabulary(expectations(), table), name="safety_vocabulary",
                   check_name="vocabulary_valid")


# ------------------------------------------------------------------------------------------------ evaluation
class EndpointConfig(StudyConfig):
    """An OpenAI-compatible endpoint to evaluate beside our models (its key in `api_key_env`)."""

    base_url: str = Field(description="the endpoint's base URL (.../v1)")
    model: str | None = Field(default=None, description="model id (None: the first one the endpoint lists)")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="environment variable holding the API key "
                             "(a loopback endpoint needs none)")


class ResultsConfig(StudyConfig):
    """How every responder is asked: reasoning budget (tokens or low/medium/high), answer length, greedy."""

    budget: str = Field(default=pick(tiny="2", demo=DEMO_BUDGET, gpu="medium"),
                        description="reasoning budget: a token count or an effort level (low, medium, high); "
                                    "demo: the budget at which the chat models answer the facts questions "
                                    "(chat_budget_accuracy), see BUDGET_POST_HOC")
    max_answer_tokens: int = Field(default=pick(tiny=8, demo=16, gpu=32),
                                   description="tokens the answer may take after the reasoning")
    regurgitation_answer_tokens: int = Field(default=pick(tiny=24, demo=24, gpu=48),
                                             description="answer cap of the regurgitation items: at least twice "
                                                         "the regurgitation threshold (12 words), so a "
                                                         "continuation can run past it (must exceed it)")
    temperature: float = Field(default=0.0, description="sampling temperature (0: greedy)")
    batch_size: int = Field(default=pick(tiny=64, demo=64, gpu=256), description="conversations per batch")
    splits: list[str] = Field(default=["eval"], description="item splits asked")
    seed: int = Field(default=0, description="generation seed (also sent to endpoints)")
    cpu_threads: int = Field(default=step_threads(), description="torch CPU threads (0: torch's default)")
    endpoints: list[EndpointConfig] = Field(default=[], description="OpenAI-compatible endpoints to evaluate too")
    benchmark_files: list[str] = Field(default=[], description="local XSTest / StrongREJECT / SimpleQA / BBQ files "
                                                               "(published formats) to run beside the suite")
    benchmark_max_items: int | None = Field(default=None, description="a seeded sample of at most this many "
                                                                      "items per benchmark file")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"), pool="gpu", ins=MODEL_INS,
          check_specs=[_check("results_valid", "safety_results")])
def safety_results(context: dg.AssetExecutionContext, config: ResultsConfig, tracking: Tracking,
                   compute: Compute, warehouse: WarehousePaths, safety_items: pd.DataFrame, **chat_models):
    """Every eval item asked of the registered chat models (in-process, at the reasoning budget), the config's
    endpoints and the reference scripts, graded: one row per responder x evaluation x item, stamped with this
    run (evaluated_run_id, evaluated_at). Endpoints this run does not ask again (`reprolab evaluate` wrote them)
    are carried forward with their own run id and time (metadata: carried_forward, endpoint_requests)."""
    from datetime import UTC, datetime

    from assets.safety.benchmarks import with_benchmarks
    from assets.safety.tables import ask_responders, mean_scores, stamp_and_carry

    items = with_benchmarks(safety_items, config.benchmark_files, config.benchmark_max_items, config.seed)
    results, meta, missing = ask_responders(items, chat_models, config, device=compute.torch_device(),
                                            tracking_uri=tracking.resolved_tracking_uri)
    if missing is not None:
        meta["oov_words"] = dg.MetadataValue.md(" ".join(missing[:200]) or "(none)")
    results, carried, requests = stamp_and_carry(results, _latest_results(warehouse), context.run.run_id,
                                                 datetime.now(UTC))
    meta["carried_forward"] = "(none)" if carried is None else markdown_table(carried)
    if requests is not None:  # what the config's endpoints answered, rejected, failed on
        meta["endpoint_requests"] = markdown_table(requests)
    yield dg.Output(results, metadata={"rows": len(results), "mean_score": markdown_table(mean_scores(results)), **meta,
                                       "budget": config.budget, "max_answer_tokens": config.max_answer_tokens,
                                       "regurgitation_answer_tokens": config.regurgitation_answer_tokens})
    yield _results_check(results, [r["registered_model"] for r in chat_models.values()])


def _latest_results(warehouse: WarehousePaths) -> pd.DataFrame | None:
    """The latest stored safety_results with provenance on every row (None before the first)."""
    from assets.safety.responders import stored_with_provenance
    from resources.tables import LINEAGE_COLUMNS, read_table

    files = warehouse.table_files(GROUP, "safety_results")
    return stored_with_provenance(read_table(files[-1], with_lineage=True), LINEAGE_COLUMNS) if files else None


def _results_check(results: pd.DataFrame, models: list[str]) -> dg.AssetCheckResult:
    valid = gx_check(*validity.results(expectations(), results), name="safety_results")
    return dg.AssetCheckResult(check_name="results_valid", asset_key="safety_results", metadata=valid.metadata,
                               passed=bool(valid.passed and validity.every_responder_present(results, models)))


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"),
          check_specs=[_check("card_valid", "safety_system_card")])
def safety_system_card(context: dg.AssetExecutionContext, warehouse: WarehousePaths, safety_results: pd.DataFrame):
    """The system card's table: per responder (registered model, endpoint, reference) every evaluation's
    metrics (not_unsafe / not_overrefuse, goodness@0.1, hallucination, bias, hierarchy, regurgitation) with n,
    over the eval items that fit each model's context; and the bar chart of the headline metrics."""
    from assets.safety.findings import system_card_figure
    from assets.safety.responders import system_card
    from assets.safety.tables import card_by_model

    card = system_card(safety_results)
    pivot = card_by_model(card)
    yield dg.Output(card, metadata={"card": markdown_table(pivot, max_rows=60), "rows": len(card),
                                    "plot": figure_metadata(system_card_figure(card), "safety/system_card",
                                                            warehouse.root, context.run.run_id)})
    yield gx_check(*validity.card(expectations(), card), name="safety_system_card", check_name="card_valid")


class JudgeConfig(StudyConfig):
    """Which model judges the battery's free text, what of the policy it sees, and how much it judges."""

    judge: str = Field(default="chat_rl", description="the judging chat model: chat_sft or chat_rl (an "
                                                      "endpoint in `endpoint` replaces it)")
    endpoint: EndpointConfig | None = Field(default=None, description="an OpenAI-compatible endpoint as judge")
    view: str = Field(default="cited", description="what of the policy the judge sees: full, cited (the item's "
                                                   "clauses: fits a small model), none")
    rubrics: list[str] = Field(default=["refusal", "leak", "correct", "abstention"],
                               description="rubric questions asked (assets.safety.judge.RUBRICS)")
    limit: int = Field(default=pick(tiny=16, demo=96, gpu=1000), description="results judged per responder x "
                                                                               "rubric (a seeded sample)")
    max_answer_tokens: int = Field(default=4, description="tokens the judge may write (yes / no first)")
    seed: int = 0
    cpu_threads: int = Field(default=step_threads(), description="torch CPU threads (0: torch's default)")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"), pool="gpu", ins=MODEL_INS,
          check_specs=[_check("judge_agrees", "safety_judgements", blocking=False)])
def safety_judgements(context: dg.AssetExecutionContext, config: JudgeConfig, tracking: Tracking, compute: Compute,
                      safety_results: pd.DataFrame, safety_items: pd.DataFrame, **chat_models):
    """A judge (a chat model, or an endpoint) asked each rubric about the battery's answered results, with the
    policy in view, beside the programmatic grade of the same result: the card's autograder, and how far it
    agrees with ground truth (Cohen's kappa per responder x rubric, in the metadata)."""
    from assets.lm.threads import torch_threads
    from assets.safety.judge import agreement_summary, judge_battery
    from assets.safety.tables import chosen_judge

    device = compute.torch_device()
    with torch_threads(config.cpu_threads, device):
        judge, name = chosen_judge(config.endpoint, config.judge, chat_models, tracking.resolved_tracking_uri,
                                   device, seed=config.seed, max_answer_tokens=config.max_answer_tokens)
        with judge:  # an endpoint judge's one client, closed at the end
            table = judge_battery(safety_results, safety_items, judge, tuple(config.rubrics), view=config.view,
                                  limit=config.limit, seed=config.seed).assign(judge=name)
    summary = agreement_summary(table)
    yield dg.Output(table, metadata={"judge": name, "rows": len(table), "agreement": markdown_table(summary)})
    trusted, kappas, verdict_rate = validity.judge_agreement(summary, table)
    yield dg.AssetCheckResult(check_name="judge_agrees", asset_key="safety_judgements", passed=trusted,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"min_kappa_by_rubric": markdown_table(kappas.reset_index()),
                                        "verdict_rate": verdict_rate})


# -------------------------------------------------------------------------------------------------- findings
FINDINGS_KEY = dg.AssetKey([GROUP, "findings"])


@dg.asset(key_prefix=[GROUP], name="findings", group_name=GROUP, code_version="1", tags=stage("evaluation"),
          ins={"card": dg.AssetIn("safety_system_card")},
          check_specs=findings_check_specs(FINDINGS_KEY, {k: text for k, (_, text) in CHECKS.items()}))
def safety_findings(context: dg.AssetExecutionContext, card: pd.DataFrame):
    """The graders checked on the reference scripts (the oracle at the ceiling, the degenerate scripts at the
    floor: assets.safety.findings), and every registered model's headline metrics as descriptive rows,
    conditional on its helpful_accuracy, at the run's budget and answer cap."""
    from assets.safety.findings import build_findings
    from assets.safety.tables import findings_scale

    budget, cap = _asked_at(context)
    scale = findings_scale(card, current_profile(), budget=budget, max_answer_tokens=cap)
    post_hoc = budget_post_hoc(current_profile(), budget)
    yield from findings_results(build_findings(card, scale, study=GROUP, post_hoc=post_hoc),
                                {k: metric for k, (metric, _) in CHECKS.items()})


def _asked_at(context: dg.AssetExecutionContext) -> tuple[str | None, int | None]:
    """The reasoning budget and answer cap safety_results last ran with (its metadata), None when unknown."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey("safety_results"))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    budget, cap = meta.get("budget"), meta.get("max_answer_tokens")
    return (None if budget is None else str(budget.value)), (None if cap is None else int(cap.value))


defs = dg.Definitions(assets=[safety_policy, safety_stereotypes, safety_items, safety_vocabulary, safety_results,
                              safety_judgements, safety_system_card, safety_findings])
