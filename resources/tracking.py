"""Experiment tracking over plain MLflow: runs tagged with their Dagster run, models logged and registered.

The backend store defaults to SQLite and the artifact root to a folder, both under the warehouse
(``<root>/_mlflow``); any tracking URI works. A shared lab sets both for every process with
``REPROLAB_MLFLOW_TRACKING_URI`` (e.g. ``postgresql://user:pw@host/mlflow``) and ``REPROLAB_MLFLOW_ARTIFACT_ROOT``
(e.g. ``s3://bucket/mlflow``). Every call goes through an explicit ``MlflowClient`` so nothing
depends on MLflow's process-global state. MLflow is imported lazily: loading the definitions stays fast.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
from pydantic import Field, PrivateAttr

from assets.lm.registry import client_for, local_model_dir, resolve_model_source
from resources.aliases import AliasMove, move_alias, moves_of_run, restore_alias, undo_failed
from resources.settings import ConfigurationError, default_warehouse_root, ensure_writable_dir, git_commit

DEFAULT_UI_URL = "http://127.0.0.1:5000"
UI_URL_ENV = "REPROLAB_MLFLOW_UI_URL"  # one setting for every link to the MLflow UI and for `reprolab mlflow-ui`
# The MLflow UI opens an experiment in its model-training view, not the GenAI one, when it carries this tag.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
TRACKING_URI_ENV = "REPROLAB_MLFLOW_TRACKING_URI"  # the shared lab's MLflow backend store (unset: SQLite here)
ARTIFACT_ROOT_ENV = "REPROLAB_MLFLOW_ARTIFACT_ROOT"  # the shared lab's artifact store (unset: a folder here)


def default_ui_url() -> str:
    """``$REPROLAB_MLFLOW_UI_URL`` or http://127.0.0.1:5000: where links in metadata point."""
    return os.environ.get(UI_URL_ENV, DEFAULT_UI_URL)


def default_tracking_uri(root: str | Path) -> str:
    """``$REPROLAB_MLFLOW_TRACKING_URI``, else SQLite under the warehouse root."""
    if os.environ.get(TRACKING_URI_ENV):
        return os.environ[TRACKING_URI_ENV]
    return f"sqlite:///{Path(root).resolve() / '_mlflow' / 'mlflow.db'}"


def default_artifact_root(root: str | Path) -> str:
    """``$REPROLAB_MLFLOW_ARTIFACT_ROOT``, else a folder under the warehouse root."""
    if os.environ.get(ARTIFACT_ROOT_ENV):
        return os.environ[ARTIFACT_ROOT_ENV]
    return str(Path(root).resolve() / "_mlflow" / "artifacts")


def version_tags(run_tags: Mapping[str, str]) -> dict[str, str]:
    """Tags on every registered model version: the profile, the git commit, the Dagster run and asset."""
    from resources.profiles import current_profile

    return {"reprolab.profile": current_profile(), "reprolab.git_commit": git_commit(),
            "dagster.run_id": run_tags.get("dagster.run_id", ""), "dagster.asset_key": run_tags.get("dagster.asset_key", "")}


def version_description(run_name: str, run_tags: Mapping[str, str]) -> str:
    """A registered version's description: what made it, where, and how to load it."""
    tags = version_tags(run_tags)
    return (f"{run_name}, materialized by asset `{tags['dagster.asset_key']}` in Dagster run "
            f"{tags['dagster.run_id'] or '(none)'} ({tags['reprolab.profile']} profile, commit "
            f"{tags['reprolab.git_commit']}). A Hugging Face checkpoint (config, safetensors, tokenizer) wrapped as "
            "an MLflow pyfunc model: `mlflow.pyfunc.load_model(uri).predict({'prompt': [...]})` generates text; "
            "`assets.lm.registry.load_model(uri, tracking_uri)` returns the transformers model and tokenizer.")


class Tracking(dg.ConfigurableResource):
    """MLflow tracking and model registry for every trained model.

    ``tracking_uri`` (default: SQLite under the warehouse) and ``artifact_root`` may point anywhere MLflow
    can reach; ``ui_url`` is where the MLflow UI serves that store (``reprolab mlflow-ui``), for links
    (default ``$REPROLAB_MLFLOW_UI_URL``, else http://127.0.0.1:5000).
    """

    tracking_uri: str | None = Field(default=None, description="MLflow backend store (default: "
                                                               "$REPROLAB_MLFLOW_TRACKING_URI, else SQLite under "
                                                               "the warehouse)")
    artifact_root: str | None = Field(default=None, description="where checkpoints are stored (default: "
                                                                "$REPROLAB_MLFLOW_ARTIFACT_ROOT, else a folder "
                                                                "under the warehouse)")
    warehouse_root: str = Field(default=default_warehouse_root(), description="the warehouse folder the default "
                                                                              "stores live under")
    experiment: str = Field(default="reprolab", description="MLflow experiment every run is logged in")
    ui_url: str = Field(default=default_ui_url(), description="where the MLflow UI serves this store: every link "
                                                              "in metadata points there")

    _client: Any = PrivateAttr(default=None)
    _experiment_id: str | None = PrivateAttr(default=None)
    _moves: list[AliasMove] = PrivateAttr(default_factory=list)  # aliases moved by this run's steps, in order

    # -- set-up ---------------------------------------------------------------------------------------------
    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or default_tracking_uri(self.warehouse_root)

    @property
    def resolved_artifact_root(self) -> str:
        return self.artifact_root or default_artifact_root(self.warehouse_root)

    def setup_for_execution(self, context: dg.InitResourceContext | None = None) -> None:
        self._moves = []  # this run's own (a copy of the resource may share its list)
        self._connect()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Put back every alias a step of this run moved and then failed: a version registered by a step that
        raised (in its body, or later in its IO manager's ``handle_output``) must not stay ``current``.

        Dagster calls this once per run and process (in-process executor: after the last step; multiprocess: at
        the end of each step's process), after the step's STEP_SUCCESS or STEP_FAILURE event was logged; an
        asset's ``handle_output`` runs inside its step, so its failure is the step's. A step counts as succeeded
        only in the attempt that logged STEP_SUCCESS (earlier attempts of a retried step failed)."""
        moves = list(self._moves)
        self._moves.clear()
        if moves and context is not None and context.instance is not None:
            self._undo_failed(context.instance, moves, context.log.warning if context.log else None)

    def _undo_failed(self, instance: dg.DagsterInstance, moves: list[AliasMove],
                     warn: Any = None) -> list[AliasMove]:
        """Restore each of ``moves`` whose step attempt did not log STEP_SUCCESS (`aliases.undo_failed`)."""
        return undo_failed(self.client, instance, moves, warn)

    def restore_aliases_of_dead_run(self, instance: dg.DagsterInstance, dagster_run_id: str,
                                    warn: Any = None) -> list[AliasMove]:
        """The teardown's work for a run whose process died before its resources were torn down (SIGKILL, a lost
        machine): every alias a step of ``dagster_run_id`` moved is put back unless that step succeeded
        (`aliases.moves_of_run`); returns the moves undone."""
        moves = moves_of_run(self.client, dagster_run_id)
        return self._undo_failed(instance, moves, warn) if moves else []

    def _connect(self):
        if self._client is not None:
            return self._client
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow.exceptions import MlflowException

        uri = self.resolved_tracking_uri
        scheme = urlparse(uri).scheme
        lock_dir = None
        if scheme == "sqlite":
            db_path = Path(uri.removeprefix("sqlite:///"))
            lock_dir = ensure_writable_dir(db_path.parent, "tracking_uri (resource `tracking`)")
        elif scheme in ("", "file"):
            lock_dir = ensure_writable_dir(uri.removeprefix("file://"), "tracking_uri (resource `tracking`)")
        if urlparse(self.resolved_artifact_root).scheme in ("", "file"):
            ensure_writable_dir(self.resolved_artifact_root.removeprefix("file://"), "artifact_root (resource `tracking`)")

        try:
            # Creating or migrating the SQLite schema races when two processes start at once: serialise all of it
            # (the client is built inside the lock: MLflow creates the store's tables when it first opens it).
            with _file_lock(lock_dir):
                client, exp_id = _open_store(uri, self.experiment, self.resolved_artifact_root)
        except (MlflowException, OSError) as exc:
            raise ConfigurationError(
                f"tracking_uri={uri!r} (resource `tracking`) is not a reachable MLflow tracking store: "
                f"{str(exc).splitlines()[0][:300]}"
            ) from exc
        self._client, self._experiment_id = client, exp_id
        return client

    @property
    def client(self):
        return self._connect()

    # -- runs -----------------------------------------------------------------------------------------------
    @contextmanager
    def start_run(
        self,
        run_name: str,
        *,
        dagster_run_id: str | None = None,
        asset_key: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[str]:
        """Open an MLflow run tagged with the Dagster run id and asset key; yields the MLflow run id.

        The run ends FINISHED, or FAILED if the body raises (and the error propagates).
        """
        client = self.client
        all_tags = {"dagster.run_id": dagster_run_id or "", "dagster.asset_key": asset_key or "", **(tags or {})}
        run = client.create_run(self._experiment_id, run_name=run_name, tags=all_tags)
        run_id = run.info.run_id
        if params:
            self.log_params(run_id, params)
        try:
            yield run_id
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id, status="FINISHED")

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(str(k), float(v), now, step or 0) for k, v in metrics.items()]
        self.client.log_batch(run_id, metrics=items)

    def log_metric_history(self, run_id: str, rows: list[Mapping[str, Any]], step_key: str = "step") -> None:
        """Log a curve (one dict per step) as MLflow metric histories, in batches."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(str(k), float(v), now, int(row[step_key]))
            for row in rows for k, v in row.items()
            if k != step_key and v is not None and v == v  # skip NaN: MLflow plots gaps badly
        ]
        for i in range(0, len(items), 900):
            self.client.log_batch(run_id, metrics=items[i : i + 900])

    def log_datasets(self, run_id: str, datasets: Any) -> None:
        """Log datasets (objects with name, digest, split, source, rows: `assets.lm.registration.DatasetInput`) as
        the run's MLflow dataset inputs, each with its split as the input's context."""
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [DatasetInput(Dataset(name=d.name, digest=d.digest, source_type="reprolab",
                                       source=json.dumps({"table": d.source}), profile=json.dumps({"num_rows": d.rows})),
                               tags=[InputTag(key="mlflow.data.context", value=d.split)]) for d in datasets]
        self.client.log_inputs(run_id, datasets=inputs)

    def log_artifacts(self, run_id: str, local_dir: str | Path, artifact_path: str | None = None) -> str:
        """Log a directory; in a local artifact store it lands whole or not at all (written under a temporary
        name and renamed), so a full disk leaves no partial ``model.safetensors`` behind."""
        base = self.client.get_run(run_id).info.artifact_uri
        target = f"{base}/{artifact_path}" if artifact_path else base
        local_base = _local_path(base)
        if local_base is None or not artifact_path:
            self.client.log_artifacts(run_id, str(local_dir), artifact_path)
            return target
        partial = f".{artifact_path.replace('/', '_')}.partial-{uuid.uuid4().hex[:8]}"
        try:
            self.client.log_artifacts(run_id, str(local_dir), partial)
            final = local_base / artifact_path
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(local_base / partial, final)
        finally:
            shutil.rmtree(local_base / partial, ignore_errors=True)
        return target

    def log_artifact(self, run_id: str, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(local_path), artifact_path)

    # -- models ---------------------------------------------------------------------------------------------
    def log_model(
        self,
        run_id: str,
        local_dir: str | Path,
        registered_name: str,
        aliases: tuple[str, ...] = ("current",),
        artifact_path: str = "model",
    ) -> dict[str, Any]:
        """Log a checkpoint directory (``save_pretrained`` output) and register it as a new model version.

        Returns the record an asset stores: the exact ``model_uri`` (``models:/<name>/<version>``), the
        registered name, version, aliases, the MLflow run id and a link for the UI.
        """
        import tempfile

        from assets.lm.mlflow_pyfunc import save_pyfunc_model

        with tempfile.TemporaryDirectory() as tmp:  # an MLflow pyfunc model around the checkpoint (its data)
            source = self.log_artifacts(run_id, save_pyfunc_model(local_dir, Path(tmp) / "model"), artifact_path)
        return {**self.register_version(run_id, registered_name, source, aliases), "artifact_uri": source}

    def register_version(self, run_id: str, registered_name: str, source: str, aliases: tuple[str, ...] | list[str]
                         = ("current",), tags: Mapping[str, str] | None = None,
                         description: str | None = None) -> dict[str, Any]:
        """Register the model at ``source`` (an artifact location) as a new version of ``registered_name`` made by
        run ``run_id``, with the house's version tags (profile, commit, Dagster run and asset) plus ``tags``, a
        description (default: what made it and how to load it) and ``aliases``; the record's MLflow part."""
        from mlflow.exceptions import MlflowException

        client = self.client
        run = client.get_run(run_id)
        try:
            client.create_registered_model(registered_name)
        except MlflowException as exc:
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
        version = client.create_model_version(
            registered_name, source=source, run_id=run_id, run_link=self.run_link(run_id),
            tags={**version_tags(run.data.tags), **(tags or {})},
            description=description or version_description(run.info.run_name, run.data.tags))
        for alias in aliases:
            self.set_alias(registered_name, alias, version.version)
        return {
            "model_uri": f"models:/{registered_name}/{version.version}",
            "registered_model": registered_name,
            "model_version": int(version.version),
            "aliases": list(aliases),
            "mlflow_run_id": run_id,
            "mlflow_link": self.run_link(run_id),
        }

    def set_alias(self, registered_name: str, alias: str, version: str | int) -> None:
        """Point ``alias`` at ``version`` (`aliases.move_alias`: the version is tagged with the one before). Inside
        a Dagster step the move is remembered: if the step fails, the resource's teardown puts it back."""
        move = move_alias(self.client, registered_name, alias, version)
        if move is not None:
            self._moves.append(move)

    def restore_alias(self, move: AliasMove) -> None:
        """Undo ``move`` of a step that failed (`aliases.restore_alias`)."""
        restore_alias(self.client, move)

    def resolve_model_source(self, model_uri: str) -> str:
        """The artifact location behind ``models:/<name>/<version>`` or ``models:/<name>@<alias>``."""
        return resolve_model_source(self.client, model_uri)

    def download_model(self, model_uri: str, dst: str | Path | None = None) -> Path:
        """Local directory holding the model at ``model_uri`` (``models:/name/3``, ``models:/name@alias``,
        ``runs:/<id>/model`` or a plain artifact location). Local artifact stores are read in place."""
        return local_model_dir(self.client, self.resolved_tracking_uri, model_uri, dst)

    def run_link(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/#/experiments/{self._experiment_id}/runs/{run_id}"


@contextmanager
def _file_lock(directory: Path | None) -> Iterator[None]:
    if directory is None:
        yield
        return
    with open(Path(directory) / ".mlflow-init.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _local_path(uri: str) -> Path | None:
    """The local directory of a ``file://`` (or plain path) artifact URI; None for remote stores."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return None
    return Path(parsed.path if parsed.scheme == "file" else uri)


def _elsewhere(location: str, artifact_root: str) -> bool:
    """Whether an experiment's local artifact location is another folder than ``artifact_root`` (local too)."""
    recorded, wanted = _local_path(location), _local_path(artifact_root)
    return recorded is not None and wanted is not None and recorded.resolve() != wanted.resolve()


def _open_store(uri: str, experiment: str, artifact_root: str):
    """Client and experiment id; a SQLite store left half-migrated by a crash (``_alembic_tmp_*`` tables from an
    interrupted batch migration, e.g. on a full disk) is repaired once by dropping those leftovers."""
    from mlflow.exceptions import MlflowException

    def attempt():
        client = client_for(uri)
        name = experiment
        exp = client.get_experiment_by_name(name)
        if exp is not None and _elsewhere(exp.artifact_location, artifact_root):
            # a moved or copied store: its experiment writes to the old folder (another lab's, or gone); new runs
            # go to an experiment of this artifact root (models registered before are read here: `rebased`)
            name = f"{experiment} @ {artifact_root}"
            exp = client.get_experiment_by_name(name)
        if exp is None:
            return client, client.create_experiment(name, artifact_location=artifact_root, tags=EXPERIMENT_KIND)
        if any(exp.tags.get(k) != v for k, v in EXPERIMENT_KIND.items()):
            for key, value in EXPERIMENT_KIND.items():
                client.set_experiment_tag(exp.experiment_id, key, value)
        return client, exp.experiment_id
    try:
        return attempt()
    except (MlflowException, Exception) as exc:
        if "_alembic_tmp_" not in str(exc) or not uri.startswith("sqlite:///"):
            raise
        leftovers = drop_alembic_leftovers(Path(uri.removeprefix("sqlite:///")))
        try:
            return attempt()
        except Exception as again:
            raise ConfigurationError(
                f"the MLflow store {uri} was left half-migrated (dropped leftover tables {leftovers}, still "
                f"failing: {str(again).splitlines()[0][:200]}); restore it from a backup or move it aside "
                "(models registered in it are then lost to the registry)") from again


def drop_alembic_leftovers(db_path: Path) -> list[str]:
    """Drop the ``_alembic_tmp_*`` tables an interrupted MLflow migration leaves in its SQLite store."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(db_path)) as con, con:  # committed, then closed (sqlite3's own `with` only commits)
        names = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '\\_alembic\\_tmp\\_%' ESCAPE '\\'")]
        for name in names:
            con.execute(f'DROP TABLE IF EXISTS "{name}"')
    return names
