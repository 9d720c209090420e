"""The DuckDB catalog: views over the Parquet tables, never data of its own.

``<group>.<asset>`` is the latest materialization, ``<group>.<asset>_history`` all of them,
``main.findings`` the union of every study's ``<group>.findings`` table, ``main.models`` every registered model
and ``main.lineage`` every table's upstream references (see `_create_lineage_views`). Parquet is the truth: the catalog
is rebuilt from the folders at any time. DuckDB allows one writer per file, so writers take a file lock,
build a new catalog under a temporary name and rename it over the old one; readers open it read-only and
never see a half-built catalog nor hold a lock that blocks a writer.

In a shared lab (``REPROLAB_WAREHOUSE_URL=s3://…``) the catalog stays local: it is built over this machine's
mirror of the object store, which a full rebuild and every read first bring up to date from the store's listing
(new files are downloaded through pyarrow; files never change, so nothing else can be stale). Views over
``s3://`` paths would need DuckDB's httpfs extension, which is not bundled with the duckdb wheel and may not be
downloaded at run time; a local catalog also keeps the read-only guards (no file outside the warehouse folder).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from resources.store import active_store
from resources.tables import list_tables, materialization_files

CATALOG_NAME = "catalog.duckdb"


class CatalogError(RuntimeError):
    """The catalog is missing, or a query against it is not allowed."""


@dataclass
class RefreshReport:
    views: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)  # file -> why it was skipped


def catalog_path(root: str | Path) -> Path:
    return Path(root) / CATALOG_NAME


@contextmanager
def _writer_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".catalog.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sql_str(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _readable(files: list[Path]) -> tuple[list[Path], dict[str, str]]:
    """The files whose Parquet footer reads, and the reason each other one does not."""
    import pyarrow.parquet as pq

    good, bad = [], {}
    for f in files:
        try:
            pq.read_metadata(f)
            good.append(f)
        except Exception as exc:  # pyarrow raises several kinds for a truncated or foreign file
            bad[str(f)] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}"
    return good, bad


def _create_views(con: duckdb.DuckDBPyConnection, root: Path, group: str, asset: str,
                  report: RefreshReport | None = None) -> list[str]:
    """The latest and history views of one table over its readable files; unreadable ones are skipped and
    named in ``report.warnings`` (an older good file then serves as the latest)."""
    files, bad = _readable(materialization_files(root, group, asset))
    if report is not None:
        report.warnings.update({path: f"{group}.{asset}: skipped unreadable file ({why})" for path, why in bad.items()})
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{group}"')
    if not files:
        con.execute(f'DROP VIEW IF EXISTS "{group}"."{asset}"')
        con.execute(f'DROP VIEW IF EXISTS "{group}"."{asset}_history"')
        return []
    listed = "[" + ", ".join(_sql_str(f) for f in files) + "]"
    con.execute(f'CREATE OR REPLACE VIEW "{group}"."{asset}" AS SELECT * FROM read_parquet({_sql_str(files[-1])})')
    con.execute(
        f'CREATE OR REPLACE VIEW "{group}"."{asset}_history" AS '
        f"SELECT * FROM read_parquet({listed}, union_by_name = true)"
    )
    return [f"{group}.{asset}", f"{group}.{asset}_history"]


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _columns(con: duckdb.DuckDBPyConnection, view: str) -> set[str] | None:
    """The view's columns, None when it no longer binds (a file it names is unreadable). DESCRIBE reads the
    Parquet footers only."""
    try:
        return {r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()}
    except duckdb.Error:
        return None


def _repair_views(con: duckdb.DuckDBPyConnection, root: Path, report: RefreshReport) -> dict[str, set[str]]:
    """Rebuild the views of a copied catalog that no longer bind: a file they name became unreadable (truncated,
    deleted) since they were built. Each such table gets its views over its readable files again (the unreadable
    ones named in ``report.warnings``, as a full rebuild does); one that still cannot be viewed is dropped and
    named in ``report.errors``. Without this, one damaged file of any table fails every later refresh. The
    history view is the one checked: it names every file the latest view does (both are built together).
    Returns the columns of each history view that binds, for `_create_lineage_views`."""
    rows = con.execute("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal AND schema_name <> "
                       "'main' AND view_name LIKE '%\\_history' ESCAPE '\\'").fetchall()
    described = {f"{s}.{v}": _columns(con, f'"{s}"."{v}"') for s, v in rows}
    for group, asset in sorted({tuple(v.removesuffix("_history").split(".", 1)) for v, c in described.items()
                                if c is None}):
        try:
            if not _create_views(con, root, group, asset, report):
                report.errors[f"{group}.{asset}"] = "every file unreadable: its views were dropped"
        except duckdb.Error as exc:
            con.execute(f'DROP VIEW IF EXISTS "{group}"."{asset}"')
            con.execute(f'DROP VIEW IF EXISTS "{group}"."{asset}_history"')
            report.errors[f"{group}.{asset}"] = f"views dropped: {_first_line(exc)}"
    return {view: columns for view, columns in described.items() if columns is not None}


def _create_findings_view(con: duckdb.DuckDBPyConnection, views: Iterable[str]) -> None:
    groups = sorted({v.split(".")[0] for v in views if v.endswith(".findings") and not v.startswith("main.")})
    parts = [f'SELECT * FROM "{g}"."findings"' for g in groups if _columns(con, f'"{g}"."findings"') is not None]
    if parts:
        con.execute("CREATE OR REPLACE VIEW main.findings AS " + " UNION ALL BY NAME ".join(parts))
    else:
        con.execute("DROP VIEW IF EXISTS main.findings")


def _create_lineage_views(con: duckdb.DuckDBPyConnection, views: Iterable[str],
                          report: RefreshReport | None = None, described: dict[str, set[str]] | None = None) -> None:
    """``main.lineage``: one row per (table, materialization, upstream reference), typed. A table reference
    (``corpora.facts_documents:<id>``) splits into table and materialization id; a model reference
    (``models:/lm-facts-small/3``) resolves to the table and materialization whose record registered it
    (``main.models``). So "where did this number come from" is one recursive query over one view.

    ``main.models`` holds registered models only: one row per ``model_uri`` (the table and materialization that
    recorded it first, in a ``model_uri`` column or in a ``models`` column holding several models' records). Rows whose ``model_uri`` is empty or NULL (models trained and logged but not registered,
    e.g. the royalties game's coalition models other than the all-owners one) are left out: nothing can load
    them by URI, and their MLflow runs are in the recording table's ``mlflow_run_id``.

    A history view that cannot be described (a file it lists became unreadable) is left out of both views and
    named in ``report.errors``; the rest are built. ``described``: columns already known per history view."""
    histories = sorted(v for v in views if v.endswith("_history") and not v.startswith("main."))
    raw, models = [], []
    for view in histories:
        schema, name = view.split(".", 1)
        table = f"{schema}.{name.removesuffix('_history')}"
        columns = (described or {}).get(view) or _columns(con, f'"{schema}"."{name}"')
        if columns is None:
            if report is not None:
                report.errors[view] = "left out of main.lineage and main.models: a file it lists is unreadable"
            continue
        if not {"materialization_id", "run_id", "upstream"} <= columns:
            continue
        resolution = "upstream_resolution" if "upstream_resolution" in columns else "NULL"
        raw.append(f"SELECT DISTINCT '{table}' AS table_name, materialization_id, run_id, materialized_at, "
                   f'upstream, {resolution} AS upstream_resolution FROM "{schema}"."{name}"')
        if "model_uri" in columns:
            models.append(f"SELECT DISTINCT '{table}' AS table_name, materialization_id, materialized_at, "
                          f'model_uri FROM "{schema}"."{name}" WHERE coalesce(trim(CAST(model_uri AS VARCHAR)), \'\') <> \'\'')
        if "models" in columns:  # a record of several models: {"name": {"model_uri": ...}, ...} as JSON
            models.append(f"SELECT * FROM (SELECT DISTINCT '{table}' AS table_name, materialization_id, "
                          "materialized_at, unnest(json_extract_string(models, '$.*.model_uri')) AS model_uri "
                          f'FROM "{schema}"."{name}" WHERE json_valid(models)) WHERE coalesce(model_uri, \'\') <> \'\'')
    if not raw:
        con.execute("DROP VIEW IF EXISTS main.lineage")
        con.execute("DROP VIEW IF EXISTS main.models")
        return
    if models:  # the first table to record a model URI is the one that registered it
        con.execute("CREATE OR REPLACE VIEW main.models AS SELECT model_uri, arg_min(table_name, materialized_at) AS "
                    "table_name, arg_min(materialization_id, materialized_at) AS materialization_id FROM ("
                    + " UNION ALL ".join(models) + ") GROUP BY model_uri")
    else:
        con.execute("CREATE OR REPLACE VIEW main.models AS SELECT NULL::VARCHAR AS model_uri, NULL::VARCHAR AS "
                    "table_name, NULL::VARCHAR AS materialization_id WHERE false")
    con.execute(f"""CREATE OR REPLACE VIEW main.lineage AS
        WITH edges AS (
            SELECT table_name, materialization_id, run_id, materialized_at, upstream_resolution,
                   unnest(from_json(upstream, '["VARCHAR"]')) AS upstream_ref
            FROM ({" UNION ALL ".join(raw)}))
        SELECT e.table_name, e.materialization_id, e.run_id, e.materialized_at, e.upstream_ref,
               CASE WHEN e.upstream_ref LIKE 'models:/%' THEN 'model' ELSE 'table' END AS upstream_kind,
               CASE WHEN e.upstream_ref LIKE 'models:/%' THEN m.table_name
                    ELSE split_part(e.upstream_ref, ':', 1) END AS upstream_table,
               CASE WHEN e.upstream_ref LIKE 'models:/%' THEN m.materialization_id
                    ELSE split_part(e.upstream_ref, ':', 2) END AS upstream_materialization_id,
               json_extract_string(e.upstream_resolution, '$."' || e.upstream_ref || '"') AS resolution
        FROM edges e LEFT JOIN main.models m ON e.upstream_ref = m.model_uri""")


def refresh_catalog(root: str | Path, tables: Iterable[tuple[str, str]] | None = None) -> RefreshReport:
    """Rebuild the catalog (all tables), or update the views of ``tables`` in a copy of the current one.

    An unreadable file is skipped and named in ``warnings`` (the table's views keep its readable files); a
    table that still cannot be viewed is reported in ``errors`` and left out; the rest of the catalog is built.
    """
    root = Path(root).resolve()
    report = RefreshReport()
    tables = None if tables is None else list(tables)
    store = active_store()
    if store is not None:  # the shared lab: bring the mirror up to date with the store first
        store.sync(root, tables)
    with _writer_lock(root):
        final = catalog_path(root)
        tmp = root / f".catalog-{os.getpid()}-{uuid.uuid4().hex}.duckdb"
        # a catalog built for another folder (a copied or moved warehouse) names that folder's files in every
        # view: updating a few views would leave the rest reading there, so it is rebuilt whole
        incremental = tables is not None and final.exists() and _built_for_path(final) in (None, str(root))
        if incremental:
            shutil.copyfile(final, tmp)
        targets = list(tables) if incremental else list_tables(root)
        try:
            con = duckdb.connect(str(tmp))
            try:
                for group, asset in targets:
                    try:
                        report.views += _create_views(con, root, group, asset, report)
                    except duckdb.Error as exc:
                        report.errors[f"{group}.{asset}"] = str(exc).splitlines()[0]
                # the copied views of other tables may name a file that became unreadable since
                described = _repair_views(con, root, report) if incremental else {}
                existing = [
                    f"{s}.{n}" for s, n in con.execute(
                        "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal"
                    ).fetchall()
                ]
                _create_findings_view(con, existing)
                _create_lineage_views(con, existing, report, described)
                con.execute(f"CREATE OR REPLACE VIEW main.catalog_root AS SELECT {_sql_str(root)} AS root")
                con.execute("CHECKPOINT")
            finally:
                con.close()
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
            Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return report


def connect_read_only(root: str | Path) -> duckdb.DuckDBPyConnection:
    """Open the catalog for reading, fenced in by DuckDB's own guards; a clear error if it is missing or locked.

    The connection is read-only, may touch files only under the warehouse root (``allowed_directories``, with
    ``enable_external_access`` off: no ``/etc``, no other databases, no extensions), and its configuration is
    locked so a query cannot lift the guards. A catalog whose warehouse folder was moved is rebuilt first
    (its views hold absolute paths; the Parquet files are the truth).
    """
    root = Path(root).resolve()
    path = catalog_path(root)
    store = active_store()
    if store is not None and (store.sync(root) or not path.exists()):  # new files in the shared store
        refresh_catalog(root)
    if not path.exists():
        raise CatalogError(
            f"no catalog at {path}: materialize something (make demo) or rebuild it with `reprolab catalog`"
        )
    con = _open(path)
    if _built_for(con) not in (None, str(root)):  # the warehouse folder was moved: its views name old paths
        con.close()
        try:
            refresh_catalog(root)
        except OSError as exc:
            raise CatalogError(f"the warehouse moved to {root} and its catalog cannot be rebuilt there "
                               f"({exc}); run `reprolab catalog` where it is writable") from exc
        con = _open(path)
    try:
        con.execute("SET allowed_directories = [?]", [str(root) + os.sep])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except duckdb.Error:
        con.close()
        raise
    return con


def _open(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise CatalogError(f"cannot open the catalog {path}: {str(exc).splitlines()[0]}") from exc


def _built_for_path(path: Path) -> str | None:
    """`_built_for` of the catalog file at ``path`` ("" when it cannot be opened, so it is rebuilt whole)."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return ""
    try:
        return _built_for(con)
    finally:
        con.close()


def _built_for(con: duckdb.DuckDBPyConnection) -> str | None:
    """The warehouse root the catalog's views were built for (None for a catalog older than that record)."""
    try:
        return con.execute("SELECT root FROM main.catalog_root").fetchone()[0]
    except duckdb.Error:
        return None


# Statement kinds that only read. EXPLAIN is allowed only around a SELECT: EXPLAIN ANALYZE runs its statement.
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:\((?:[^()])*\)\s*|ANALY[SZ]E\s+)?", re.IGNORECASE)


def _refuse_writes(con: duckdb.DuckDBPyConnection, statements: list) -> None:
    for statement in statements:
        kind = statement.type.name
        if kind == "EXPLAIN":
            inner_sql = _EXPLAIN.sub("", statement.query, count=1)
            try:
                inner = con.extract_statements(inner_sql)
            except duckdb.Error as exc:
                raise CatalogError(f"query failed: {exc}") from exc
            kind = inner[0].type.name if len(inner) == 1 else "EXPLAIN"
            if kind == "EXPLAIN":  # nested or unparsable EXPLAIN: refuse rather than guess
                kind = "nested EXPLAIN"
        if kind == "MULTI" and re.search(r"\bPIVOT\b", statement.query, re.IGNORECASE):
            raise CatalogError(
                "query refused: a PIVOT without its values is run by DuckDB as several statements (one creates a "
                "type); name them and it is one SELECT: PIVOT … ON metric IN ('helpful_accuracy', 'goodness@0.1') "
                "USING first(value)"
            )
        if kind not in ("SELECT", "PRAGMA"):
            raise CatalogError(
                f"the catalog is read-only: `reprolab query` runs reading statements only (SELECT, DESCRIBE, "
                f"SHOW, SUMMARIZE, EXPLAIN SELECT), got {kind}; results are written by materializing assets"
            )


def query(root: str | Path, sql: str) -> pd.DataFrame:
    """Run read-only SQL (SELECT, SHOW, DESCRIBE, EXPLAIN …) against the catalog and return the last result.

    Statements that would write (CREATE, INSERT, COPY, ATTACH, EXPORT, EXPLAIN ANALYZE of a write, …) are
    refused before anything runs, and the connection's guards (`connect_read_only`) keep every file outside the
    warehouse out of reach.
    """
    con = connect_read_only(root)
    try:
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as exc:
            raise CatalogError(f"query failed: {exc}") from exc
        if not statements:
            raise CatalogError("query is empty: give one SQL statement, e.g. SELECT * FROM findings")
        _refuse_writes(con, statements)
        try:
            for statement in statements[:-1]:
                con.execute(statement)
            return con.execute(statements[-1]).df()
        except duckdb.Error as exc:
            hint = _missing_view_hint(con, Path(root), exc) if isinstance(exc, duckdb.CatalogException) else ""
            raise CatalogError(f"query failed: {str(exc).splitlines()[0]}{hint}") from exc
    finally:
        con.close()


def _missing_view_hint(con: duckdb.DuckDBPyConnection, root: Path, exc: duckdb.Error) -> str:
    """What to do about a table the query names that the catalog has no view of: a study's table named without
    its schema (``chat_rl`` for ``chat.chat_rl``) is named in full; a table whose files are in the warehouse but
    could not be viewed (e.g. its only file is unreadable) is rebuilt, and its unreadable files named, by
    `reprolab catalog`; any other name is listed by `reprolab tables` (or not there at all)."""
    match = re.search(r'Table with name "?([\w.]+)"? does not exist', str(exc))
    name = match.group(1).split(".")[-1] if match else None
    if name is not None and "." not in match.group(1):
        schemas = [r[0] for r in con.execute(
            "SELECT schema_name FROM duckdb_views() WHERE NOT internal AND view_name = ? ORDER BY 1", [name]
        ).fetchall()]
        if schemas:
            return f" (did you mean {' or '.join(f'{s}.{name}' for s in schemas)}? a study's tables are in its schema)"
    on_disk = name is not None and any(p.is_dir() for p in Path(root).resolve().glob(f"*/{name}"))
    if on_disk:
        return (f" ({name} has files in the warehouse but no view: `reprolab catalog` rebuilds the views and "
                "names any file it cannot read)")
    return " (`reprolab tables` lists the tables the catalog has)"


def list_views(root: str | Path) -> pd.DataFrame:
    """Every view in the catalog with its schema."""
    return query(
        root,
        "SELECT schema_name AS schema, view_name AS view FROM duckdb_views() WHERE NOT internal ORDER BY 1, 2",
    )
