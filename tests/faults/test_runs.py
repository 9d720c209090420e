"""Runs on a real instance (issue 15, 2 and 4): a run killed with SIGKILL no longer blocks the gpu pool, the wait
is visible, and two runs started together on a fresh instance both complete."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from pipelines.recovery import dead_runs, live_step_processes, pool_waits, recover
from pipelines.stores import init_stores

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import sys, time
    import dagster as dg

    @dg.asset(pool=sys.argv[3] or None)
    def work():
        print("claimed", flush=True)
        time.sleep(float(sys.argv[2]))
        return 1

    job = dg.Definitions(assets=[work]).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=dg.DagsterInstance.get(), run_id=sys.argv[1], raise_on_error=False)
    print("done", result.success, flush=True)
""")


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("REPROLAB_WAREHOUSE", str(tmp_path / "warehouse"))  # the registry `recover` checks
    init_stores(tmp_path / "warehouse", home)
    return home


def _child(home: Path, run_id: str, seconds: float, pool: str = "gpu") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, run_id, str(seconds), pool], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "DAGSTER_HOME": str(home)})


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_run_is_recovered_and_the_next_run_completes(home):
    import uuid

    killed_id, next_id = str(uuid.uuid4()), str(uuid.uuid4())
    first = _child(home, killed_id, 120)
    assert first.stdout.readline().strip() == "claimed"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)

    instance = dg.DagsterInstance.get()
    assert instance.get_run_by_id(killed_id).status == dg.DagsterRunStatus.STARTED  # Dagster did not notice
    holders = {c.run_id for c in instance.event_log_storage.get_concurrency_info("gpu").claimed_slots}
    assert holders == {killed_id}

    second = _child(home, next_id, 0)
    try:
        # the next run waits on the dead run's slot, and the wait says who holds it
        line = _wait_for(lambda: pool_waits(instance, next_id), what="the second run to queue on the pool")
        assert f"held by run {killed_id}" in line[0] and "reprolab recover" in line[0]
        assert [d.run_id for d in dead_runs(instance)] == [killed_id]
        recovered = recover(instance, log=lambda _: None)
        assert [d.run_id for d in recovered] == [killed_id]
        assert instance.get_run_by_id(killed_id).status == dg.DagsterRunStatus.FAILURE
        out, err = second.communicate(timeout=120)
    finally:
        second.kill()
    assert "done True" in out, err[-2000:]
    assert instance.get_run_by_id(next_id).status == dg.DagsterRunStatus.SUCCESS
    assert not dead_runs(instance)


def test_two_runs_started_together_on_a_fresh_instance(home):
    import uuid

    ids = [str(uuid.uuid4()) for _ in range(2)]
    procs = [_child(home, run_id, 0, pool="") for run_id in ids]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all("done True" in o for o, _ in outs), [e[-1500:] for _, e in outs]
    instance = dg.DagsterInstance.get()
    assert {r.run_id for r in instance.get_runs()} == set(ids)
    check = subprocess.run([str(Path(sys.executable).parent / "dagster"), "instance", "info"], capture_output=True,
                           text=True, env={**os.environ, "DAGSTER_HOME": str(home)}, cwd=home)
    assert check.returncode == 0, check.stderr[-1500:]


def test_reprolab_init_twice_at_once_and_again(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    exe = str(Path(sys.executable).parent / "reprolab")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    procs = [subprocess.Popen([exe, "--warehouse", str(tmp_path / "wh"), "init"], env=env, cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-800:] for _, e in outs]
    assert (home / "history" / "runs.db").exists() and (tmp_path / "wh" / "_mlflow" / "mlflow.db").exists()
    again = subprocess.run([exe, "--warehouse", str(tmp_path / "wh"), "recover"], env=env, cwd=REPO,
                           capture_output=True, text=True)
    assert again.returncode == 0 and "no dead runs" in again.stdout


def test_a_live_multiprocess_run_is_judged_by_its_run_worker_not_its_finished_steps(home):
    """Step subprocesses end between steps; only the run worker's death makes a run dead."""
    from pipelines.recovery import worker_pid

    instance = dg.DagsterInstance.get()
    result = dg.execute_job(dg.reconstructable(_two_step_job), instance=instance)
    assert result.success
    events = [e.dagster_event for e in instance.all_logs(result.run_id) if e.dagster_event]
    run_pid = next(e.pid for e in events if e.event_type == dg.DagsterEventType.RUN_START)
    step_pids = {e.pid for e in events if e.event_type == dg.DagsterEventType.STEP_START}
    assert step_pids and run_pid not in step_pids  # steps ran in their own, now finished, processes
    assert worker_pid(instance, result.run_id) == run_pid


@dg.asset
def _first():
    return 1


@dg.asset
def _second(_first):
    return _first + 1


def _two_step_job():
    """Two steps under the default (multiprocess) executor."""
    return dg.Definitions(assets=[_first, _second], jobs=[dg.define_asset_job("two_steps")]).resolve_job_def(
        "two_steps")


MULTIPROCESS_CHILD = textwrap.dedent("""
    import os, time
    from pathlib import Path
    import dagster as dg

    @dg.asset
    def slow_step():
        marks = Path(os.environ["MARKS"])
        (marks / "started").write_text(str(os.getpid()))
        time.sleep(40)
        (marks / "finished").write_text("a late write of a run already marked failed")
        return 1

    def slow_job():
        return dg.Definitions(assets=[slow_step], jobs=[dg.define_asset_job("slow")]).resolve_job_def("slow")

    if __name__ == "__main__":
        dg.execute_job(dg.reconstructable(slow_job), instance=dg.DagsterInstance.get(), raise_on_error=False)
""")


def test_a_dead_runs_live_step_process_is_stopped_before_the_run_is_marked_failed(home, tmp_path):
    """The run worker is killed, its step subprocess (multiprocess executor) runs on: `recover` stops it (SIGTERM:
    the step fails) before marking the run failed, so nothing of the run is written after it was failed."""
    script, marks = tmp_path / "slow_run.py", tmp_path / "marks"
    script.write_text(MULTIPROCESS_CHILD)
    marks.mkdir()
    worker = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "DAGSTER_HOME": str(home), "MARKS": str(marks)})
    step_pid = None
    try:
        step_pid = int(_wait_for(lambda: (marks / "started").exists() and (marks / "started").read_text(),
                                 timeout=120, what="the step to start"))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        instance = dg.DagsterInstance.get()
        [dead] = dead_runs(instance)
        assert step_pid != dead.pid and live_step_processes(instance, dead.run_id) == [step_pid]

        lines: list[str] = []
        assert [d.run_id for d in recover(instance, log=lines.append, grace=15)] == [dead.run_id]
        assert not live_step_processes(instance, dead.run_id)  # stopped before the run was marked failed
        assert any(f"step process(es) [{step_pid}] still run" in line for line in lines), lines
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        events = [e.dagster_event for e in instance.all_logs(dead.run_id) if e.dagster_event]
        kinds = [e.event_type for e in events]
        assert dg.DagsterEventType.ASSET_MATERIALIZATION not in kinds and not (marks / "finished").exists()
        # SIGTERM interrupted the step's code: the step failed (its resources torn down) before the run did
        assert kinds.index(dg.DagsterEventType.STEP_FAILURE) < kinds.index(dg.DagsterEventType.RUN_FAILURE)
    finally:
        worker.kill()
        if step_pid is not None:
            try:
                os.kill(step_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


REGISTERING_CHILD = textwrap.dedent("""
    import os, sys, time
    import dagster as dg
    from resources.tracking import Tracking

    @dg.asset
    def trained(context: dg.AssetExecutionContext, tracking: Tracking):
        with tracking.start_run("trained", dagster_run_id=context.run.run_id) as run_id:
            tracking.register_version(run_id, "lm-killed", os.environ["SOURCE"])  # alias current
        print("registered", flush=True)
        time.sleep(120)  # killed here, before the step could finish (or tear its resources down)
        return 1

    defs = dg.Definitions(assets=[trained], resources={"tracking": Tracking(warehouse_root=os.environ["WH"])})
    defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=dg.DagsterInstance.get())
""")


def test_recover_puts_back_the_alias_a_killed_runs_unfinished_step_moved(home, tmp_path):
    """SIGKILL leaves no teardown: the alias `current` the step moved to its version stays there until `recover`
    puts it back on the version before, and tags the version as from a failed step."""
    from resources.aliases import FAILED_STEP_TAG, alias_holder
    from resources.tracking import Tracking

    tracking = Tracking(warehouse_root=str(tmp_path / "warehouse"))
    with tracking.start_run("before") as run_id:
        tracking.register_version(run_id, "lm-killed", str(tmp_path))  # version 1, current
    worker = subprocess.Popen([sys.executable, "-c", REGISTERING_CHILD], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "DAGSTER_HOME": str(home), "WH": str(tmp_path / "warehouse"),
                                   "SOURCE": str(tmp_path)})
    try:
        assert worker.stdout.readline().strip() == "registered", worker.stderr.read()[-2000:]
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        worker.kill()
    assert alias_holder(tracking.client, "lm-killed", "current") == "2"  # what a killed step leaves
    instance = dg.DagsterInstance.get()
    lines: list[str] = []
    [dead] = recover(instance, log=lines.append, tracking=tracking)
    assert alias_holder(tracking.client, "lm-killed", "current") == "1"
    assert tracking.client.get_model_version("lm-killed", "2").tags[FAILED_STEP_TAG] == f"{dead.run_id}:trained"
    assert any("alias `current` of lm-killed put back from version 2" in line for line in lines), lines
    assert recover(instance, log=lines.append, tracking=tracking) == []  # once only


WRITING_CHILD = textwrap.dedent("""
    import os, time
    import dagster as dg
    import pandas as pd
    import resources.warehouse as warehouse

    def schema_then_hang(path):  # called after the file is written, before Dagster records it: killed here
        print("written", flush=True)
        time.sleep(120)

    if os.environ["HANG"] == "1":
        warehouse.column_schema = schema_then_hang

    @dg.asset(group_name="faults")
    def scores():
        return pd.DataFrame({"score": [float(os.environ["SCORE"])]})

    defs = dg.Definitions(assets=[scores], resources={"io_manager": warehouse.Warehouse(root=os.environ["WH"])})
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=dg.DagsterInstance.get())
    print("done", result.success, flush=True)
""")


def test_recover_sets_aside_a_table_file_its_killed_step_wrote_but_never_recorded(home, tmp_path):
    """Killed between writing its Parquet file and recording it, a step leaves a file that the catalog would serve
    as the latest materialization; `recover` moves it to `_unrecorded/` and the catalog serves the last recorded."""
    from pipelines.recovery import UNRECORDED
    from resources.catalog import connect_read_only

    wh = tmp_path / "warehouse"

    def child(score: float, hang: bool) -> subprocess.Popen:
        env = {**os.environ, "DAGSTER_HOME": str(home), "WH": str(wh), "SCORE": str(score), "HANG": str(int(hang))}
        return subprocess.Popen([sys.executable, "-c", WRITING_CHILD], cwd=REPO, text=True, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    good = child(1.0, hang=False)
    out, err = good.communicate(timeout=180)
    assert "done True" in out, err[-2000:]
    killed = child(2.0, hang=True)
    try:
        assert killed.stdout.readline().strip() == "written", killed.stderr.read()[-2000:]
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
    finally:
        killed.kill()
    files = sorted((wh / "faults" / "scores").glob("*.parquet"))
    assert len(files) == 2  # the killed step's file is on disk, and the newest

    instance = dg.DagsterInstance.get()
    lines: list[str] = []
    [dead] = recover(instance, log=lines.append, warehouse_root=wh)
    assert files[1].name.endswith(f"-{dead.run_id[:8]}.parquet")
    assert [p.name for p in (wh / "faults" / "scores").glob("*.parquet")] == [files[0].name]
    assert (wh / UNRECORDED / "faults" / "scores" / files[1].name).exists()  # kept for a look
    assert any("written but never recorded" in line for line in lines), lines
    with connect_read_only(wh) as con:  # rebuilt: the view serves the last recorded materialization
        assert con.execute("SELECT score FROM faults.scores").fetchall() == [(1.0,)]
        assert con.execute("SELECT count(*) FROM faults.scores_history").fetchone() == (1,)
