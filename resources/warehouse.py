"""The warehouse IO manager: table assets to immutable Parquet with lineage, and the DuckDB catalog refreshed.

Assets return a pandas DataFrame, a pyarrow Table or a dict record (e.g. a model record with its MLflow
``model_uri``); this IO manager stamps lineage on every row, writes ``<root>/<group>/<asset>/<id>.parquet``
and refreshes the catalog views of that asset. Inputs are read from the exact file Dagster recorded for the
upstream's materialization in the same run, else for its latest one when the run was created (never one that a
concurrent run wrote later); the ids read are stamped as ``upstream`` lineage on the outputs, and how each was
chosen as ``upstream_resolution``.

In a shared lab (``REPROLAB_WAREHOUSE_URL=s3://…``, see `resources.store`) the same files are also published to
the object store, whose URI is then what ``path`` records; inputs another machine wrote are fetched from the
store into this machine's mirror before they are read.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from resources.catalog import refresh_catalog
from resources.settings import default_warehouse_root, ensure_writable_dir, git_commit
from resources.store import TableStore, default_store_url
from resources.tables import (
    Lineage,
    WarehouseError,
    latest_file,
    materialization_files,
    read_table,
    write_table,
)


@cache
def _project_version() -> str:
    """Package version plus the git commit when running from a checkout: the fallback code version."""
    sha = git_commit()
    return "0.1.0" + (f"+g{sha}" if sha != "unknown" else "")


def _group_and_name(key: dg.AssetKey, group: str | None) -> tuple[str, str]:
    """Folder names for an asset: its group (or key prefix) and the last key component."""
    path = key.path
    return (group or (path[0] if len(path) > 1 else "default")), path[-1]


class WarehouseIOManager(dg.IOManager):
    """Writes and reads table assets under ``root``; one instance per step process."""

    def __init__(self, root: Path, refresh: bool = True, store: TableStore | None = None):
        self.root = root
        self.refresh = refresh
        self.store = store  # None: one machine, the local folder is the warehouse
        self._upstream: dict[tuple[str, str], set[str]] = {}
        self._resolution: dict[tuple[str, str], dict[str, str]] = {}

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:  # an asset that stores its own files (none do yet) or returns nothing
            return
        spec = context.asset_spec if context.has_asset_key else None
        if spec is None:
            raise dg.DagsterInvariantViolationError("WarehouseIOManager stores asset outputs only")
        group, name = _group_and_name(spec.key, spec.group_name)
        lineage = Lineage(
            run_id=context.run_id,
            code_version=spec.code_version or _project_version(),
            upstream=sorted(self._upstream.get((context.run_id, context.step_key), ())),
            resolution=self._resolution.get((context.run_id, context.step_key), {}),
        )
        path = write_table(self.root, group, name, obj, lineage)
        published = None
        try:  # a step that fails after the write leaves no file: `reprolab catalog` would serve it as the latest
            location = self.store.uri(group, name, path.name) if self.store is not None else str(path)
            rows = len(obj) if not isinstance(obj, dict) else 1
            context.add_output_metadata(
                {
                    "path": dg.MetadataValue.path(location),
                    "materialization_id": path.stem,
                    "dagster/row_count": rows,
                    "table": f"{group}.{name}",
                    "dagster/table_name": f"{group}.{name}",  # the DuckDB view that serves it
                    "dagster/uri": dg.MetadataValue.path(location),
                    "dagster/column_schema": column_schema(path),
                }
            )
            if self.store is not None:
                published = self.store.publish(path)  # the last step that may fail it
            self._refresh_catalog(context, group, name)  # warns, never raises an Exception
        except BaseException:  # an interrupt too: the file is removed, the error goes on unchanged
            path.unlink(missing_ok=True)  # not recorded: not in the warehouse (this mirror included)
            if published is not None:
                _withdraw(self.store, published, context)
            raise

    def _refresh_catalog(self, context: dg.OutputContext, group: str, name: str) -> None:
        """Bring the catalog's views of the table up to date (in a shared lab, with the store's files first). The
        Parquet file is the truth: a catalog that cannot be refreshed is a warning, never a failed step."""
        try:
            if self.store is not None:
                self.store.sync(self.root, [(group, name)])  # other machines' materializations join the history
            if not self.refresh:
                return
            report = refresh_catalog(self.root, [(group, name)])
        except Exception as exc:
            context.log.warning(f"{group}.{name} is written, but the catalog could not be refreshed "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc!r}); "
                                "run `reprolab catalog` to rebuild it")
            return
        for table, err in report.errors.items():
            context.log.warning(f"catalog view for {table} not refreshed: {err}; `reprolab catalog` rebuilds "
                                "the catalog and names every unreadable file")
        for file, why in report.warnings.items():
            context.log.warning(f"catalog: {why} ({file}); `reprolab catalog` names every unreadable file")

    def _path_for_input(self, context: dg.InputContext) -> tuple[Path, str]:
        """The upstream file this run reads, and how it was chosen (see `resolve_upstream_event`). Only a file
        of this warehouse is read: a recorded path elsewhere (the warehouse was moved or copied, the instance
        also serves another warehouse, or a shared lab's store moved to another bucket or prefix) is looked up
        here, and in this warehouse's store, by its materialization id, else the latest on disk."""
        key = context.asset_key
        group = context.upstream_output.asset_spec.group_name if context.upstream_output else None
        table = _group_and_name(key, group)
        event, how = resolve_upstream_event(context.instance, key, context.step_context.run_id)
        if event is not None and event.asset_materialization is not None:
            metadata = event.asset_materialization.metadata
            entry = metadata.get("path")
            if entry is not None and self.store is not None and self.store.holds(entry.value):
                return self.store.fetch(entry.value, self.root), how
            found = self._in_this_warehouse(entry.value if entry is not None else None, table,
                                            metadata.get("materialization_id"))
            if found is None and self.store is not None:  # recorded in another store: this one's file by its id
                found = self._in_this_store(entry.value if entry is not None else None, table,
                                            metadata.get("materialization_id"))
            if found is not None:
                return found, how
        if self.store is not None:
            self.store.sync(self.root, [table])
        return latest_file(self.root, *table), "latest on disk"

    def _in_this_warehouse(self, recorded: str | None, table: tuple[str, str], materialization_id) -> Path | None:
        """The recorded file when it lies in this warehouse, else the file with its materialization id here."""
        root = self.root.resolve()
        if recorded is not None and Path(recorded).resolve().is_relative_to(root) and Path(recorded).exists():
            return Path(recorded)
        stem = getattr(materialization_id, "value", materialization_id) or (Path(recorded).stem if recorded else None)
        here = root.joinpath(*table, f"{stem}.parquet") if stem else None
        return here if here is not None and here.exists() else None

    def _in_this_store(self, recorded: str | None, table: tuple[str, str], materialization_id) -> Path | None:
        """The file with the recorded materialization id in this warehouse's store, fetched into the mirror; None
        when the store has no such file."""
        from resources.tables import WarehouseError

        stem = getattr(materialization_id, "value", materialization_id) or (
            recorded.rstrip("/").rsplit("/", 1)[-1].removesuffix(".parquet") if recorded else None)
        if not stem:
            return None
        try:
            return self.store.fetch(self.store.uri(*table, f"{stem}.parquet"), self.root)
        except WarehouseError:
            return None

    def load_input(self, context: dg.InputContext) -> Any:
        path, how = self._path_for_input(context)
        value = read_table(path)
        table_id = f"{path.parent.parent.name}.{path.parent.name}:{path.stem}"
        ids = {table_id} | model_uris(value)
        step = context.step_context
        self._upstream.setdefault((step.run_id, step.step.key), set()).update(ids)
        self._resolution.setdefault((step.run_id, step.step.key), {})[table_id] = how
        context.log.debug(f"input {context.asset_key.to_user_string()}: {path} ({how})")
        return value


def _withdraw(store: TableStore, uri: str, context: dg.OutputContext) -> None:
    """Remove a file this step published before it failed (best effort: the step's own error is what matters)."""
    try:
        group, asset, name = store._parts(uri)
        store.filesystem.delete_file(store._key(group, asset, name))
    except Exception as exc:
        context.log.warning(f"could not remove {uri} from the store after the step failed ({exc}); delete it by "
                            "hand, or it is served as the latest materialization")


def model_uris(value: Any) -> set[str]:
    """The registered models a record input names: its ``model_uri`` and those of the records nested in it (e.g.
    one per method, ``{"models": {"direct": {"model_uri": ...}}}``), so a table computed from them lists each."""
    if not isinstance(value, dict):
        return set()
    uris = {str(value["model_uri"])} if value.get("model_uri") else set()
    for nested in value.values():
        uris |= model_uris(nested) if isinstance(nested, dict) else set()
    return uris


def column_schema(path: Path) -> dg.TableSchema:
    """The written file's columns and their Arrow types (lineage columns described), for the UI's schema tab."""
    import pyarrow.parquet as pq

    described = {"materialization_id": "this file's id (time-ordered)", "run_id": "the Dagster run that wrote it",
                 "code_version": "code version of the asset", "materialized_at": "when it was written (UTC)",
                 "upstream": "JSON list of the input tables (group.asset:id) and model URIs it was computed from",
                 "upstream_resolution": "JSON: per input, made by this run or the latest at launch"}
    schema = pq.read_schema(path)
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type), description=described.get(f.name))
                                   for f in schema])


def resolve_upstream_event(instance: dg.DagsterInstance, key: dg.AssetKey, run_id: str):
    """Which materialization of ``key`` a step of run ``run_id`` reads: the one this run made when it made one,
    else the latest one that existed when the run was created (a run started at the same time by someone else
    never changes what this run reads). Returns (event log entry or None, "this run" | "at launch" | "latest")."""
    from dagster import DagsterEventType

    mine = [r.event_log_entry for r in instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
        if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.asset_key == key]
    if mine:
        return mine[-1], "this run"
    record = instance.get_run_record_by_id(run_id)
    if record is None:  # no run record (direct invocation): the newest
        return instance.get_latest_materialization_event(key), "latest"
    launched = record.create_timestamp.timestamp()
    found = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, before_timestamp=launched), limit=1)
    return (found.records[0].event_log_entry if found.records else None), "at launch"


def run_tags() -> dict[str, str]:
    """The lab's tags on a run: which profile and which commit produced it."""
    from resources.profiles import current_profile

    return {"reprolab/profile": current_profile(), "reprolab/git_commit": git_commit()}


def tag_run(context: dg.InitResourceContext) -> None:
    """Give a run the lab's tags when it lacks them: the jobs carry them, but a materialization launched from the
    UI or `dagster asset materialize` runs an implicit asset job without tags (every run writes through this IO
    manager, so it is tagged on its first step)."""
    run, instance = getattr(context, "dagster_run", None), getattr(context, "instance", None)
    if run is None or instance is None:
        return
    missing = {k: v for k, v in run_tags().items() if k not in run.tags}
    if missing:
        try:
            instance.add_run_tags(run.run_id, missing)
        except Exception:  # a tag is bookkeeping: never fail a step over it
            pass


class Warehouse(dg.ConfigurableIOManagerFactory):
    """Parquet + DuckDB warehouse: the default IO manager of every table asset.

    ``root`` defaults to ``$REPROLAB_WAREHOUSE`` or ``./warehouse``; it must be a writable directory.
    ``store_url`` (default ``$REPROLAB_WAREHOUSE_URL``, unset on one machine) names the shared object store,
    e.g. ``s3://bucket/prefix``: tables are published there and ``root`` becomes this machine's mirror.
    """

    root: str = Field(default=default_warehouse_root(), description="the warehouse folder ($REPROLAB_WAREHOUSE)")
    update_catalog: bool = Field(default=True, description="refresh the table's DuckDB view after each write")
    store_url: str | None = Field(default=default_store_url(), description="the shared lab's object store "
                                                                          "($REPROLAB_WAREHOUSE_URL; none: "
                                                                          "this machine only)")

    def create_io_manager(self, context: dg.InitResourceContext) -> WarehouseIOManager:
        tag_run(context)
        return WarehouseIOManager(ensure_writable_dir(self.root, "warehouse root (resource `io_manager`, field `root`)"),
                                  refresh=self.update_catalog,
                                  store=TableStore.from_url(self.store_url) if self.store_url else None)


class WarehousePaths(dg.ConfigurableResource):
    """The warehouse root, for assets that write files beside the tables (plots, scratch checkpoints), and the
    files of one table (``table_files``; in a shared lab first brought up to date from ``store_url``)."""

    root: str = Field(default=default_warehouse_root(), description="the warehouse folder ($REPROLAB_WAREHOUSE)")
    store_url: str | None = Field(default=default_store_url(), description="the shared lab's object store "
                                                                          "($REPROLAB_WAREHOUSE_URL; none: "
                                                                          "this machine only)")

    def table_files(self, group: str, asset: str) -> list[Path]:
        """Every materialization of ``group.asset`` on this machine, oldest first (the store's too, if any)."""
        if self.store_url:
            TableStore.from_url(self.store_url).sync(self.root, [(group, asset)])
        return materialization_files(self.root, group, asset)

    def path(self, *parts: str) -> Path:
        """``<root>/<parts…>``, its parent folders created."""
        target = Path(self.root).resolve().joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


__all__ = ["Warehouse", "WarehouseIOManager", "WarehousePaths", "WarehouseError"]
