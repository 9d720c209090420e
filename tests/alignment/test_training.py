"""The policy-in-context baseline is registered once per starting point and system message."""

from types import SimpleNamespace

import torch

from assets.alignment.training import register_policy_in_context
from resources.tracking import Tracking


def test_policy_in_context_is_registered_once_per_starting_point_and_message(warehouse_root, tmp_path):
    tracking = Tracking(warehouse_root=str(warehouse_root))
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    torch.save({"w": torch.zeros(2)}, checkpoint / "weights.pt")
    with tracking.start_run("chat-sft") as run_id:
        start = tracking.log_model(run_id, checkpoint, "chat-sft-unit")
    excerpt = {"clauses": ["P1"], "tokens": 12, "full_policy_tokens": 90, "text": "P1 : never share a birth year ."}
    context = SimpleNamespace(run=SimpleNamespace(run_id="dagster-run-1"))
    first = register_policy_in_context(context, tracking, start, excerpt)
    again = register_policy_in_context(SimpleNamespace(run=SimpleNamespace(run_id="nightly")), tracking, start, excerpt)
    assert again["model_uri"] == first["model_uri"] == "models:/alignment-policy-in-context/1"
    assert again["mlflow_run_id"] == first["mlflow_run_id"] and again["system_message"] == excerpt["text"]
    other = register_policy_in_context(context, tracking, start, {**excerpt, "clauses": [], "text": ""})
    assert other["model_uri"] == "models:/alignment-policy-in-context/2"  # another message: a new version
    current = tracking.client.get_model_version_by_alias("alignment-policy-in-context", "current")
    assert int(current.version) == 2
    back = register_policy_in_context(context, tracking, start, excerpt)
    assert back["model_uri"] == first["model_uri"]  # the first message again: its version, now current
    assert int(tracking.client.get_model_version_by_alias("alignment-policy-in-context", "current").version) == 1
    assert len(tracking.client.search_model_versions("name='alignment-policy-in-context'")) == 2
