"""Create the Dagster instance's stores and the MLflow store once, under a lock, before any run.

Two runs started together on a fresh ``DAGSTER_HOME`` both create Dagster's SQLite schemas and can leave two
schema versions behind (every later command then fails); two first runs against a fresh MLflow store race the
same way. ``reprolab init`` (run by ``make demo``, ``make ui`` and ``reprolab demo``) creates all of them from one
process while holding ``<DAGSTER_HOME>/.reprolab-init.lock``; a second caller waits and then finds them made.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import dagster as dg


def init_stores(warehouse_root: str | Path, dagster_home: str | Path | None = None) -> dict[str, str]:
    """Open (creating if needed) the instance's run, event-log and schedule storage and the MLflow store.

    Returns where each lives. Safe to call from many processes at once, and again on an existing set-up.
    """
    from resources.tracking import Tracking

    home = Path(dagster_home or os.environ.get("DAGSTER_HOME") or "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    with open(home / ".reprolab-init.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            instance = dg.DagsterInstance.get()
            instance.get_run_records(limit=1)  # run storage schema
            instance.get_latest_materialization_event(dg.AssetKey("reprolab_init_probe"))  # event-log index
            if instance.schedule_storage is not None:
                instance.schedule_storage.all_instigator_state()  # schedule storage schema
            tracking = Tracking(warehouse_root=str(warehouse_root))
            tracking.setup_for_execution()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return {"dagster_home": str(home), "mlflow": tracking.resolved_tracking_uri}
