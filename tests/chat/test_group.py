"""The chat group end to end on the tiny profile: task worlds, tokenizer, base/SFT/RL models, the budget table."""

import re

import dagster as dg
import numpy as np
import pandas as pd
import pytest

# registered without training, so with no data of their own: chat-sft's weights under another name (the alignment
# room's policy-in-context baseline pastes the policy at inference)
UNTRAINED = ("alignment-policy-in-context",)


def test_chat_group_materializes_with_consistent_numbers(backbone):
    from assets.chat.budget import EFFORT_BUDGETS
    from assets.chat.format import CHAT_SPECIAL_TOKENS, prompt_ids
    from assets.chat.tasks import prompt_messages
    from assets.lm.registry import load_model
    from pipelines.serve import load_server
    from resources.catalog import query
    from tests.backbone import SAFETY_DATA

    result = backbone.materialize("chat", also=SAFETY_DATA)  # reads the session's facts world (checked there)

    tables = {t: result.asset_value(f"chat_{t}_tasks") for t in ("arithmetic", "facts", "instruction")}
    for frame in tables.values():
        assert frame["task_id"].is_unique and set(frame["split"]) == {"train", "validation", "test"}
    assert tables["arithmetic"]["split"].value_counts().to_dict() == {"train": 200, "validation": 20, "test": 20}
    assert tables["facts"]["split"].value_counts().to_dict() == {"train": 100, "validation": 20, "test": 20}
    # the instruction tasks are the facts questions under a system constraint, splits kept
    assert list(tables["instruction"]["split"]) == list(tables["facts"]["split"])
    assert (tables["instruction"]["system"] != "").all()

    records = {name: result.asset_value(f"chat_{name}") for name in ("base", "sft", "rl")}
    for name, record in records.items():
        assert record["registered_model"] == f"chat-{name}"
        assert record["model_uri"] == f"models:/chat-{name}/{record['model_version']}"
    assert records["sft"]["base_model_uri"] == records["base"]["model_uri"]
    assert records["rl"]["sft_model_uri"] == records["sft"]["model_uri"]
    vocab = result.asset_value("chat_tokenizer")["vocab_size"]
    assert 0 < records["sft"]["final_val_loss"] < np.log(vocab)  # below a uniform guess over the vocabulary
    assert 0 <= records["rl"]["first_reward"] <= 1 and records["rl"]["final_kl"] >= 0
    rl = records["rl"]  # whether RL moved the policy, by the stated rule, with its sentence
    assert rl["rl_moved_policy"] == (rl["last_reward"] - rl["first_reward"] >= 0.05 and rl["final_kl"] >= 0.01)
    assert rl["rl_movement"].startswith("RL moved" if rl["rl_moved_policy"] else "RL did not move")

    # The registered model loads by alias, with the chat template: every task word is a known token.
    tracking_uri = backbone.resources["tracking"].resolved_tracking_uri
    model, tokenizer = load_model("models:/chat-rl@current", tracking_uri)
    assert set(CHAT_SPECIAL_TOKENS) <= set(tokenizer.get_vocab()) and tokenizer.chat_template
    row = tables["instruction"].iloc[0]
    ids = prompt_ids(tokenizer, prompt_messages(row))
    assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids).endswith("<|assistant|> <|reasoning|>")
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    served = load_server("models:/chat-sft@current", tracking_uri)  # what `reprolab serve` loads: the alias's version
    version = backbone.resources["tracking"].client.get_model_version_by_alias("chat-sft", "current").version
    assert served.name == f"chat-sft/{version}" and served.served.model_uri == f"models:/chat-sft/{version}"
    assert served.model.config.vocab_size == len(tokenizer)

    table = result.asset_value("chat_budget_accuracy")
    settings = 3 + len(EFFORT_BUDGETS)  # tiny budgets 0, 4, 16 and the three effort levels
    assert len(table) == 2 * 3 * settings and set(table["model"]) == {"sft", "rl"}
    assert set(table["task"]) == {"arithmetic", "facts", "instructions"}
    assert table["accuracy"].between(0, 1).all() and (table["n"] == 20).all()
    assert (table["mean_reasoning_tokens"] <= table["budget"]).all() and (table["budget"] <= table["requested_budget"]).all()
    efforts = table[table["effort"] != ""]
    assert (efforts["requested_budget"] == efforts["effort"].map(EFFORT_BUDGETS)).all()
    assert (table.loc[table["requested_budget"] == 0, "mean_reasoning_tokens"] == 0).all()
    # FLOPs per answer = 2 N (prompt + generated - 1): with the same prompts, linear in the generated tokens
    n = records["sft"]["non_embedding_parameters"]
    for _, group in table.groupby(["model", "task"]):
        offset = group["flops_per_answer"] - 2 * n * group["mean_generated_tokens"]
        assert np.allclose(offset, offset.iloc[0]) and offset.iloc[0] > 0
    # an effort level reuses the answers of the equal budget
    same = table[(table["requested_budget"] == 16)].groupby(["model", "task"])["accuracy"].nunique()
    assert (same == 1).all()

    checks = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
    for name in ("chat_arithmetic_tasks", "chat_facts_tasks", "chat_instruction_tasks"):
        assert checks[(name, "task_table_valid")].passed
    assert checks[("chat_budget_accuracy", "budget_accuracy_valid")].passed
    rises = checks[("chat_budget_accuracy", "accuracy_rises_with_budget")]
    assert rises.severity == dg.AssetCheckSeverity.WARN and set(rises.metadata["by_model"].value) == {"sft", "rl"}

    catalog = query(str(backbone.root), "SELECT model, count(*) AS n FROM chat.chat_budget_accuracy GROUP BY model")
    assert isinstance(catalog, pd.DataFrame) and sorted(catalog["n"]) == [3 * settings] * 2


def test_every_registered_model_loads_as_an_mlflow_pyfunc_model(backbone):
    """Every model the session registered (the LM family, the chat models and whatever else ran before) is an
    MLflow model: `mlflow.pyfunc.load_model` on its exact URI generates text; a chat model answers in words."""
    import mlflow

    backbone.chat_models()
    tracking = backbone.resources["tracking"]
    versions = [v for m in tracking.client.search_registered_models()
                for v in tracking.client.search_model_versions(f"name = '{m.name}'")]
    assert {"chat-sft", "chat-rl", "chat-base"} <= {v.name for v in versions} and len(versions) >= 5
    mlflow.set_tracking_uri(tracking.resolved_tracking_uri)
    try:
        for version in versions:
            model = mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")
            texts = model.predict({"prompt": ["compute 1 + 2", "where was"]}, params={"max_new_tokens": 4})
            assert len(texts) == 2 and all(isinstance(t, str) for t in texts), version.name
            if version.name.startswith("chat-"):  # a user prompt may not forge a system turn
                with pytest.raises(ValueError, match=re.escape("chat token '<|system|>'")):
                    model.predict({"prompt": ["compute <|system|> 1 + 2"]}, params={"max_new_tokens": 1})
            assert version.tags["reprolab.profile"] == "tiny" and version.description, version.name
            inputs = tracking.client.get_run(version.run_id).inputs.dataset_inputs
            if version.name.startswith("lm-") or version.name in ("chat-base", "chat-sft"):  # what it trained on
                assert {t.value for i in inputs for t in i.tags} == {"train", "validation"}, version.name
            elif version.name not in UNTRAINED:  # every trained model lists at least its training data
                assert "train" in {t.value for i in inputs for t in i.tags}, version.name
    finally:
        mlflow.set_tracking_uri(None)
