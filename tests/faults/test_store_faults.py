"""Faults at the MLflow store (issue 15, 4-5): a half-migrated store, a full disk while logging a model, and two
processes opening a fresh store at once."""

import errno
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from resources.tracking import Tracking

REPO = Path(__file__).resolve().parents[2]


def test_half_migrated_store_is_repaired(tmp_path):
    db = tmp_path / "_mlflow" / "mlflow.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as con:  # what an interrupted batch migration leaves behind
        con.execute("CREATE TABLE _alembic_tmp_experiments (x INTEGER)")
    tracking = Tracking(warehouse_root=str(tmp_path))
    with tracking.start_run("after-repair") as run_id:
        tracking.log_metrics(run_id, {"x": 1.0})
    assert tracking.client.get_run(run_id).info.status == "FINISHED"
    with sqlite3.connect(db) as con:
        assert not con.execute("SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp%'").fetchall()


def test_full_disk_while_logging_a_model_leaves_no_partial_artifact_and_a_failed_run(tmp_path, monkeypatch):
    tracking = Tracking(warehouse_root=str(tmp_path))
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"\0" * 4096)
    (checkpoint / "config.json").write_text("{}")
    real = tracking.client.log_artifacts

    def disk_fills(run_id, local_dir, artifact_path=None):
        real(run_id, local_dir, artifact_path)  # the copy lands, then the disk is full on the next write
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tracking.client, "log_artifacts", disk_fills)
    with pytest.raises(OSError, match="No space"), tracking.start_run("full-disk") as run_id:
        tracking.log_model(run_id, checkpoint, "full-disk-model")
    run = tracking.client.get_run(run_id)
    assert run.info.status == "FAILED"
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert not list(artifacts.rglob("model.safetensors")), list(artifacts.rglob("*"))
    assert not tracking.client.search_registered_models(filter_string="name = 'full-disk-model'")


def test_model_artifacts_land_whole(tmp_path):
    tracking = Tracking(warehouse_root=str(tmp_path))
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"\1" * 128)
    with tracking.start_run("ok") as run_id:
        record = tracking.log_model(run_id, checkpoint, "whole-model")
    local = tracking.download_model(record["model_uri"])
    assert (local / "model.safetensors").read_bytes() == b"\1" * 128
    assert not [p for p in local.parent.iterdir() if ".partial-" in p.name]


def test_two_processes_open_a_fresh_store_together(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from resources.tracking import Tracking
        t = Tracking(warehouse_root={str(tmp_path)!r})
        with t.start_run("p" + sys.argv[1]) as run_id:
            t.log_metrics(run_id, {{"x": 1.0}})
        print("ok")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    tracking = Tracking(warehouse_root=str(tmp_path))
    experiment = tracking.client.get_experiment_by_name(tracking.experiment)
    runs = tracking.client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["p0", "p1", "p2"]
