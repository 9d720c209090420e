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

import functools

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.chat import tables, validity
from assets.chat.facts_questions import ALL_MULTI_HOP_KINDS, MULTI_HOP_KINDS
from assets.lm.config import ModelShape, Optimiser
from assets.lm.registration import Display
from resources.compute import Compute
from resources.config import StudyConfig
from resources.presentation import figure_metadata, markdown_table
from resources.profiles import pick, step_threads
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
    # demo and gpu phrasings, every_phrasing_in_train, same_profession: chosen after seeing results (chat.post_hoc)
    phrasings: int = Field(default=pick(tiny=1, demo=5, gpu=5), description="a single-hop question is asked in one "
                           "of this many phrasings (1: one)")
    every_phrasing_in_train: bool = Field(default=pick(tiny=False, demo=True, gpu=False), description="ask each train "
                                          "single-hop fact in every phrasing (the train split grows past n_train)")
    multi_hop_kinds: list[str] = Field(default=pick(tiny=list(MULTI_HOP_KINDS), demo=list(ALL_MULTI_HOP_KINDS),
                                                    gpu=list(MULTI_HOP_KINDS)), description="multi-hop kinds drawn")
    n_train: int = Field(default=pick(tiny=100, demo=600, gpu=10000), description="questions in the train split")
    n_validation: int = Field(default=pick(tiny=20, demo=50, gpu=500),
                              description="questions in the validation split")
    n_test: int = Field(default=pick(tiny=20, demo=100, gpu=500), description="questions in the test split")


class InstructionTasksConfig(StudyConfig):
    """The facts questions (one phrasing per fact) asked again under a system message constraining the answer."""

    seed: int = 0
    kinds: list[str] = Field(default=["upper_case", "n_words", "end_word", "start_word"],
                             description="the answer-form constraints each problem draws one of")


def _task_output(frame: pd.DataFrame, name: str, task: str):
    """The task table with its counts as metadata, and its GX check."""
    by_kind = markdown_table(tables.problems_by_kind(frame))
    yield dg.Output(frame, metadata={**tables.problems_by_split(frame), "by_kind": by_kind,
                                     "example": dg.MetadataValue.md(tables.worked_example(frame))})
    yield gx_check(*validity.task_table(expectations(), frame, task), name=name,
                   check_name="task_table_valid")


def _task_check(name: str) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec("task_table_valid", asset=name, description=validity.TASK_TABLE_RULES)]


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
    from assets.chat.facts_questions import one_phrasing_per_fact
    from assets.chat.tasks import InstructionSpec, instruction_problems

    frame = instruction_problems(one_phrasing_per_fact(chat_facts_tasks),
                                 InstructionSpec(seed=config.seed, kinds=tuple(config.kinds)))
    yield from _task_output(frame, "chat_instruction_tasks", "instructions")


# ------------------------------------------------------------------------------------------------- tokenizer
@dg.asset(group_name=GROUP, code_version="2", tags=stage("data"),
          ins={**TASK_INS, "safety_vocabulary": dg.AssetIn("safety_vocabulary")})
def chat_tokenizer(context: dg.AssetExecutionContext, tracking: Tracking, facts_world: dict,
                   safety_vocabulary: pd.DataFrame, **tasks):
    """Word-level tokenizer over the facts world's words, every task word, the numbers 0-99 and the safety
    policy's and battery's words (`safety_vocabulary`: read, never trained on), with the chat special tokens
    (roles, reasoning channel, answer, end) and the Jinja chat template, logged to MLflow."""
    from assets.chat.runs import log_tokenizer
    from assets.chat.study import build_chat_tokenizer
    from assets.chat.tables import template_example

    tokenizer, added = build_chat_tokenizer(facts_world, list(tasks.values()), safety_vocabulary["word"])
    record = log_tokenizer(tracking, tokenizer, context.run.run_id)
    context.add_output_metadata({"vocab_size": len(tokenizer), "tokenizer_uri": record["tokenizer_uri"],
                                 "safety_words_added": added,
                                 "mlflow": dg.MetadataValue.url(record["mlflow_link"]),
                                 "template_example": dg.MetadataValue.md(template_example(tokenizer))})
    return record


# -------------------------------------------------------------------------------------------------- training
class ChatTrainingConfig(StudyConfig):
    """What every chat training asset shares: seed, torch CPU threads, MLflow aliases."""

    seed: int = 0
    cpu_threads: int = Field(default=step_threads(), description="torch CPU threads while training (0: torch's default)")
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

    # demo 800 (was 500) after seeing results: with every phrasing (a ~20% larger mix) 500 or 620 steps cost arithmetic
    max_steps: int = pick(tiny=20, demo=800, gpu=3000)
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
    return Display(dg.MetadataValue.url, functools.partial(figure_metadata, warehouse_root=warehouse.root,
                                                           run_id=context.run.run_id))


@dg.asset(group_name=GROUP, code_version="1", tags=stage("training"), pool="gpu",
          ins={"documents": dg.AssetIn("facts_documents"), **TASK_INS})
def chat_base(context: dg.AssetExecutionContext, config: ChatBaseConfig, tracking: Tracking, compute: Compute,
              warehouse: WarehousePaths, chat_tokenizer: dict, documents: pd.DataFrame, **tasks) -> dict:
    """The chat base model: the LM family's decoder pretrained with its trainer on the facts world's training
    documents plus every task's train problems as plain text (question, worked solution, answer); chat-base."""
    from assets.chat.runs import pretrain_chat_base

    record, metadata = pretrain_chat_base(context, tracking, compute, config, chat_tokenizer, documents,
                                          list(tasks.values()), display=_display(context, warehouse))
    context.add_output_metadata(metadata)
    return record


@dg.asset(group_name=GROUP, code_version="1", tags=stage("training"), pool="gpu", ins=TASK_INS)
def chat_sft(context: dg.AssetExecutionContext, config: ChatSFTConfig, tracking: Tracking, compute: Compute,
             warehouse: WarehousePaths, chat_base: dict, **tasks) -> dict:
    """chat-base fine-tuned on the train conversations of every task (system/user turns as context, the
    assistant's reasoning and answer as targets; validation loss on the validation conversations); chat-sft."""
    from assets.chat.runs import fine_tune_chat_sft

    record, metadata = fine_tune_chat_sft(context, tracking, compute, config, chat_base, tasks.values(),
                                          display=_display(context, warehouse), source=", ".join(TASK_ASSETS))
    context.add_output_metadata(metadata)
    return record


@dg.asset(group_name=GROUP, code_version="1", tags=stage("training"), pool="gpu", ins=TASK_INS)
def chat_rl(context: dg.AssetExecutionContext, config: ChatRLConfig, tracking: Tracking, compute: Compute,
            warehouse: WarehousePaths, chat_sft: dict, **tasks) -> dict:
    """chat-sft trained with GRPO (group-relative advantages, clipped ratio, KL to the frozen SFT model) on the
    verifiable reward (1 when the task's checker accepts the answer); chat-rl. The demo's 10 steps of 128 rollouts
    do not move the policy (`rl_moved_policy`): the reward curve and the budget table show what it did."""
    from assets.chat.plots import training_figure
    from assets.chat.runs import train_chat_rl

    record, metrics, curve = train_chat_rl(tracking, compute, config, chat_sft, tasks.values(),
                                           context.run.run_id, log=context.log.info)
    plot = figure_metadata(training_figure({"chat-rl": curve}, "mean_reward", "mean reward", "chat-rl"),
                           "chat/rl_reward_curve", warehouse.root, context.run.run_id)
    context.add_output_metadata({"model_uri": record["model_uri"], "mlflow": dg.MetadataValue.url(record["mlflow_link"]),
                                 **metrics, "reward_curve": plot})
    return record


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
    cpu_threads: int = step_threads()


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"), pool="gpu", ins=TASK_INS, check_specs=[
    dg.AssetCheckSpec("accuracy_rises_with_budget", asset="chat_budget_accuracy",
                      description=validity.ACCURACY_RISES),
    dg.AssetCheckSpec("budget_accuracy_valid", asset="chat_budget_accuracy",
                      description=validity.BUDGET_ACCURACY_RULES)])
def chat_budget_accuracy(context: dg.AssetExecutionContext, config: BudgetAccuracyConfig, tracking: Tracking,
                         compute: Compute, warehouse: WarehousePaths, chat_sft: dict, chat_rl: dict, **tasks):
    """Accuracy of chat-sft and chat-rl on each task's test problems under each reasoning budget and effort
    level (the budget is a hard cap: at it the reasoning is closed and the answer forced), with reasoning
    tokens and forward FLOPs per answer. The premise of the inference-time-compute study: more thinking, more
    accuracy on multi-step problems."""
    from assets.chat.plots import budget_accuracy_figure
    from assets.chat.runs import budget_accuracy_of
    from assets.chat.study import accuracy_rises
    from assets.chat.tables import accuracy_by_setting

    table = budget_accuracy_of(tracking, compute, config, {"sft": chat_sft, "rl": chat_rl}, tasks.values())
    rises = accuracy_rises(table, "arithmetic", min_gain=config.min_gain)
    plot = figure_metadata(budget_accuracy_figure(table), "chat/budget_accuracy", warehouse.root, context.run.run_id)
    yield dg.Output(table, metadata={"accuracy": markdown_table(accuracy_by_setting(table)), "plot": plot,
                                     **{f"arithmetic_gain_{m}": r["gain"] for m, r in rises.items()}})
    yield dg.AssetCheckResult(check_name="accuracy_rises_with_budget", severity=dg.AssetCheckSeverity.WARN,
                              passed=all(r["passed"] for r in rises.values()),
                              metadata={"by_model": dg.MetadataValue.json(rises), "min_gain": config.min_gain})
    yield gx_check(*validity.budget_accuracy(expectations(), table), name="chat_budget_accuracy",
                   check_name="budget_accuracy_valid")


defs = dg.Definitions(assets=[chat_arithmetic_tasks, chat_facts_tasks, chat_instruction_tasks, chat_tokenizer,
                              chat_base, chat_sft, chat_rl, chat_budget_accuracy])
