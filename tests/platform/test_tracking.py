"""MLflow tracking: a real SQLite store under the warehouse; models logged, registered, aliased, reloaded."""

import dagster as dg
import pytest
import torch

from resources.settings import ConfigurationError
from resources.tracking import Tracking


def test_model_logged_registered_aliased_and_reloaded(warehouse_root, tmp_path):
    tracking = Tracking(warehouse_root=str(warehouse_root))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    torch.save(model.state_dict(), checkpoint / "weights.pt")

    with tracking.start_run("unit", dagster_run_id="run-123", asset_key="lm/tiny", params={"width": 8}) as run_id:
        tracking.log_metric_history(run_id, [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}])
        record = tracking.log_model(run_id, checkpoint, "lm-unit-tiny", aliases=("champion",))

    assert record["model_uri"] == "models:/lm-unit-tiny/1"
    assert record["mlflow_link"].endswith(run_id)
    run = tracking.client.get_run(run_id)
    assert run.data.tags["dagster.run_id"] == "run-123" and run.data.tags["dagster.asset_key"] == "lm/tiny"
    assert run.data.params["width"] == "8" and run.info.status == "FINISHED"
    assert [m.value for m in tracking.client.get_metric_history(run_id, "loss")] == [2.0, 1.0]

    x = torch.randn(5, 4)
    for uri in (record["model_uri"], "models:/lm-unit-tiny@champion"):
        reloaded = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
        reloaded.load_state_dict(torch.load(tracking.download_model(uri) / "weights.pt"))
        assert torch.equal(reloaded(x), model(x))

    # a second version moves the alias; the exact URI of version 1 still loads version 1
    with tracking.start_run("unit-2") as run2:
        record2 = tracking.log_model(run2, checkpoint, "lm-unit-tiny", aliases=("champion",))
    assert record2["model_version"] == 2
    assert tracking.resolve_model_source("models:/lm-unit-tiny@champion") == record2["artifact_uri"]
    assert tracking.resolve_model_source(record["model_uri"]) == record["artifact_uri"]


def test_failed_body_marks_run_failed(warehouse_root):
    tracking = Tracking(warehouse_root=str(warehouse_root))
    with pytest.raises(RuntimeError), tracking.start_run("boom") as run_id:
        raise RuntimeError("diverged")
    assert tracking.client.get_run(run_id).info.status == "FAILED"


def test_unreachable_tracking_uri_names_the_setting(warehouse_root):
    tracking = Tracking(warehouse_root=str(warehouse_root), tracking_uri="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="tracking_uri='http://127.0.0.1:9'"):
        tracking.setup_for_execution()


def test_tracking_resource_inside_an_asset(resources_for):
    @dg.asset(group_name="demo_group")
    def tracked(context: dg.AssetExecutionContext, tracking: Tracking) -> dict:
        with tracking.start_run("tracked", dagster_run_id=context.run.run_id,
                                asset_key=context.asset_key.to_user_string()) as run_id:
            tracking.log_metrics(run_id, {"score": 0.5})
        return {"mlflow_run_id": run_id, "dagster_run": context.run.run_id}

    result = dg.materialize([tracked], resources=resources_for)
    record = result.output_for_node("tracked")
    run = resources_for["tracking"].client.get_run(record["mlflow_run_id"])
    assert run.data.tags["dagster.run_id"] == result.run_id
    assert run.data.metrics["score"] == 0.5


def test_ui_address_comes_from_one_setting_and_the_experiment_is_model_training(tmp_path, monkeypatch):
    from resources.tracking import Tracking, default_ui_url

    monkeypatch.setenv("REPROLAB_MLFLOW_UI_URL", "http://127.0.0.1:5123")
    assert default_ui_url() == "http://127.0.0.1:5123"
    tracking = Tracking(warehouse_root=str(tmp_path), ui_url=default_ui_url())
    with tracking.start_run("link") as run_id:
        pass
    assert tracking.run_link(run_id).startswith("http://127.0.0.1:5123/#/experiments/")
    exp = tracking.client.get_experiment_by_name(tracking.experiment)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_moved_warehouse_loads_its_models_and_logs_new_ones_inside_it(tmp_path):
    """The SQLite store records absolute artifact paths: after the warehouse moves, registered models load from
    the new folder, and new runs write there too (not to the old folder, another lab's or gone)."""
    import shutil

    from assets.lm.registry import model_dir

    old, new = tmp_path / "old" / "warehouse", tmp_path / "new" / "warehouse"
    tracking = Tracking(warehouse_root=str(old))
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    torch.save({"w": torch.arange(3.0)}, checkpoint / "weights.pt")
    with tracking.start_run("before") as first_run:
        tracking.log_model(first_run, checkpoint, "lm-moved", aliases=("current",))
    shutil.move(str(old), str(new))
    moved = Tracking(warehouse_root=str(new))
    for uri in ("models:/lm-moved/1", "models:/lm-moved@current", f"runs:/{first_run}/model"):
        folder = model_dir(uri, moved.resolved_tracking_uri)
        assert folder.is_relative_to(new) and torch.equal(torch.load(folder / "weights.pt")["w"], torch.arange(3.0))
    assert moved.download_model("models:/lm-moved/1").is_relative_to(new)
    with moved.start_run("after") as run_id:
        record = moved.log_model(run_id, checkpoint, "lm-moved")
    assert record["model_version"] == 2 and record["artifact_uri"].removeprefix("file://").startswith(str(new))
    assert not old.exists()  # nothing was written to the old folder


def test_an_alias_move_records_the_version_before_and_can_be_undone(warehouse_root, tmp_path):
    """Each alias move tags the new version with the one that held the alias before; `restore_alias` undoes a
    move (what the resource's teardown does for a step that failed). Outside a Dagster step nothing is
    remembered for teardown."""
    from resources.aliases import ALIAS_BEFORE, FAILED_STEP_TAG, AliasMove, alias_holder

    tracking = Tracking(warehouse_root=str(warehouse_root))
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    torch.save({"w": torch.zeros(2)}, checkpoint / "weights.pt")
    with tracking.start_run("one") as run1:
        tracking.register_version(run1, "lm-moves", str(checkpoint), aliases=("current", "best"))
    with tracking.start_run("two") as run2:
        record = tracking.register_version(run2, "lm-moves", str(checkpoint))
    assert record["aliases"] == ["current"] and alias_holder(tracking.client, "lm-moves", "current") == "2"
    assert alias_holder(tracking.client, "lm-moves", "best") == "1"
    assert tracking.client.get_model_version("lm-moves", "1").tags[f"{ALIAS_BEFORE}best"] == "none"
    assert tracking.client.get_model_version("lm-moves", "2").tags[f"{ALIAS_BEFORE}current"] == "1"
    assert tracking._moves == []  # not inside a step: no teardown will undo these

    tracking.restore_alias(AliasMove("lm-moves", "current", "2", "1", "run-x", "train", 0))
    assert alias_holder(tracking.client, "lm-moves", "current") == "1"
    assert tracking.client.get_model_version("lm-moves", "2").tags[FAILED_STEP_TAG] == "run-x:train"
    tracking.restore_alias(AliasMove("lm-moves", "best", "1", None, "run-y", "train", 0))
    assert alias_holder(tracking.client, "lm-moves", "best") is None
