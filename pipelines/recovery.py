"""Dead runs found, failed and their pool slots freed; waits on a pool made visible.

Dagster's run monitoring cannot see a dead worker under the default run launcher (it has no worker health
check), so a run killed with SIGKILL stays STARTED and keeps its ``gpu`` pool slot: every later training step
waits forever. Every Dagster event records the pid of the process that wrote it; a run whose worker process
(the pid of its RUN_START event: the run worker, not a step subprocess) no longer exists on this machine, or is
now a different process started after the run, is dead. `recover` marks such runs failed and frees their slots; `reprolab
recover` runs it by hand, `reprolab demo` before it starts, and the ``dead_run_sensor`` from the daemon.

Under the multiprocess executor a step runs in its own subprocess, which outlives a killed run worker: left alone it
would finish and write its materialization (and register its model) after the run was marked failed and its slot
given to another run. Before marking a dead run failed, `recover` stops the run's step processes still alive (the
pids of its STEP_WORKER_STARTED / STEP_START events): SIGTERM, which Dagster turns into an interrupt of the step's
code (the step fails and its resources are torn down, so an alias its model moved is put back), then SIGKILL for
one that has not exited after ``grace`` seconds. A step killed outright never tore its resources down: `recover`
puts back the MLflow aliases that the run's unfinished steps moved (`Tracking.restore_aliases_of_dead_run`), and
sets aside the Parquet files the run wrote that Dagster never recorded (`set_aside_unrecorded`): a step killed
between writing its table and recording it would otherwise leave a file that `reprolab catalog` serves as the
latest materialization.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

_ACTIVE = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]
# Only RUN_START: it is written by the run worker, which lives as long as the run. Step events come from step
# subprocesses under the multiprocess executor, which end between steps while the run is alive and well.
_PID_EVENTS = {dg.DagsterEventType.RUN_START}
# Written by the process that runs a step (a subprocess under the multiprocess executor, else the run worker).
_STEP_PID_EVENTS = {dg.DagsterEventType.STEP_WORKER_STARTED, dg.DagsterEventType.STEP_START}
STEP_GRACE_S = 20.0  # how long a step process has after SIGTERM to fail its step and exit, before SIGKILL


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    job_name: str
    pid: int
    reason: str


def _process_start(pid: int) -> float | None:
    """Seconds since the epoch when ``pid`` started (Linux /proc); None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return time.time()  # unreadable: assume alive
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent: gone all the same
        return None
    ticks = int(fields[19])
    boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime"))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _alive(pid: int, since: float | None) -> bool:
    if Path("/proc").is_dir():
        started = _process_start(pid)
        if started is None:
            return False
        # a pid reused by a process that started after the run did is not the run's worker
        return since is None or started <= since + 2.0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the run's worker: the process that wrote its RUN_START event (None before it started)."""
    conn = instance.get_records_for_run(run_id, of_type=_PID_EVENTS, limit=1, ascending=True)
    for record in conn.records:
        event = record.event_log_entry.dagster_event
        if event is not None and event.pid:
            return int(event.pid)
    return None


def dead_runs(instance: dg.DagsterInstance) -> list[DeadRun]:
    """Runs the instance thinks are going whose worker process is gone.

    Only on a single-machine instance (SQLite run storage): on a shared one (Postgres, `deploy/`) another
    machine's process ids mean nothing here, and Dagster's own run monitoring covers dead workers and pods."""
    from dagster._core.storage.runs import SqliteRunStorage

    if not isinstance(instance.run_storage, SqliteRunStorage):
        return []
    found = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=_ACTIVE)):
        run = record.dagster_run
        pid = worker_pid(instance, run.run_id)
        if pid is None or pid == os.getpid():
            continue  # not started yet (the queue's start timeout covers it), or this very process
        since = record.start_time
        if not _alive(pid, since):
            found.append(DeadRun(run.run_id, run.job_name, pid, f"worker process {pid} is gone"))
    return found


def live_step_processes(instance: dg.DagsterInstance, run_id: str) -> list[int]:
    """The pids of processes that ran steps of ``run_id`` and are still alive (the same processes: each started
    before it wrote its first event; never this process or the run worker)."""
    first_seen: dict[int, float] = {}
    for record in instance.get_records_for_run(run_id, of_type=_STEP_PID_EVENTS, ascending=True).records:
        event = record.event_log_entry.dagster_event
        if event is not None and event.pid:
            first_seen.setdefault(int(event.pid), record.event_log_entry.timestamp)
    worker = worker_pid(instance, run_id)
    return [pid for pid, since in first_seen.items() if pid not in (worker, os.getpid()) and _alive(pid, since)]


def stop_processes(pids: list[int], grace: float = STEP_GRACE_S) -> list[int]:
    """SIGTERM each of ``pids``, SIGKILL those still alive after ``grace`` seconds; the pids still alive after
    that (a process this user may not signal, or one stuck in the kernel)."""
    started = {pid: _process_start(pid) for pid in pids}

    def alive() -> list[int]:  # the same processes: a pid reused since is not one of them
        return [pid for pid in pids if started[pid] is not None and _alive(pid, started[pid])]

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in alive():
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.time() + wait
        while alive() and time.time() < deadline:
            time.sleep(0.2)
        if not alive():
            return []
    return alive()


def free_slots(instance: dg.DagsterInstance, run_id: str) -> None:
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def _lab_tracking() -> Any | None:
    """This lab's Tracking resource (``$REPROLAB_WAREHOUSE``, ``$REPROLAB_MLFLOW_TRACKING_URI``), or None when its
    SQLite store does not exist yet (nothing was registered: recovering creates no store)."""
    from resources.settings import default_warehouse_root
    from resources.tracking import Tracking

    tracking = Tracking(warehouse_root=default_warehouse_root())  # read now, not when Tracking was imported
    uri = tracking.resolved_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    return tracking


def _warehouse_root(root: str | Path | None, tracking: Any) -> Path:
    from resources.settings import default_warehouse_root

    if root is not None:
        return Path(root)
    return Path(getattr(tracking, "warehouse_root", None) or default_warehouse_root())


def restore_registry(tracking: Any, instance: dg.DagsterInstance, run_id: str, log: Callable[[str], None]) -> None:
    """Put back the MLflow aliases that steps of the dead run ``run_id`` moved and never finished (the run's
    resources were not torn down: the Tracking resource's teardown never ran)."""
    try:
        tracking = tracking if tracking is not None else _lab_tracking()
        undone = tracking.restore_aliases_of_dead_run(instance, run_id, warn=log) if tracking is not None else []
    except Exception as exc:  # an unreachable registry must not keep the run's pool slot
        log(f"run {run_id}: could not check the MLflow aliases its steps moved: {str(exc)[:300]}")
        return
    for m in undone:
        log(f"run {run_id}: alias `{m.alias}` of {m.registered_name} put back from version {m.version} (step "
            f"{m.step_key} never finished) to {m.before or '(none: removed)'}")


UNRECORDED = "_unrecorded"  # <warehouse>/_unrecorded/<group>/<asset>/<file>: tables no run recorded, set aside


def recorded_materialization_ids(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    """The table files (``materialization_id`` metadata) the instance recorded as materialized by ``run_id``."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    ids = set()
    for record in records:
        mat = record.event_log_entry.asset_materialization
        value = mat.metadata.get("materialization_id") if mat is not None else None
        if value is not None:
            ids.add(str(getattr(value, "value", value)))
    return ids


def _written_by(path: Path, run_id: str) -> bool:
    """Whether the table file's lineage names ``run_id`` (the file name holds only its first 8 characters)."""
    import pyarrow.parquet as pq

    try:
        column = pq.read_table(path, columns=["run_id"]).column("run_id")
    except Exception:  # unreadable, or no lineage: not provably this run's, so left where it is
        return False
    return len(column) > 0 and str(column[0]) == run_id


def set_aside_unrecorded(instance: dg.DagsterInstance, run_id: str, root: str | Path,
                         log: Callable[[str], None] = print) -> list[Path]:
    """Move the Parquet files that the dead run ``run_id`` wrote under the warehouse ``root`` and that the instance
    never recorded (the step was killed between the write and the record) to ``<root>/_unrecorded/``, out of
    the catalog's reach but kept for a look (in a shared lab, also out of the store, where the step may have
    published it), and rebuild the catalog. Returns the new paths."""
    from resources.catalog import refresh_catalog
    from resources.store import active_store
    from resources.tables import list_tables, table_dir

    root = Path(root)
    recorded = recorded_materialization_ids(instance, run_id)
    store = active_store()
    moved = []
    for group, asset in list_tables(root):
        for path in sorted(table_dir(root, group, asset).glob(f"*-{run_id[:8]}.parquet")):
            if path.stem in recorded or not _written_by(path, run_id):
                continue
            target = root / UNRECORDED / group / asset / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)
            moved.append(target)
            log(f"run {run_id}: {group}.{asset} file {path.name} was written but never recorded (its step was "
                f"killed); set aside to {target}")
            if store is not None:  # else the next sync brings it back
                try:
                    store.filesystem.delete_file(store._key(group, asset, path.name))
                except OSError:
                    pass  # never published
    if moved and (root / "catalog.duckdb").exists():
        try:  # whole: a table whose only file was set aside loses its views
            refresh_catalog(root)
        except Exception as exc:  # the files are out of the way; the views catch up on the next refresh
            log(f"run {run_id}: catalog not rebuilt after setting files aside ({exc}); run `reprolab catalog`")
    return moved


def recover(instance: dg.DagsterInstance, log: Callable[[str], None] = print, grace: float = STEP_GRACE_S,
            tracking: Any = None, warehouse_root: str | Path | None = None) -> list[DeadRun]:
    """Stop every dead run's step processes still alive, put back the MLflow aliases its unfinished steps moved
    (``tracking``: default this lab's), set aside the table files it wrote and never recorded (``warehouse_root``:
    default the tracking's, else this lab's), then mark the run failed and free its pool slots; returns what was
    recovered (a run whose step process would not stop is left for the next pass)."""
    recovered = []
    for d in dead_runs(instance):
        run = instance.get_run_by_id(d.run_id)
        if run is None:
            continue
        steps = live_step_processes(instance, d.run_id)
        if steps:
            log(f"run {d.run_id} ({d.job_name}): {d.reason} but step process(es) {steps} still run; stopping them "
                f"(SIGTERM, SIGKILL after {grace:g} s)")
            left = stop_processes(steps, grace)
            if left:
                log(f"run {d.run_id}: step process(es) {left} did not stop; the run is left as it is")
                continue
        restore_registry(tracking, instance, d.run_id, log)
        try:
            set_aside_unrecorded(instance, d.run_id, _warehouse_root(warehouse_root, tracking), log)
        except Exception as exc:  # a warehouse that cannot be swept must not keep the run's pool slot
            log(f"run {d.run_id}: could not check the table files it wrote: {str(exc)[:300]}")
        recovered.append(d)
        instance.report_run_failed(run, message=f"reprolab recover: {d.reason}; marked failed, pool slots freed")
        free_slots(instance, d.run_id)
        log(f"recovered run {d.run_id} ({d.job_name}): {d.reason}; marked failed, its pool slots freed")
    return recovered


def pool_waits(instance: dg.DagsterInstance, run_id: str, pools: tuple[str, ...] = ("gpu",)) -> list[str]:
    """One line per pool where ``run_id`` has a step waiting while other runs hold every slot."""
    lines = []
    for pool in pools:
        try:
            info = instance.event_log_storage.get_concurrency_info(pool)
        except NotImplementedError:
            return []
        waiting = [p.step_key for p in info.pending_steps if p.run_id == run_id and p.assigned_timestamp is None]
        holders = sorted({c.run_id for c in info.claimed_slots if c.run_id != run_id})
        if waiting and holders:
            lines.append(f"waiting for pool {pool!r} held by run {', '.join(holders)} (step {waiting[0]}); if that "
                         "run is dead, `reprolab recover` fails it and frees the slot")
    return lines


@dg.sensor(name="dead_run_sensor", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Fails runs whose worker process died (e.g. SIGKILL) and frees their pool slots: the default "
                       "run launcher's monitoring cannot see them.")
def dead_run_sensor(context: dg.SensorEvaluationContext):
    recovered = recover(context.instance, log=context.log.warning)
    return dg.SkipReason(f"recovered {len(recovered)} dead run(s)" if recovered else "no dead runs")
