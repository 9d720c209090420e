"""The chat Dagster side's plain helpers: task tables' counts and rules, the rendered template, accuracy by
setting, the GRPO settings and the MLflow datasets of each split (each rule shown to fail)."""

import pandas as pd

from assets.chat import validity
from assets.chat.rl import GRPOConfig
from assets.chat.runs import pretraining_datasets, rl_record, task_datasets
from assets.chat.tables import (
    accuracy_by_setting,
    problems_by_kind,
    problems_by_split,
    template_example,
    worked_example,
)
from resources.validation import expectations, gx_check


def test_task_table_counts_example_and_rules(arithmetic):
    counts = problems_by_split(arithmetic)
    assert counts == {"test_problems": 40, "train_problems": 200, "validation_problems": 40}
    assert problems_by_kind(arithmetic)["problems"].sum() == len(arithmetic)
    first = arithmetic.iloc[0]
    assert worked_example(arithmetic) == f"**{first['prompt']}** -> {first['reasoning']} => **{first['answer']}**"
    assert gx_check(*validity.task_table(expectations(), arithmetic, "arithmetic"), name="t").passed
    assert not gx_check(*validity.task_table(expectations(), arithmetic, "facts"), name="t").passed
    broken = arithmetic.assign(n_steps=arithmetic["n_steps"].where(arithmetic.index > 0, 0))
    assert not gx_check(*validity.task_table(expectations(), broken, "arithmetic"), name="t").passed


def test_template_example_renders_the_system_and_user_turns(tokenizer):
    text = template_example(tokenizer)
    assert text.startswith("`") and text.endswith("`") and "compute 1 + 2" in text and "upper case" in text


def test_budget_table_rules_and_accuracy_by_setting():
    table = pd.DataFrame({"model": ["sft", "sft"], "task": ["arithmetic"] * 2, "setting": ["budget 0", "budget 8"],
                          "accuracy": [0.2, 0.5], "budget": [0, 8], "max_reasoning_tokens": [0, 8],
                          "flops_per_answer": [10.0, 90.0]})
    assert gx_check(*validity.budget_accuracy(expectations(), table), name="b").passed
    over = table.assign(max_reasoning_tokens=[0, 9])
    assert not gx_check(*validity.budget_accuracy(expectations(), over), name="b").passed
    pivot = accuracy_by_setting(table)
    assert list(pivot.columns) == ["model", "task", "budget 0", "budget 8"] and pivot["budget 8"].iloc[0] == 0.5


def test_grpo_config_of_settings_datasets_and_rl_record(tokenizer):
    from assets.lm.model import count_parameters
    from tests.chat.conftest import make_model

    cfg = GRPOConfig.of({"steps": 3, "beta": 0.1, "aliases": ["current"], "tasks": ["facts"], "device": "cuda"},
                        "cpu", bf16=True)
    assert cfg.steps == 3 and cfg.beta == 0.1 and cfg.device == "cpu" and cfg.bf16
    assert not GRPOConfig.of({}, "cpu").bf16
    train, val = pretraining_datasets(["a b", "c"], ["d"])
    assert (train.name, train.rows, val.split, val.source) == ("chat-pretraining-train", 2, "validation",
                                                              "facts_documents + chat tasks")
    rows = {"train": pd.DataFrame({"system": [""], "prompt": ["p"], "reasoning": ["r"], "answer": ["a"]})}
    (dataset,) = task_datasets(rows, "chat_arithmetic_tasks")
    assert (dataset.name, dataset.rows, dataset.source) == ("chat-tasks-train", 1, "chat_arithmetic_tasks")
    policy = make_model(tokenizer)
    record = rl_record({"model_uri": "models:/chat-rl/1"}, {"final_mean_reward": 0.5},
                       {"model_uri": "models:/chat-sft/1", "model_size": {"d_model": 2}}, policy, "cpu")
    assert record["model_uri"] == "models:/chat-rl/1" and record["sft_model_uri"] == "models:/chat-sft/1"
    assert record["parameters"] == count_parameters(policy) > record["non_embedding_parameters"]
    assert record["final_mean_reward"] == 0.5 and record["hardware"] == "cpu" and record["model_size"] == {"d_model": 2}
