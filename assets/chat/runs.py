"""How the chat models are trained, registered and evaluated: chat-base pretrained with the LM family's
trainer, chat-sft fine-tuned on the tasks' conversations (`assets.chat.sft.fine_tune`), chat-rl trained with
GRPO on the verifiable reward (`assets.chat.rl.grpo`), each logged to MLflow and registered
(`assets.lm.registration`), and their accuracy under each reasoning budget (`assets.chat.study.budget_accuracy`);
with the texts and conversations of each split, the MLflow dataset inputs they are logged as, the tokenizer's
MLflow run and the records the assets return.

``settings`` is the asset's Config (seed, cpu_threads, aliases, the optimiser and shape fields), ``context``,
``tracking`` and ``compute`` the Dagster context and resources, passed through as `train_and_register` takes
them: the Dagster side stays a thin wrapper and this module free of the platform."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from assets.lm.registration import DatasetInput

PRETRAINING_SOURCE = "facts_documents + chat tasks"
TASK_SOURCE = "chat_arithmetic_tasks, chat_facts_tasks, chat_instruction_tasks"  # the chat room's task assets


def pretraining_splits(documents: pd.DataFrame, frames: list[pd.DataFrame], seed: int) -> tuple[list[str], list[str]]:
    """chat-base's train and validation texts: the facts documents plus every task's problems as plain text."""
    from assets.chat.study import pretraining_texts
    from assets.corpora.facts_world import training_texts

    train = pretraining_texts(training_texts(documents), frames, "train", seed=seed)
    val = pretraining_texts(documents.loc[documents["split"] == "validation", "text"], frames, "validation")
    return train, val


def pretraining_datasets(train: list[str], val: list[str]) -> list[DatasetInput]:
    """chat-base's MLflow dataset inputs."""
    return [DatasetInput.of_texts("chat-pretraining-train", train, "train", PRETRAINING_SOURCE),
            DatasetInput.of_texts("chat-pretraining-validation", val, "validation", PRETRAINING_SOURCE)]


def conversation_splits(tokenizer: Any, frames: Iterable[pd.DataFrame], context_length: int):
    """chat-sft's data: (rows per split, train conversations, validation conversations), the conversations
    tokenized with the loss on the assistant's tokens only."""
    from assets.chat.sft import sft_data
    from assets.chat.study import split_rows
    from assets.chat.tasks import conversation

    frames = list(frames)
    rows = {s: split_rows(frames, s) for s in ("train", "validation")}
    train, val = (sft_data(tokenizer, [conversation(r) for _, r in rows[s].iterrows()], context_length)
                  for s in ("train", "validation"))
    return rows, train, val


def task_datasets(rows: Mapping[str, pd.DataFrame], source: str, prefix: str = "chat-tasks") -> list[DatasetInput]:
    """MLflow dataset inputs of a chat model's problems (chat-sft's, chat-rl's): each split's as text, named
    ``<prefix>-<split>``."""
    from assets.chat.study import task_text

    return [DatasetInput.of_texts(f"{prefix}-{s}", [task_text(r) for _, r in rows[s].iterrows()], s, source)
            for s in rows]


def log_tokenizer(tracking: Any, tokenizer: Any, dagster_run_id: str) -> dict:
    """The chat tokenizer saved into an MLflow run "chat-tokenizer"; its record (uri, vocabulary, special
    tokens, the run and its link)."""
    from assets.chat.format import CHAT_SPECIAL_TOKENS

    with tempfile.TemporaryDirectory() as tmp, tracking.start_run(
            "chat-tokenizer", dagster_run_id=dagster_run_id, asset_key="chat_tokenizer",
            params={"kind": "word-level+chat", "vocab_size": len(tokenizer)}) as run_id:
        tokenizer.save_pretrained(tmp)
        uri = tracking.log_artifacts(run_id, tmp, "tokenizer")
    return {"tokenizer_uri": uri, "vocab_size": len(tokenizer), "special_tokens": list(CHAT_SPECIAL_TOKENS),
            "mlflow_run_id": run_id, "mlflow_link": tracking.run_link(run_id)}


def pretrain_chat_base(context: Any, tracking: Any, compute: Any, settings: Any, tokenizer_record: dict,
                       documents: pd.DataFrame, frames: list[pd.DataFrame], display: Any) -> tuple[dict, dict]:
    """chat-base: the LM family's decoder pretrained on the facts documents plus the tasks as plain text,
    registered as chat-base. Returns (record, metadata)."""
    from assets.lm.family import fit_language_model
    from assets.lm.registration import load_tokenizer_of, train_and_register
    from assets.lm.threads import torch_threads

    tokenizer = load_tokenizer_of(tokenizer_record, tracking)
    train, val = pretraining_splits(documents, frames, settings.seed)
    size, cfg = settings.model_size("chat-base"), settings.train_config(compute, eval_interval=settings.max_steps)
    compute.seed_everything(settings.seed)
    with torch_threads(settings.cpu_threads, cfg.device):
        fitted, record, metadata = train_and_register(
            context, tracking, compute, lambda workdir, on_log: fit_language_model(
                size, tokenizer, train, val, cfg, workdir / "model", on_log=on_log),
            run_name="chat-base", asset_key="chat_base", steps=cfg.max_steps, registered="chat-base",
            params={**settings.model_dump(), "train_texts": len(train),
                    "tokenizer_uri": tokenizer_record["tokenizer_uri"]},
            aliases=settings.aliases, plot_name="chat/base_loss_curve", display=display,
            datasets=pretraining_datasets(train, val))
    return ({**record, "model_size": dataclasses.asdict(size), "train_texts": len(train),
             "non_embedding_parameters": fitted.non_embedding_parameters,
             "tokenizer_uri": tokenizer_record["tokenizer_uri"]},
            {**metadata, "train_texts": len(train)})


def fine_tune_chat_sft(context: Any, tracking: Any, compute: Any, settings: Any, base_record: dict,
                       frames: Iterable[pd.DataFrame], display: Any, source: str) -> tuple[dict, dict]:
    """chat-sft: chat-base fine-tuned on the train conversations of every task (loss on the assistant's tokens;
    validation loss on the validation conversations), registered as chat-sft. Returns (record, metadata)."""
    from assets.chat.sft import fine_tune
    from assets.lm.registration import load_registered, train_and_register
    from assets.lm.threads import torch_threads

    cfg = settings.train_config(compute, eval_interval=settings.max_steps)
    model, tokenizer = load_registered(base_record, tracking, cfg.device)
    rows, train, val = conversation_splits(tokenizer, frames, int(base_record["model_size"]["context_length"]))
    params = {**settings.model_dump(), "base_model_uri": base_record["model_uri"], "conversations": len(train),
              "target_tokens": train.n_target_tokens}
    compute.seed_everything(settings.seed)
    with torch_threads(settings.cpu_threads, cfg.device):
        fitted, record, metadata = train_and_register(
            context, tracking, compute, lambda workdir, on_log: fine_tune(
                model, tokenizer, train, cfg, workdir / "model", val, on_log=on_log),
            run_name="chat-sft", asset_key="chat_sft", params=params, steps=cfg.max_steps, registered="chat-sft",
            aliases=settings.aliases, plot_name="chat/sft_loss_curve", display=display,
            datasets=task_datasets(rows, source))
    return ({**record, "conversations": len(train), "non_embedding_parameters": fitted.non_embedding_parameters,
             "base_model_uri": base_record["model_uri"], "model_size": base_record["model_size"]},
            {**metadata, "conversations": len(train)})


def train_chat_rl(tracking: Any, compute: Any, settings: Any, sft_record: dict, frames: Iterable[pd.DataFrame],
                  dagster_run_id: str, log: Callable[[str], None],
                  source: str = TASK_SOURCE) -> tuple[dict, dict, pd.DataFrame]:
    """chat-rl: chat-sft trained with GRPO on the train problems of ``settings.tasks`` against the frozen SFT
    model, registered as chat-rl (the prompts logged as the run's dataset input, from the assets ``source``).
    Returns (record, metrics, reward curve); the metrics say whether RL moved the policy at all
    (`assets.chat.rl.rl_movement`: ``rl_moved_policy``, its rule and a plain sentence)."""
    from assets.chat.rl import GRPOConfig, rl_movement
    from assets.chat.study import rows_of_tasks, split_rows
    from assets.lm.registration import ProgressLog, load_registered
    from assets.lm.threads import torch_threads

    device = compute.torch_device()
    policy, tokenizer = load_registered(sft_record, tracking, device)
    reference, _ = load_registered(sft_record, tracking, device)
    rows = rows_of_tasks(split_rows(list(frames), "train"), settings.tasks)
    cfg = GRPOConfig.of(settings.model_dump(), device, bf16=compute.use_bf16())
    progress = ProgressLog(log, cfg.steps, "chat-rl")
    params = {**settings.model_dump(), "sft_model_uri": sft_record["model_uri"], "prompts": len(rows), "device": device}
    compute.seed_everything(settings.seed)
    with torch_threads(settings.cpu_threads, device):
        curve, metrics, model = train_rl(
            tracking, dagster_run_id, policy, reference, tokenizer, rows, cfg, params=params, aliases=settings.aliases,
            datasets=task_datasets({"train": rows}, source, prefix="chat-rl-prompts"),
            on_log=lambda row: progress(f"steps, mean reward {row['mean_reward']:.3f}", done=row["step"]))
    metrics = {**metrics, **rl_movement(metrics["first_reward"], metrics["last_reward"], metrics["final_kl"])}
    return rl_record(model, metrics, sft_record, policy, compute.hardware()), metrics, curve


def train_rl(tracking: Any, dagster_run_id: str, policy: Any, reference: Any, tokenizer: Any, rows: pd.DataFrame,
             cfg: Any, *, params: dict, aliases: list[str], on_log: Callable[[dict], None],
             datasets: Sequence[DatasetInput] = (), reward: Any = None, name: str = "chat-rl",
             asset_key: str = "chat_rl") -> tuple[pd.DataFrame, dict, dict]:
    """GRPO in the MLflow run ``name`` (``params`` and ``datasets`` logged) on ``reward`` (the tasks' verifiable
    reward by default; any `assets.chat.rl.Reward`, e.g. the alignment room's judge); the policy's checkpoint
    registered as ``name`` with ``aliases``. Returns (reward curve, metrics, the model part of the record)."""
    from assets.chat.rl import grpo
    from assets.chat.study import reward_summary
    from assets.chat.tasks import verifiable_reward
    from assets.lm.model import save_checkpoint
    from assets.lm.registration import log_training_run

    with tempfile.TemporaryDirectory() as tmp, tracking.start_run(
            name, dagster_run_id=dagster_run_id, asset_key=asset_key, params=params) as run_id:
        if datasets:
            tracking.log_datasets(run_id, datasets)
        result = grpo(policy, tokenizer, rows, verifiable_reward if reward is None else reward, cfg,
                      reference=reference, on_log=on_log)
        save_checkpoint(policy, tokenizer, f"{tmp}/model")
        metrics = {**reward_summary(result.curve), "train_seconds": result.seconds}
        model = log_training_run(tracking, run_id, curve=result.curve, metrics=metrics, checkpoint_dir=f"{tmp}/model",
                                 registered=name, aliases=aliases)
    return result.curve, metrics, model


def rl_record(model: dict, metrics: dict, sft_record: Mapping[str, Any], policy: Any, hardware: Any) -> dict:
    """chat-rl's record: the registered model, its metrics, the SFT model it started from, sizes, hardware."""
    from assets.lm.model import count_parameters

    return {**model, **metrics, "sft_model_uri": sft_record["model_uri"], "model_size": sft_record["model_size"],
            "hardware": hardware, "parameters": count_parameters(policy),
            "non_embedding_parameters": count_parameters(policy, non_embedding=True)}


def shared_tokenizer(tokenizers: Mapping[str, Any], records: Mapping[str, dict]) -> Any:
    """The one tokenizer the models ``tokenizers`` (name -> its own tokenizer) share; a clear error when they do
    not (e.g. chat_rl trained before chat_tokenizer was materialized again with other words): asking a model in
    another tokenizer's ids would fail or, with equal sizes, silently score the wrong words."""
    names = list(tokenizers)
    first = tokenizers[names[0]].get_vocab()
    for name in names[1:]:
        vocab = tokenizers[name].get_vocab()
        if vocab != first:
            raise ValueError(
                f"models {names[0]!r} ({records[names[0]].get('model_uri')}, {len(first)} tokens) and {name!r} "
                f"({records[name].get('model_uri')}, {len(vocab)} tokens) were trained with different chat "
                "tokenizers: materialize the older one again (with what depends on it) so they share one")
    return tokenizers[names[0]]


def budget_accuracy_of(tracking: Any, compute: Any, settings: Any, records: Mapping[str, dict],
                       frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Every registered model of ``records`` (name -> record) answering the tasks' test problems under each
    reasoning budget and effort level of ``settings``; one row per model x task x setting, with its model_uri.
    The models must share one chat tokenizer (`shared_tokenizer`)."""
    from assets.chat.study import budget_accuracy, split_rows
    from assets.lm.registration import load_registered
    from assets.lm.threads import torch_threads

    compute.seed_everything(settings.seed)
    device = compute.torch_device()
    models = {name: load_registered(record, tracking, device) for name, record in records.items()}
    tokenizer = shared_tokenizer({name: t for name, (_, t) in models.items()}, records)
    with torch_threads(settings.cpu_threads, device):
        table = budget_accuracy({n: m for n, (m, _) in models.items()}, tokenizer, split_rows(list(frames), "test"),
                                settings.budgets, settings.efforts, k=settings.k, temperature=settings.temperature,
                                max_answer_tokens=settings.max_answer_tokens, seed=settings.seed)
    table["model_uri"] = table["model"].map({name: record["model_uri"] for name, record in records.items()})
    return table
