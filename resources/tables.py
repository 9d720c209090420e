"""Immutable Parquet tables with lineage columns: the warehouse's storage layer (no Dagster here).

Layout: ``<root>/<group>/<asset>/<materialization id>.parquet``, one file per materialization, written to a
temporary name and renamed so a reader never sees half a file. Ids sort by time, so the newest is last.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

LINEAGE_COLUMNS = ("materialization_id", "run_id", "code_version", "materialized_at", "upstream", "upstream_resolution")
_KIND_KEY = b"reprolab.kind"
_JSON_KEY = b"reprolab.json_columns"


class WarehouseError(RuntimeError):
    """A table in the warehouse cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class Lineage:
    """Where a materialization came from: stamped on every row."""

    run_id: str
    code_version: str
    upstream: Sequence[str] = ()
    materialized_at: datetime | None = None
    # upstream table id -> how it was chosen: "this run" (materialized by the same run), "at launch" (the
    # latest materialization when the run was created), or "latest" (no run record: the newest on disk)
    resolution: Mapping[str, str] | None = None


def table_dir(root: str | Path, group: str, asset: str) -> Path:
    return Path(root) / group / asset


def new_materialization_id(run_id: str, now: datetime) -> str:
    """A file id that sorts by time: ``20261127T220241123456Z-<run id prefix>``."""
    return f"{now:%Y%m%dT%H%M%S%fZ}-{run_id[:8]}"


def _record_to_frame(record: Mapping[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    """A dict record becomes one row; nested values (dicts, lists) are stored as JSON text."""
    row, json_cols = {}, []
    for key, value in record.items():
        if isinstance(value, (dict, list, tuple)):
            row[key] = json.dumps(value, sort_keys=True, default=str)
            json_cols.append(key)
        else:
            row[key] = value
    return pd.DataFrame([row]), json_cols


def write_table(root: str | Path, group: str, asset: str, value: Any, lineage: Lineage) -> Path:
    """Write a DataFrame, Arrow table or dict record as a new immutable Parquet file; return its path."""
    kind, json_cols = "table", []
    if isinstance(value, Mapping):
        frame, json_cols = _record_to_frame(value)
        kind = "record"
    elif isinstance(value, pa.Table):
        frame = value.to_pandas()
    elif isinstance(value, pd.DataFrame):
        frame = value
    else:
        raise TypeError(
            f"asset {group}.{asset} returned {type(value).__name__}; the warehouse stores a pandas "
            "DataFrame, a pyarrow Table or a dict record (models are logged to MLflow, not pickled)"
        )
    clash = [c for c in LINEAGE_COLUMNS if c in frame.columns]
    if clash:
        raise ValueError(f"asset {group}.{asset} has columns {clash} reserved for lineage; rename them")

    now = lineage.materialized_at or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("Lineage.materialized_at must be timezone-aware")
    mid = new_materialization_id(lineage.run_id, now)
    frame = frame.reset_index(drop=True).copy()
    frame["materialization_id"] = mid
    frame["run_id"] = lineage.run_id
    frame["code_version"] = lineage.code_version
    frame["upstream"] = json.dumps(sorted(set(lineage.upstream)))
    frame["upstream_resolution"] = json.dumps(dict(sorted((lineage.resolution or {}).items())))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # added on the Arrow side: pandas' tz-aware -> Arrow path warns under pandas 3
    stamp = pa.array([now.astimezone(UTC)] * table.num_rows, type=pa.timestamp("us", tz="UTC"))
    table = table.add_column(table.schema.get_field_index("upstream"), "materialized_at", stamp)
    meta = dict(table.schema.metadata or {})
    meta[_KIND_KEY] = kind.encode()
    meta[_JSON_KEY] = json.dumps(json_cols).encode()
    table = table.replace_schema_metadata(meta)

    directory = table_dir(root, group, asset)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{mid}.parquet"
    tmp = directory / f".{mid}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def materialization_files(root: str | Path, group: str, asset: str) -> list[Path]:
    """All materializations of one asset, oldest first."""
    directory = table_dir(root, group, asset)
    return sorted(directory.glob("*.parquet")) if directory.is_dir() else []


def latest_file(root: str | Path, group: str, asset: str) -> Path:
    files = materialization_files(root, group, asset)
    if not files:
        raise WarehouseError(f"no materialization of {group}.{asset} under {table_dir(root, group, asset)}")
    return files[-1]


def read_table(path: str | Path, *, with_lineage: bool = False) -> pd.DataFrame | dict[str, Any]:
    """Read one materialization back: a DataFrame, or the dict for a record; lineage columns dropped unless asked."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except FileNotFoundError as exc:
        raise WarehouseError(f"table file {path} does not exist") from exc
    except (pa.ArrowException, OSError) as exc:
        raise WarehouseError(f"cannot read table file {path}: it is not a valid Parquet file ({exc})") from exc
    meta = table.schema.metadata or {}
    frame = table.to_pandas()
    if not with_lineage:
        frame = frame.drop(columns=[c for c in LINEAGE_COLUMNS if c in frame.columns])
    if meta.get(_KIND_KEY) != b"record":
        return frame
    json_cols = json.loads(meta.get(_JSON_KEY, b"[]"))
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in frame.iloc[0].items()}
    for col in json_cols:
        record[col] = json.loads(record[col])
    return record


def list_tables(root: str | Path) -> list[tuple[str, str]]:
    """Every (group, asset) with at least one materialization."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    # folders starting with "_" or "." hold other stores (MLflow, plots, checkpoints), not tables
    for group_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] not in "._"):
        for asset_dir in sorted(p for p in group_dir.iterdir() if p.is_dir()):
            if any(asset_dir.glob("*.parquet")):
                found.append((group_dir.name, asset_dir.name))
    return found
