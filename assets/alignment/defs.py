"""Dagster side of the deliberative-alignment study (Guan et al. 2024).

``alignment_candidates``: for every train prompt of the safety battery (allowed, disallowed, look-alikes, seen
jailbreak families) several chains of thought citing the policy and final answers, written with the policy
in context by a programmatic stand-in for a capable model, each judged by the policy-aware judge (the filter
keeps the best accepted one per prompt). ``alignment_sft_data``: the kept ones with the policy stripped from
the prompts, and each method's reasoning. ``alignment_sft_models``: from the helpful-only chat-sft, SFT per
method on the same prompts and answers (deliberative, no_citation, direct); ``alignment_rl``: GRPO on the
deliberative model with the judge on the final answer as reward. ``alignment_results``: every method (and
chat-sft with the policy pasted in) on the battery's eval split; ``alignment_methods`` the metrics, the
Pareto plot and the bars; ``alignment/findings`` the paper's claims as rules.
"""

import functools

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.alignment.findings import CHECKS, POST_HOC
from assets.chat.post_hoc import chat_post_hoc
from assets.lm.config import Optimiser
from resources.compute import Compute
from resources.config import StudyConfig
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import current_profile, pick, step_threads
from resources.stages import stage
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "alignment"
TASK_INS = {n: dg.AssetIn(n) for n in ("chat_arithmetic_tasks", "chat_facts_tasks", "chat_instruction_tasks")}


# ------------------------------------------------------------------------------------------------------ data
class GenerationConfig(StudyConfig):
    """The stand-in generator's candidates per prompt and mistake rates (assets.alignment.generator)."""

    seed: int = 0
    n_candidates: int = Field(default=pick(tiny=4, demo=4, gpu=8), description="candidates written per prompt")
    error_rate: float = Field(default=0.3, description="chance a candidate on a plain request has a mistake")
    hard_error_rate: float = Field(default=0.45, description="the same on a jailbreak or a look-alike")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("data"), check_specs=[dg.AssetCheckSpec(
    "filter_keeps_only_accepted", asset="alignment_candidates",
    description="at most one kept candidate per prompt, every kept one accepted by the judge")])
def alignment_candidates(config: GenerationConfig, safety_items: pd.DataFrame):
    """Chains of thought citing the policy and final answers for every train prompt (refusal and jailbreak
    items of the train split), written with the policy in context by a programmatic stand-in for a capable
    reasoning model that decides refuse or answer from the clauses it reads there (with seeded mistakes),
    each with the policy-aware judge's verdict and the filter's choice (`kept`: the best accepted candidate of
    its prompt)."""
    from assets.alignment import tables, validity
    from assets.alignment.generator import GENERATOR_NOTE, GeneratorSpec, generate_candidates, train_items
    from assets.alignment.policy_judge import filter_summary, judge_candidates, keep_best

    items = train_items(safety_items)
    candidates = generate_candidates(items, GeneratorSpec(**config.model_dump()))
    judged = keep_best(judge_candidates(candidates, items))
    summary, errors = filter_summary(judged), tables.acceptance_by_mistake(judged)
    yield dg.Output(judged, metadata={**summary, "generator": GENERATOR_NOTE, "acceptance_by_mistake":
                                      markdown_table(errors), "examples": markdown_table(
                                          judged[["error", "reasoning", "answer", "accepted", "kept"]], 8)})
    passed = validity.filter_keeps_only_accepted(judged)
    yield dg.AssetCheckResult(check_name="filter_keeps_only_accepted", passed=passed,
                              metadata={"kept": len(judged[judged["kept"]])})


@dg.asset(group_name=GROUP, code_version="1", tags=stage("data"), check_specs=[dg.AssetCheckSpec(
    "policy_absent_from_prompts", asset="alignment_sft_data",
    description="no SFT prompt holds any clause of the policy; every row has an answer")])
def alignment_sft_data(alignment_candidates: pd.DataFrame, safety_items: pd.DataFrame):
    """The SFT data: per kept prompt, the prompt with the policy stripped, the final answer, and each method's
    reasoning (deliberative: citing the policy; no_citation: the same without its citations; direct: none)."""
    from assets.alignment import tables, validity
    from assets.alignment.sft_data import prompts_with_policy, sft_table

    table = sft_table(alignment_candidates, safety_items)
    with_policy = prompts_with_policy(table)
    yield dg.Output(table, metadata={"rows": len(table), "prompts_with_policy": with_policy,
                                     "by_category": markdown_table(tables.rows_by_category(table)),
                                     "examples": markdown_table(table[["messages", "reasoning_deliberative",
                                                                       "reasoning_no_citation", "answer"]], 6)})
    valid = gx_check(*validity.sft_data(expectations(), table), name="alignment_sft_data")
    yield dg.AssetCheckResult(check_name="policy_absent_from_prompts", passed=bool(valid.passed and not with_policy),
                              metadata={**valid.metadata, "prompts_with_policy": with_policy})


# -------------------------------------------------------------------------------------------------- training
class AlignmentSFTConfig(Optimiser, StudyConfig):
    """SFT of every method from chat-sft (the chat room's fine_tune; same steps and seed for each method)."""

    methods: list[str] = Field(default=["deliberative", "no_citation", "direct"], description="methods to train")
    comply_repeats: int = Field(default=1, description="times each prompt to answer appears in every method's SFT "
                                "data (1: the battery's train split as it is, ~3/4 requests to refuse)")
    helpful_replay: int = Field(default=0, description="chat-sft's own train conversations (no safety data) replayed "
                                "beside every method's data alike, against forgetting how to answer; 0: none")
    max_steps: int = pick(tiny=4, demo=120, gpu=1000)
    batch_size: int = pick(tiny=8, demo=16, gpu=64)
    learning_rate: float = pick(tiny=3e-3, demo=2e-3, gpu=3e-4)
    min_lr: float = pick(tiny=3e-4, demo=2e-4, gpu=3e-5)
    warmup_steps: int = pick(tiny=1, demo=10, gpu=50)
    cpu_threads: int = Field(default=step_threads(), description="torch CPU threads while training (0: torch's default)")
    aliases: list[str] = Field(default=["current"], description="MLflow registry aliases set on new versions")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("training"), pool="gpu", ins=TASK_INS, check_specs=[
    dg.AssetCheckSpec("starting_point_saw_no_safety_data", asset="alignment_sft_models",
                      description="chat-sft's data has no refusal target, policy text, clause id, jailbreak or "
                                  "eval prompt"),
    dg.AssetCheckSpec("baselines_share_prompts_and_answers", asset="alignment_sft_models",
                      description="every method trains on the same prompts and final answers")])
def alignment_sft_models(context: dg.AssetExecutionContext, config: AlignmentSFTConfig, tracking: Tracking,
                         compute: Compute, warehouse: WarehousePaths, chat_sft: dict, alignment_sft_data: pd.DataFrame,
                         safety_items: pd.DataFrame, **tasks) -> dict:
    """One SFT per method from the helpful-only chat-sft on the same prompts (policy stripped) and answers:
    ``deliberative`` (reasoning citing the policy), ``no_citation`` and ``direct`` (answers only); each
    registered as alignment-<method>-sft, with a content hash of its prompts and answers (compared across
    methods by the baselines check). Conversations longer than the model's positions are dropped for all."""
    from assets.alignment import tables, validity
    from assets.alignment.evaluation import saw_no_safety_data, starting_point_audit
    from assets.alignment.sft_data import fit_context, repeat_comply, replay_conversations
    from assets.alignment.training import train_sft_methods
    from assets.lm.registration import Display, load_tokenizer_of
    from assets.lm.threads import torch_threads

    audit = starting_point_audit(list(tasks.values()), safety_items)
    table, dropped = fit_context(alignment_sft_data, load_tokenizer_of({"tokenizer_uri": chat_sft["model_uri"]},
                                                                       tracking), int(chat_sft["model_size"]["context_length"]))
    table = repeat_comply(table, config.comply_repeats)
    replay = replay_conversations(tasks.values(), config.helpful_replay, config.seed)
    trained = len(table) + len(replay)
    cfg = config.train_config(compute, eval_interval=config.max_steps)
    display = Display(dg.MetadataValue.url, functools.partial(figure_metadata, warehouse_root=warehouse.root,
                                                              run_id=context.run.run_id))
    with torch_threads(config.cpu_threads, cfg.device):
        records, meta, identical = train_sft_methods(
            context, tracking, compute, display, chat_sft, table, cfg, methods=config.methods,
            aliases=config.aliases, params=config.model_dump(), replay=replay)
    yield dg.Output({"models": records, "starting_point_audit": audit, "identical": identical,
                     "dropped_too_long": dropped, "trained_conversations": trained,
                     "replayed_conversations": len(replay), "base_model_uri": chat_sft["model_uri"]},
                    metadata={**tables.sft_models_metadata(meta, identical, len(table), dropped, len(replay)),
                              "prompt_answer_digests": dg.MetadataValue.json(identical["digests"]),
                              "starting_point_audit": dg.MetadataValue.json(audit)})
    yield dg.AssetCheckResult(check_name="starting_point_saw_no_safety_data", passed=saw_no_safety_data(audit),
                              metadata=audit)
    digests = {m: r["prompt_answer_digest"] for m, r in records.items()}
    yield dg.AssetCheckResult(check_name="baselines_share_prompts_and_answers", metadata={
        "methods_differing": identical["methods_differing"], "digests": dg.MetadataValue.json(digests)},
        passed=validity.baselines_share_prompts_and_answers(records, identical, trained, len(config.methods)))


class AlignmentRLConfig(StudyConfig):
    """GRPO on the deliberative SFT model (the chat room's grpo) with the judge on the final answer as reward."""

    seed: int = 0
    steps: int = Field(default=pick(tiny=2, demo=12, gpu=300), description="GRPO policy updates")
    prompts_per_step: int = Field(default=pick(tiny=4, demo=8, gpu=32), description="train prompts drawn per step")
    group_size: int = Field(default=pick(tiny=2, demo=8, gpu=8), description="completions sampled per prompt (G); "
                                                                            "each advantage is its reward "
                                                                            "standardised within the group")
    learning_rate: float = pick(tiny=1e-4, demo=5e-5, gpu=2e-5)
    beta: float = Field(default=0.04, description="KL weight to the frozen deliberative SFT model")
    budget: int = Field(default=pick(tiny=16, demo=48, gpu=64), description="reasoning budget of the rollouts")
    max_answer_tokens: int = 10
    temperature: float = 1.0
    cpu_threads: int = Field(default=step_threads(), description="torch CPU threads (0: torch's default)")
    aliases: list[str] = Field(default=["current"], description="MLflow registry aliases set on the new version")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("training"), pool="gpu")
def alignment_rl(context: dg.AssetExecutionContext, config: AlignmentRLConfig, tracking: Tracking, compute: Compute,
                 warehouse: WarehousePaths, alignment_sft_models: dict, alignment_sft_data: pd.DataFrame) -> dict:
    """Deliberative alignment's RL stage: the deliberative SFT model trained with GRPO on the same train prompts,
    rewarded by the policy-aware judge on the final answer only (the reasoning is never graded);
    alignment-deliberative-rl."""
    from assets.alignment.training import train_deliberative_rl
    from assets.chat.plots import training_figure
    from assets.chat.rl import GRPOConfig
    from assets.lm.threads import torch_threads

    device = compute.torch_device()
    cfg = GRPOConfig.of(config.model_dump(), device, bf16=compute.use_bf16())
    with torch_threads(config.cpu_threads, device):
        record, curve = train_deliberative_rl(context, tracking, compute, alignment_sft_models["models"]["deliberative"],
                                              alignment_sft_data, cfg, aliases=config.aliases)
    plot = figure_metadata(training_figure({"deliberative-rl": curve}, "mean_reward", "mean judge reward",
                                           "alignment-deliberative-rl"), "alignment/rl_reward_curve",
                           warehouse.root, context.run.run_id)
    context.add_output_metadata({"model_uri": record["model_uri"], "mlflow": dg.MetadataValue.url(record["mlflow_link"]),
                                 "first_reward": record["first_reward"], "last_reward": record["last_reward"],
                                 "rl_moved_policy": record["rl_moved_policy"], "rl_movement": record["rl_movement"],
                                 "train_seconds": round(record["train_seconds"], 1), "reward_curve": plot})
    return record


# ------------------------------------------------------------------------------------------------ evaluation
class AlignmentEvalConfig(StudyConfig):
    """How every method is asked (the safety battery's responder): budget, answer length, which evaluations."""

    budget: int = Field(default=pick(tiny=16, demo=48, gpu=64), description="reasoning budget (tokens)")
    max_answer_tokens: int = 10
    batch_size: int = pick(tiny=64, demo=64, gpu=256)
    evaluations: list[str] = Field(default=["refusal", "jailbreak"], description="battery evaluations to ask")
    policy_reasoning_room: int = Field(default=8, description="reasoning tokens kept free when choosing how much "
                                       "of the policy to paste into chat-sft's context")
    seed: int = 0
    cpu_threads: int = Field(default=step_threads(), description="torch CPU threads (0: torch's default)")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"), pool="gpu")
def alignment_results(context: dg.AssetExecutionContext, config: AlignmentEvalConfig, tracking: Tracking,
                      compute: Compute, safety_items: pd.DataFrame, chat_sft: dict, alignment_sft_models: dict,
                      alignment_rl: dict) -> pd.DataFrame:
    """Every method on the battery's eval split (graded by the safety room's battery): helpful_only (chat-sft),
    policy_in_context (chat-sft with as much of the policy as fits pasted as a system message; registered as
    alignment-policy-in-context, chat-sft's weights with the message as a tag), direct_sft,
    no_citation_sft, deliberative_sft, deliberative_rl, and the two references; with the clauses each
    reasoning cites. One row per method x item."""
    from assets.alignment import tables
    from assets.alignment.evaluation import ask, eval_items, median_prompt_tokens, policy_excerpt, references
    from assets.alignment.training import register_policy_in_context
    from assets.lm.registration import load_registered
    from assets.lm.threads import torch_threads

    items, device = eval_items(safety_items, config.evaluations), compute.torch_device()
    models = {f"{m}_sft": r for m, r in alignment_sft_models["models"].items()} | {"deliberative_rl": alignment_rl}
    settings = dict(budget=config.budget, max_answer_tokens=config.max_answer_tokens, batch_size=config.batch_size,
                    seed=config.seed)
    frames = [references(items)]
    with torch_threads(config.cpu_threads, device):
        model, tokenizer = load_registered(chat_sft, tracking, device)
        positions = model.config.max_position_embeddings  # chat-sft's: the model the policy is pasted into
        reserve = median_prompt_tokens(tokenizer, items) + config.max_answer_tokens + 3 + config.policy_reasoning_room
        excerpt = policy_excerpt(tokenizer, positions, reserve)
        frames.append(ask("helpful_only", "chat-sft", chat_sft["model_uri"], model, tokenizer, items, **settings))
        pasted = register_policy_in_context(context, tracking, chat_sft, excerpt)
        frames.append(ask("policy_in_context", pasted["registered_model"], pasted["model_uri"], model, tokenizer,
                          items, policy_text=excerpt["text"], **settings))
        for method, record in models.items():
            model, tokenizer = load_registered(record, tracking, device)
            frames.append(ask(method, record["registered_model"], record["model_uri"], model, tokenizer, items,
                              **settings))
    results = pd.concat(frames, ignore_index=True)
    meta = tables.results_summary(excerpt, pasted["model_uri"], positions, len(results))
    context.add_output_metadata({**meta, "score_by_method": markdown_table(tables.score_by_method(results))})
    return results.assign(pasted_clauses=",".join(excerpt["clauses"]))


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"), check_specs=[dg.AssetCheckSpec(
    "methods_valid", asset="alignment_methods", description="values in [0, 1] or NaN, every method present")])
def alignment_methods(context: dg.AssetExecutionContext, warehouse: WarehousePaths, alignment_results: pd.DataFrame,
                      safety_items: pd.DataFrame):
    """Per method the card's metrics and the study's (not_unsafe and refusal on held-out families and OOD
    encodings, right-clause citations), with the Pareto plot, the bars and examples of reasoning."""
    from assets.alignment import tables, validity
    from assets.alignment.evaluation import method_table
    from assets.alignment.plots import bars_figure, examples_markdown, pareto_figure, reasoning_examples

    table = method_table(alignment_results)
    run_id = context.run.run_id
    examples = examples_markdown(reasoning_examples(alignment_results), safety_items)
    yield dg.Output(table, metadata={
        "methods": markdown_table(tables.methods_by_metric(table), max_rows=60),
        "pareto": figure_metadata(pareto_figure(table), "alignment/pareto", warehouse.root, run_id),
        "bars": figure_metadata(bars_figure(table), "alignment/bars", warehouse.root, run_id),
        "reasoning_examples": dg.MetadataValue.md(examples)})
    present = validity.every_method_present(table, alignment_results)
    valid = gx_check(*validity.methods(expectations(), table), name="alignment_methods")
    yield dg.AssetCheckResult(check_name="methods_valid", passed=bool(valid.passed and present),
                              metadata=valid.metadata)


# -------------------------------------------------------------------------------------------------- findings
FINDINGS_KEY = dg.AssetKey([GROUP, "findings"])


@dg.asset(key_prefix=[GROUP], name="findings", group_name=GROUP, code_version="1", tags=stage("evaluation"),
          ins={"table": dg.AssetIn("alignment_methods"), "candidates": dg.AssetIn("alignment_candidates"),
               "sft_data": dg.AssetIn("alignment_sft_data"), "models": dg.AssetIn("alignment_sft_models"),
               "rl": dg.AssetIn("alignment_rl"), "results": dg.AssetIn("alignment_results")},
          check_specs=findings_check_specs(FINDINGS_KEY, {k: text for k, (_, text) in CHECKS.items()}))
def alignment_findings(table: pd.DataFrame, candidates: pd.DataFrame, sft_data: pd.DataFrame, models: dict,
                       rl: dict, results: pd.DataFrame):
    """The paper's claims as rules on our methods (deliberative against direct SFT, same stage and data: Pareto
    frontier, held-out families, encodings; citations; the RL stage against SFT) and the code checks."""
    from assets.alignment.findings import build_findings, pipeline_checks, run_scale

    checks = pipeline_checks(table, candidates, sft_data, models, rl, results)
    scale = run_scale(current_profile(), sft_data, models, results)
    yield from findings_results(build_findings(table, checks, scale, study=GROUP, post_hoc=POST_HOC,
                                               models_post_hoc=chat_post_hoc(current_profile())),
                                {k: metric for k, (metric, _) in CHECKS.items()})


defs = dg.Definitions(assets=[alignment_candidates, alignment_sft_data, alignment_sft_models, alignment_rl,
                              alignment_results, alignment_methods, alignment_findings])
