"""Dagster side of the chat room: task worlds, a chat tokenizer, base/SFT/RL chat models, and accuracy against
the reasoning budget.

``chat_arithmetic_tasks``, ``chat_facts_tasks`` and ``chat_instruction_tasks`` are the task worlds (train /
validation / test problems with worked solutions and checkers). ``chat_tokenizer`` is a word-level tokenizer
over the facts world and the tasks with the chat format installed. ``chat_base`` is pretrained with the LM
family's trainer on the facts documents plus the tasks as plain text; ``chat_sft`` fine-tunes it on
conversations (loss on the assistant's tokens only); ``chat_rl`` trains that with GRPO on the verifiable
reward. Each is registered in MLflow (chat-base, chat-sft, chat-rl; alias current) and can be served with
``reprolab serve models:/chat-sft@current``. ``chat_budget_accuracy`` answers every task's test problems
under each reasoning budget and effort level, with the compute each answer spent.
"""

import dataclasses
import functools
import tempfile

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.lm.config import ModelShape, Optimiser
from resources.compute import Compute
from resources.config import StudyConfig
from resources.presentation import figure_metadata, markdown_table
from resources.profiles import pick
from resources.stages import stage
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "chat"
TASK_ASSETS = ("chat_arithmetic_tasks", "chat_facts_tasks", "chat_instruction_tasks")
TASK_INS = {name: dg.AssetIn(name) for name in TASK_ASSETS}


# ------------------------------------------------------------------------------------------------ task worlds
class ArithmeticTasksConfig(StudyConfig):
    """Multi-step arithmetic: chains of + and - with a running total, and digit-by-digit sums with carries."""

    seed: int = 0
    chain_ops: list[int] = Field(default=pick(tiny=[1, 3], demo=[1, 4], gpu=[1, 6]),
                                 description="[fewest, most] operations in a chain")
    sum_digits: list[int] = Field(default=pick(tiny=[1, 2], demo=[1, 3], gpu=[1, 4]),
                                  description="[fewest, most] digits per operand of a sum")
    sum_share: float = Field(default=0.5, description="fraction of problems that are sums (the rest: chains)")
    n_train: int = Field(default=pick(tiny=200, demo=2000, gpu=20000), description="problems in the train split")
    n_validation: int = Field(default=pick(tiny=20, demo=100, gpu=1000),
                              description="problems in the validation split")
    n_test: int = Field(default=pick(tiny=20, demo=100, gpu=1000), description="problems in the test split")


class FactsTasksConfig(StudyConfig):
    """Single- and multi-hop questions over the facts world, about its most written-about people."""

    seed: int = 0
    people_pool: int | None = Field(default=pick(tiny=20, demo=50, gpu=None),
                                    description="ask about this many most-mentioned people (None: everyone)")
    multi_hop_share: float = Field(default=0.5, description="fraction of questions that are multi-hop")
    n_train: int = Field(default=pick(tiny=100, demo=600, gpu=10000), description="questions in the train split")
    n_validation: int = Field(default=pick(tiny=20, demo=50, gpu=500),
                              description="questions in the validation split")
    n_test: int = Field(default=pick(tiny=20, demo=100, gpu=500), description="questions in the test split")


class InstructionTasksConfig(StudyConfig):
    """The facts questions asked again under a system message that constrains the answer's form."""

    seed: int = 0
    kinds: list[str] = Field(default=["upper_case", "n_words", "end_word", "start_word"],
                             description="the answer-form constraints each problem draws one of")


def _task_output(frame: pd.DataFrame, name: str, task: str):
    """The task table with its counts as metadata, and its GX check."""
    by_split = frame.groupby("split").size().to_dict()
    yield dg.Output(frame, metadata={
        **{f"{split}_problems": int(n) for split, n in by_split.items()},
        "by_kind": markdown_table(frame.groupby(["kind", "n_steps"]).size().rename("problems").reset_index()),
        "example": dg.MetadataValue.md(f"**{frame['prompt'].iloc[0]}** -> {frame['reasoning'].iloc[0]} => "
                                       f"**{frame['answer'].iloc[0]}**")})
    gxe = expectations()
    yield gx_check(frame, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeUnique(column="task_id"),
        gxe.ExpectColumnValuesToBeInSet(column="task", value_set=[task]),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "validation", "test"]),
        gxe.ExpectColumnValuesToBeBetween(column="n_steps", min_value=1, max_value=20),
        *[gxe.ExpectColumnValueLengthsToBeBetween(column=c, min_value=1) for c in ("prompt", "reasoning", "answer")],
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["system", "prompt"]),
    ], name=name, check_name="task_table_valid")


def _task_check(name: str) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec("task_table_valid", asset=name, description="ids unique, one task, valid splits, "
                              "1-20 steps, no empty prompt/solution/answer, each problem in one split only")]


@dg.asset(group_name=GROUP, code_version="1", tags=stage("data"), check_specs=_task_check("chat_arithmetic_tasks"))
def chat_arithmetic_tasks(config: ArithmeticTasksConfig):
    """Multi-step arithmetic problems with step-by-step worked solutions; ``n_steps`` is how many steps each
    needs (operations of a chain, digit columns of a sum). The task on which thinking longer should pay."""
    from assets.chat.tasks import ArithmeticSpec, arithmetic_problems

    frame = arithmetic_problems(ArithmeticSpec(**config.model_dump()))
    yield from _task_output(frame, "chat_arithmetic_tasks", "arithmetic")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("data"), check_specs=_task_check("chat_facts_tasks"))
def chat_facts_tasks(config: FactsTasksConfig, facts_world: dict):
    """Questions over the facts world: one fact (single hop) or two facts and a comparison (multi-hop), with
    a trace that states the facts and the ground-truth answer."""
    from assets.chat.tasks import FactsQuestionSpec, facts_questions
    from assets.corpora.facts_world import world_from_record

    frame = facts_questions(world_from_record(facts_world), FactsQuestionSpec(**config.model_dump()))
    yield from _task_output(frame, "chat_facts_tasks", "facts")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("data"), check_specs=_task_check("chat_instruction_tasks"))
def chat_instruction_tasks(config: InstructionTasksConfig, chat_facts_tasks: pd.DataFrame):
    """Instruction following under a system message: each facts question (splits kept) with a constraint on
    the answer's form a program checks (upper case, exactly N words, a first or last word)."""
    from assets.chat.tasks import InstructionSpec, instruction_problems

    frame = instruction_problems(chat_facts_tasks, InstructionSpec(seed=config.seed, kinds=tuple(config.kinds)))
    yield from _task_output(frame, "chat_instruction_tasks", "instructions")


# ------------------------------------------------------------------------------------------------- tokenizer
@dg.asset(group_name=GROUP, code_version="2", tags=stage("data"),
          ins={**TASK_INS, "safety_vocabulary": dg.AssetIn("safety_vocabulary")})
def chat_tokenizer(context: dg.AssetExecutionContext, tracking: Tracking, facts_world: dict,
                   safety_vocabulary: pd.DataFrame, **tasks):
    """Word-level tokenizer over the facts world's words, every task word, the numbers 0-99 and the safety
    policy's and battery's words (`safety_vocabulary`: read, never trained on), with the chat special tokens
    (roles, reasoning channel, answer, end) and the Jinja chat template, logged to MLflow."""
    from assets.chat.format import CHAT_SPECIAL_TOKENS, install_chat_format
    from assets.chat.study import chat_vocabulary
    from assets.corpora.facts_world import vocabulary, world_from_record
    from assets.corpora.tokenization import train_word_level_tokenizer

    base = chat_vocabulary(vocabulary(world_from_record(facts_world)), *tasks.values())
    words = chat_vocabulary(base, extra_words=safety_vocabulary["word"])
    tokenizer = install_chat_format(train_word_level_tokenizer(words))
    with tempfile.TemporaryDirectory() as tmp, tracking.start_run(
            "chat-tokenizer", dagster_run_id=context.run.run_id, asset_key="chat_tokenizer",
            params={"kind": "word-level+chat", "vocab_size": len(tokenizer)}) as run_id:
        tokenizer.save_pretrained(tmp)
        uri = tracking.log_artifacts(run_id, tmp, "tokenizer")
    record = {"tokenizer_uri": uri, "vocab_size": len(tokenizer), "special_tokens": list(CHAT_SPECIAL_TOKENS),
              "mlflow_run_id": run_id, "mlflow_link": tracking.run_link(run_id)}
    context.add_output_metadata({"vocab_size": len(tokenizer), "tokenizer_uri": uri,
                                 "safety_words_added": len(words) - len(base),
                                 "mlflow": dg.MetadataValue.url(record["mlflow_link"]),
                                 "template_example": dg.MetadataValue.md("`" + tokenizer.apply_chat_template(
                                     [{"role": "system", "content": "answer in upper case ."},
                                      {"role": "user", "content": "compute 1 + 2"}],
                                     tokenize=False, add_generation_prompt=True) + "`")})
    return record


# -------------------------------------------------------------------------------------------------- training
class ChatTrainingConfig(StudyConfig):
    """What every chat training asset shares: seed, torch CPU threads, MLflow aliases."""

    seed: int = 0
    cpu_threads: int = Field(default=1, description="torch CPU threads while training (0: torch's default)")
    aliases: list[str] = Field(default=["current"], description="MLflow registry aliases set on the new version")


class ChatBaseConfig(ModelShape, Optimiser, ChatTrainingConfig):
    """The base model's shape and pretraining (the LM family's architecture and trainer)."""

    d_model: int = pick(tiny=32, demo=64, gpu=384)
    n_layers: int = pick(tiny=1, demo=2, gpu=6)
    n_heads: int = pick(tiny=2, demo=4, gpu=6)
    d_ff: int = pick(tiny=64, demo=192, gpu=1536)
    context_length: int = pick(tiny=64, demo=128, gpu=256)
    max_steps: int = pick(tiny=20, demo=250, gpu=5000)
    batch_size: int = pick(tiny=8, demo=16, gpu=64)
    learning_rate: float = pick(tiny=5e-3, demo=6e-3, gpu=1e-3)
    min_lr: float = pick(tiny=5e-4, demo=6e-4, gpu=1e-4)
    warmup_steps: int = pick(tiny=2, demo=20, gpu=200)
    eval_batches: int = pick(tiny=1, demo=2, gpu=10)


class ChatSFTConfig(Optimiser, ChatTrainingConfig):
    """Supervised fine-tuning on the train conversations of every task (the LM trainer's optimiser/schedule)."""

    max_steps: int = pick(tiny=20, demo=500, gpu=3000)
    batch_size: int = pick(tiny=8, demo=32, gpu=64)
    learning_rate: float = pick(tiny=5e-3, demo=6e-3, gpu=5e-4)
    min_lr: float = pick(tiny=5e-4, demo=6e-4, gpu=5e-5)
    warmup_steps: int = pick(tiny=2, demo=10, gpu=100)


class ChatRLConfig(ChatTrainingConfig):
    """GRPO on the train problems of `tasks` with the verifiable reward (the answer checker). The demo's run is
    short and gentle on purpose: at lr 1e-3 the SFT model's arithmetic collapsed within 15 steps; with 64
    rollouts a step, lr 1e-4 or 5e-5 cost it 6-8 points of greedy accuracy in 20 steps (noise, not signal); 256
    rollouts a step for 30 steps (a minute more) kept it level (+2 points)."""

    tasks: list[str] = Field(default=["arithmetic", "facts", "instructions"],
                             description="the task tables whose train problems are the RL prompts")
    steps: int = Field(default=pick(tiny=3, demo=10, gpu=300), description="GRPO policy updates")
    prompts_per_step: int = Field(default=pick(tiny=4, demo=16, gpu=32), description="problems drawn per step")
    group_size: int = Field(default=pick(tiny=4, demo=8, gpu=8), description="completions sampled per problem "
                            "(G); each advantage is its reward standardised within the group")
    learning_rate: float = pick(tiny=1e-4, demo=5e-5, gpu=2e-5)
    beta: float = Field(default=0.04, description="weight of the KL penalty to the frozen SFT reference")
    budget: int = Field(default=pick(tiny=16, demo=64, gpu=256), description="reasoning budget of rollouts, tokens")
    max_answer_tokens: int = 8
    temperature: float = 1.0


def _display(context, warehouse: WarehousePaths):
    from assets.lm.registration import Display

    return Display(dg.MetadataValue.url, functools.partial(figure_metadata, warehouse_root=warehouse.root,
                                                           run_id=context.run.run_id))


@dg.asset(group_name=GROUP, code_version="1", tags=stage("training"), pool="gpu",
          ins={"documents": dg.AssetIn("facts_documents"), **TASK_INS})
def chat_base(context: dg.AssetExecutionContext, config: ChatBaseConfig, tracking: Tracking, compute: Compute,
              warehouse: WarehousePaths, chat_tokenizer: dict, documents: pd.DataFrame, **tasks) -> dict:
    """The chat base model: the LM family's decoder pretrained with its trainer on the facts world's training
    documents plus every task's train problems as plain text (question, worked solution, answer); chat-base."""
    from assets.chat.study import pretraining_texts
    from assets.corpora.facts_world import training_texts
    from assets.lm.family import fit_language_model
    from assets.lm.registration import DatasetInput, load_tokenizer_of, train_and_register
    from assets.lm.threads import torch_threads

    tokenizer = load_tokenizer_of(chat_tokenizer, tracking)
    frames = list(tasks.values())
    train = pretraining_texts(training_texts(documents), frames, "train", seed=config.seed)
    val = pretraining_texts(documents.loc[documents["split"] == "validation", "text"], frames, "validation")
    size, cfg = config.model_size("chat-base"), config.train_config(compute, eval_interval=config.max_steps)
    compute.seed_everything(config.seed)
    with torch_threads(config.cpu_threads, cfg.device):
        fitted, record, metadata = train_and_register(
            context, tracking, compute, lambda workdir, on_log: fit_language_model(
                size, tokenizer, train, val, cfg, workdir / "model", on_log=on_log),
            run_name="chat-base", asset_key="chat_base", steps=cfg.max_steps, registered="chat-base",
            params={**config.model_dump(), "train_texts": len(train), "tokenizer_uri": chat_tokenizer["tokenizer_uri"]},
            aliases=config.aliases, plot_name="chat/base_loss_curve", display=_display(context, warehouse),
            datasets=[DatasetInput.of_texts("chat-pretraining-train", train, "train", "facts_documents + chat tasks"),
                      DatasetInput.of_texts("chat-pretraining-validation", val, "validation",
                                            "facts_documents + chat tasks")])
    context.add_output_metadata({**metadata, "train_texts": len(train)})
    return {**record, "model_size": dataclasses.asdict(size), "train_texts": len(train),
            "non_embedding_parameters": fitted.non_embedding_parameters,
            "tokenizer_uri": chat_tokenizer["tokenizer_uri"]}


@dg.asset(group_name=GROUP, code_version="1", tags=stage("training"), pool="gpu", ins=TASK_INS)
def chat_sft(context: dg.AssetExecutionContext, config: ChatSFTConfig, tracking: Tracking, compute: Compute,
             warehouse: WarehousePaths, chat_base: dict, **tasks) -> dict:
    """chat-base fine-tuned on the train conversations of every task (system/user turns as context, the
    assistant's reasoning and answer as targets; validation loss on the validation conversations); chat-sft."""
    from assets.chat.sft import fine_tune, sft_data
    from assets.chat.study import split_rows, task_text
    from assets.chat.tasks import conversation
    from assets.lm.registration import DatasetInput, load_registered, train_and_register
    from assets.lm.threads import torch_threads

    cfg = config.train_config(compute, eval_interval=config.max_steps)
    model, tokenizer = load_registered(chat_base, tracking, cfg.device)
    rows = {s: split_rows(tasks.values(), s) for s in ("train", "validation")}
    train, val = (sft_data(tokenizer, [conversation(r) for _, r in rows[s].iterrows()],
                           int(chat_base["model_size"]["context_length"])) for s in ("train", "validation"))
    params = {**config.model_dump(), "base_model_uri": chat_base["model_uri"], "conversations": len(train),
              "target_tokens": train.n_target_tokens}
    compute.seed_everything(config.seed)
    with torch_threads(config.cpu_threads, cfg.device):
        fitted, record, metadata = train_and_register(
            context, tracking, compute, lambda workdir, on_log: fine_tune(
                model, tokenizer, train, cfg, workdir / "model", val, on_log=on_log),
            run_name="chat-sft", asset_key="chat_sft", params=params, steps=cfg.max_steps, registered="chat-sft",
            aliases=config.aliases, plot_name="chat/sft_loss_curve", display=_display(context, warehouse),
            datasets=[DatasetInput.of_texts(f"chat-tasks-{s}", [task_text(r) for _, r in rows[s].iterrows()], s,
                                            ", ".join(TASK_ASSETS)) for s in rows])
    context.add_output_metadata({**metadata, "conversations": len(train)})
    return {**record, "conversations": len(train), "non_embedding_parameters": fitted.non_embedding_parameters,
            "base_model_uri": chat_base["model_uri"], "model_size": chat_base["model_size"]}


@dg.asset(group_name=GROUP, code_version="1", tags=stage("training"), pool="gpu", ins=TASK_INS)
def chat_rl(context: dg.AssetExecutionContext, config: ChatRLConfig, tracking: Tracking, compute: Compute,
            warehouse: WarehousePaths, chat_sft: dict, **tasks) -> dict:
    """chat-sft trained with GRPO (group-relative advantages, clipped ratio, KL to the frozen SFT model) on the
    verifiable reward: 1 for an answer the task's checker accepts, 0 otherwise; chat-rl. The demo's run is too
    short to improve on SFT (10 steps of 128 rollouts; greedy accuracy stays within a few points of SFT's):
    the reward curve and the budget table show what it did."""
    from assets.chat.plots import training_figure
    from assets.chat.rl import GRPOConfig, grpo
    from assets.chat.study import reward_summary, rows_of_tasks, split_rows
    from assets.chat.tasks import verifiable_reward
    from assets.lm.model import count_parameters, save_checkpoint
    from assets.lm.registration import ProgressLog, load_registered, log_training_run
    from assets.lm.threads import torch_threads

    device = compute.torch_device()
    policy, tokenizer = load_registered(chat_sft, tracking, device)
    reference, _ = load_registered(chat_sft, tracking, device)
    rows = rows_of_tasks(split_rows(tasks.values(), "train"), config.tasks)
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    cfg = GRPOConfig(**{k: v for k, v in config.model_dump().items() if k in fields}, device=device)
    progress = ProgressLog(context.log.info, cfg.steps, "chat-rl")
    params = {**config.model_dump(), "sft_model_uri": chat_sft["model_uri"], "prompts": len(rows), "device": device}
    compute.seed_everything(config.seed)
    with torch_threads(config.cpu_threads, device), tempfile.TemporaryDirectory() as tmp, tracking.start_run(
            "chat-rl", dagster_run_id=context.run.run_id, asset_key="chat_rl", params=params) as run_id:
        result = grpo(policy, tokenizer, rows, verifiable_reward, cfg, reference=reference,
                      on_log=lambda row: progress(f"steps, mean reward {row['mean_reward']:.3f}", done=row["step"]))
        save_checkpoint(policy, tokenizer, f"{tmp}/model")
        metrics = {**reward_summary(result.curve), "train_seconds": result.seconds}
        model = log_training_run(tracking, run_id, curve=result.curve, metrics=metrics, checkpoint_dir=f"{tmp}/model",
                                 registered="chat-rl", aliases=config.aliases)
    plot = figure_metadata(training_figure({"chat-rl": result.curve}, "mean_reward", "mean reward", "chat-rl"),
                           "chat/rl_reward_curve", warehouse.root, context.run.run_id)
    context.add_output_metadata({"model_uri": model["model_uri"], "mlflow": dg.MetadataValue.url(model["mlflow_link"]),
                                 **metrics, "reward_curve": plot})
    return {**model, **metrics, "sft_model_uri": chat_sft["model_uri"], "model_size": chat_sft["model_size"],
            "hardware": compute.hardware(), "parameters": count_parameters(policy),
            "non_embedding_parameters": count_parameters(policy, non_embedding=True)}


# ------------------------------------------------------------------------------------------------ evaluation
class BudgetAccuracyConfig(StudyConfig):
    """Which budgets and effort levels to answer under, how many samples per answer, and the check's rule."""

    budgets: list[int] = Field(default=pick(tiny=[0, 4, 16], demo=[0, 8, 16, 32, 64], gpu=[0, 16, 64, 256]),
                               description="reasoning budgets to answer under, in tokens (0: answer at once)")
    efforts: dict[str, int] = Field(default={"low": 16, "medium": 64, "high": 256},
                                    description="effort level -> reasoning budget (as `reprolab serve` maps them)")
    k: int = Field(default=1, description="samples per answer; >1 scores their majority vote")
    temperature: float = Field(default=0.0, description="0: greedy")
    max_answer_tokens: int = 8
    min_gain: float = Field(default=0.1, description="the WARN check: accuracy gain from the smallest to the "
                            "largest budget on arithmetic, for every model")
    seed: int = 0
    cpu_threads: int = 1


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"), pool="gpu", ins=TASK_INS, check_specs=[
    dg.AssetCheckSpec("accuracy_rises_with_budget", asset="chat_budget_accuracy",
                      description="On multi-step arithmetic, accuracy at the largest budget exceeds accuracy at "
                                  "budget 0 by min_gain, for every model (WARN: a finding, not a bug)"),
    dg.AssetCheckSpec("budget_accuracy_valid", asset="chat_budget_accuracy",
                      description="accuracies in [0, 1], reasoning tokens within the budget, FLOPs positive")])
def chat_budget_accuracy(context: dg.AssetExecutionContext, config: BudgetAccuracyConfig, tracking: Tracking,
                         compute: Compute, warehouse: WarehousePaths, chat_sft: dict, chat_rl: dict, **tasks):
    """Accuracy of chat-sft and chat-rl on each task's test problems under each reasoning budget and effort
    level (the budget is a hard cap: at it the reasoning is closed and the answer forced), with reasoning
    tokens and forward FLOPs per answer. The premise of the inference-time-compute study: more thinking, more
    accuracy on multi-step problems."""
    from assets.chat.plots import budget_accuracy_figure
    from assets.chat.study import accuracy_rises, budget_accuracy, split_rows
    from assets.lm.registration import load_registered
    from assets.lm.threads import torch_threads

    compute.seed_everything(config.seed)
    device = compute.torch_device()
    models = {name: load_registered(record, tracking, device) for name, record in (("sft", chat_sft), ("rl", chat_rl))}
    tokenizer = models["sft"][1]
    with torch_threads(config.cpu_threads, device):
        table = budget_accuracy({n: m for n, (m, _) in models.items()}, tokenizer, split_rows(tasks.values(), "test"),
                                config.budgets, config.efforts, k=config.k, temperature=config.temperature,
                                max_answer_tokens=config.max_answer_tokens, seed=config.seed)
    table["model_uri"] = table["model"].map({"sft": chat_sft["model_uri"], "rl": chat_rl["model_uri"]})
    rises = accuracy_rises(table, "arithmetic", min_gain=config.min_gain)
    pivot = table.pivot_table(index=["model", "task"], columns="setting", values="accuracy", sort=False)
    yield dg.Output(table, metadata={
        "accuracy": markdown_table(pivot.reset_index()),
        "plot": figure_metadata(budget_accuracy_figure(table), "chat/budget_accuracy", warehouse.root,
                                context.run.run_id),
        **{f"arithmetic_gain_{m}": r["gain"] for m, r in rises.items()}})
    yield dg.AssetCheckResult(check_name="accuracy_rises_with_budget", severity=dg.AssetCheckSeverity.WARN,
                              passed=all(r["passed"] for r in rises.values()),
                              metadata={"by_model": dg.MetadataValue.json(rises), "min_gain": config.min_gain})
    gxe = expectations()
    within = table.assign(over_budget=table["max_reasoning_tokens"] - table["budget"])
    yield gx_check(within, [
        gxe.ExpectColumnValuesToBeBetween(column="accuracy", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="over_budget", max_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="flops_per_answer", min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="accuracy"),
    ], name="chat_budget_accuracy", check_name="budget_accuracy_valid")


defs = dg.Definitions(assets=[chat_arithmetic_tasks, chat_facts_tasks, chat_instruction_tasks, chat_tokenizer,
                              chat_base, chat_sft, chat_rl, chat_budget_accuracy])
