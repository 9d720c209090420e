"""Training every method from the helpful-only model, through the chat room's SFT and GRPO, each registered.

- `train_sft_methods`: for each method (`assets.alignment.sft_data.METHODS`) a fresh copy of the starting
  point (chat-sft) is fine-tuned with `assets.chat.sft.fine_tune` on that method's conversations (same
  prompts, same answers, same optimiser, steps and seed; only the reasoning differs) and registered in
  MLflow as ``alignment-<method>-sft`` through `assets.lm.registration.train_and_register`; each run logs a
  content hash of its prompts and answers as an MLflow dataset input, also kept in the method's record
  (``prompt_answer_digest``), which the baselines code check compares across methods.
- `train_deliberative_rl`: the deliberative SFT model trained with `assets.chat.rl.grpo` on the same
  prompts, rewarded by the policy-aware judge on the final answer only (`judge_reward`), registered as
  ``alignment-deliberative-rl``; the frozen SFT model is the KL reference.

Dagster-free: the Dagster side hands in its context, tracking and compute resources and a `Display`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from assets.alignment.policy_judge import judge_reward
from assets.alignment.sft_data import METHODS, check_identical, conversations, judge_rows, prompt_answer_texts


def registered_name(method: str, stage: str = "sft") -> str:
    """The MLflow registered-model name of a method's model."""
    return f"alignment-{method.replace('_', '-')}-{stage}"


def train_sft_methods(context: Any, tracking: Any, compute: Any, display: Any, start: Mapping[str, Any],
                      table: pd.DataFrame, train_config: Any, *, methods: Sequence[str] = METHODS,
                      aliases: Sequence[str] = ("current",), params: Mapping[str, Any] | None = None,
                      plot_prefix: str = "alignment", replay: Sequence[list[dict]] = ()) -> tuple[dict, dict, dict]:
    """(records by method, metadata by method, the identity check) of one SFT per method from `start`. `replay`:
    conversations added to every method's data alike (`sft_data.replay_conversations`), after its own."""
    from assets.chat.sft import fine_tune, sft_data
    from assets.lm.registration import DatasetInput, load_registered, train_and_register

    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {list(METHODS)}, got {list(methods)}")
    by_method = {m: [*conversations(table, m), *replay] for m in methods}
    identical = check_identical(by_method)
    context_length = int(start["model_size"]["context_length"])
    records, metadata = {}, {}
    for method in methods:
        model, tokenizer = load_registered(start, tracking, train_config.device)
        data = sft_data(tokenizer, by_method[method], context_length)
        compute.seed_everything(train_config.seed)
        run = {**(params or {}), "method": method, "base_model_uri": start["model_uri"],
               "conversations": len(data), "replayed_conversations": len(replay),
               "target_tokens": data.n_target_tokens}
        name = registered_name(method)
        # the hash the baselines code check compares: of exactly the conversations this fine-tune is given
        prompts_answers = DatasetInput.of_texts(f"alignment-sft-{method}-prompts-answers",
                                                prompt_answer_texts(by_method[method]), "train", "alignment_sft_data")
        _, record, meta = train_and_register(
            context, tracking, compute,
            lambda workdir, on_log, model=model, tokenizer=tokenizer, data=data: fine_tune(
                model, tokenizer, data, train_config, workdir / "model", on_log=on_log),
            run_name=name, asset_key="alignment_sft_models", params=run, steps=train_config.max_steps,
            registered=name, aliases=list(aliases), plot_name=f"{plot_prefix}/{name}_loss_curve", display=display,
            datasets=[DatasetInput.of_texts(f"alignment-sft-{method}", [json.dumps(c) for c in by_method[method]],
                                            "train", "alignment_sft_data"), prompts_answers])
        records[method] = {**record, "method": method, "base_model_uri": start["model_uri"],
                           "model_size": start["model_size"], "target_tokens": data.n_target_tokens,
                           "prompt_answer_digest": prompts_answers.digest}
        metadata[method] = meta
    return records, metadata, identical


def train_deliberative_rl(context: Any, tracking: Any, compute: Any, sft: Mapping[str, Any], table: pd.DataFrame,
                          grpo_config: Any, *, aliases: Sequence[str] = ("current",),
                          params: Mapping[str, Any] | None = None) -> tuple[dict, pd.DataFrame]:
    """(record, reward curve) of GRPO on the deliberative SFT model with the judge's reward (answer only), through
    the chat room's `assets.chat.runs.train_rl`; the record as chat-rl's (`rl_record`) plus the method and
    whether RL moved the policy (`assets.chat.rl.rl_movement`)."""
    from assets.chat.rl import rl_movement
    from assets.chat.runs import rl_record, train_rl
    from assets.lm.registration import DatasetInput, ProgressLog, load_registered

    policy, tokenizer = load_registered(sft, tracking, grpo_config.device)
    reference, _ = load_registered(sft, tracking, grpo_config.device)
    name = registered_name("deliberative", "rl")
    progress = ProgressLog(context.log.info, grpo_config.steps, name)
    run = {**(params or {}), **dataclasses.asdict(grpo_config), "sft_model_uri": sft["model_uri"],
           "prompts": len(table), "reward": "policy judge, final answer only"}
    compute.seed_everything(grpo_config.seed)
    curve, metrics, model = train_rl(
        tracking, context.run.run_id, policy, reference, tokenizer, judge_rows(table), grpo_config, params=run,
        aliases=list(aliases), reward=judge_reward(), name=name, asset_key="alignment_rl",
        datasets=[DatasetInput.of_texts("alignment-rl-prompts", list(table["messages"]), "train", "alignment_sft_data")],
        on_log=lambda row: progress(f"steps, mean judge reward {row['mean_reward']:.3f}", done=row["step"]))
    metrics = {**metrics, **rl_movement(metrics["first_reward"], metrics["last_reward"], metrics["final_kl"])}
    return {**rl_record(model, metrics, sft, policy, compute.hardware()), "method": "deliberative"}, curve


def register_policy_in_context(context: Any, tracking: Any, start: Mapping[str, Any], excerpt: Mapping[str, Any], *,
                               aliases: Sequence[str] = ("current",)) -> dict:
    """Register the policy-in-context baseline: a version of ``alignment-policy-in-context`` whose weights are
    the starting point's own (its artifact, not a copy), with the system message to paste as a version tag
    and run parameter (which clauses fit, in how many tokens, of the whole policy's). Once per starting point
    and message: asked again (the nightly re-evaluation), the version registered for them is reused."""
    name = "alignment-policy-in-context"
    params = {"base_model_uri": start["model_uri"], "pasted_clauses": ",".join(excerpt["clauses"]) or "none",
              "pasted_tokens": excerpt["tokens"], "full_policy_tokens": excerpt["full_policy_tokens"],
              "system_message": excerpt["text"] or "(not one clause fits)"}
    same = _registered_like(tracking, name, params)
    if same is not None:  # the nightly re-evaluation asks again: the same weights and message are one version
        for alias in aliases:
            tracking.set_alias(name, alias, same.version)
        return {"model_uri": f"models:/{name}/{same.version}", "registered_model": name,
                "model_version": int(same.version), "aliases": list(aliases), "mlflow_run_id": same.run_id,
                "mlflow_link": tracking.run_link(same.run_id), **params}
    with tracking.start_run(name, dagster_run_id=context.run.run_id, asset_key="alignment_results",
                            params=params) as run_id:
        registered = tracking.register_version(
            run_id, name, start["artifact_uri"], aliases=tuple(aliases),
            tags={"system_message": params["system_message"][:5000], "base_model_uri": start["model_uri"]},
            description="chat-sft's weights; at inference the system_message tag is pasted before the conversation")
    return {**registered, **params}


def _registered_like(tracking: Any, name: str, params: Mapping[str, Any]) -> Any | None:
    """The newest version of ``name`` registered for the same starting point and system message, else None."""
    from mlflow.exceptions import MlflowException

    try:
        versions = tracking.client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    same = [v for v in versions if v.tags.get("base_model_uri") == params["base_model_uri"]
            and v.tags.get("system_message") == params["system_message"][:5000]]
    return max(same, key=lambda v: int(v.version)) if same else None
