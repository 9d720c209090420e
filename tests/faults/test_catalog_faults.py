"""Faults at the catalog: the read-only SQL door, a corrupt latest file, a locked or missing catalog.

Each test is a probe a hostile but fair user tried (issue 15), kept so it cannot come back.
"""

import fcntl
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from pipelines.cli import main
from resources.catalog import CatalogError, query, refresh_catalog
from resources.tables import materialization_files

REPO = Path(__file__).resolve().parents[2]


@dg.asset(group_name="fault_group")
def docs() -> pd.DataFrame:
    return pd.DataFrame({"doc_id": ["a", "b", "c"], "n": [1, 2, 3]})


@pytest.fixture
def warehouse(resources_for, warehouse_root):
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):  # two materializations: history has an older file to fall back on
        assert dg.materialize([docs], resources=resources_for, instance=instance).success
    return warehouse_root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.suffix == ".parquet"}


def writing_and_reading_statements(root: Path) -> list[str]:
    latest = materialization_files(root, "fault_group", "docs")[-1]
    return [
        f"EXPLAIN ANALYZE COPY (SELECT 'x' AS doc_id FROM range(3)) TO '{latest}' (FORMAT parquet)",
        f"COPY (SELECT 1 AS a, 2 AS b) TO '{root}/fault_group' (FORMAT parquet, PARTITION_BY (a), OVERWRITE)",
        f"COPY fault_group.docs TO '{root}/leak.csv'",
        f"EXPORT DATABASE '{root}/export'",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/hostname')",
        f"SELECT * FROM read_text('{root}/../../../../etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "ATTACH '/tmp/reprolab-fault.db' AS other",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "PRAGMA enable_profiling = 'json'",
        "CREATE TABLE t AS SELECT 1",
        "CREATE OR REPLACE VIEW fault_group.docs AS SELECT 1",
        "DROP VIEW fault_group.docs",
        "INSERT INTO fault_group.docs VALUES ('z', 9)",
        "SELECT 1; COPY (SELECT 1) TO '/tmp/reprolab-fault.parquet'",
        "EXPLAIN (FORMAT json) COPY (SELECT 1) TO '/tmp/reprolab-fault.parquet'",
        "CALL pragma_version()",
    ]


def test_sql_door_refuses_every_write_and_every_outside_read(warehouse):
    before = _snapshot(warehouse)
    refused = []
    for sql in writing_and_reading_statements(warehouse):
        with pytest.raises(CatalogError) as info:
            query(warehouse, sql)
        refused.append((sql, str(info.value)))
    assert _snapshot(warehouse) == before  # nothing overwritten, nothing deleted
    assert not (warehouse / "leak.csv").exists() and not (warehouse / "export").exists()
    assert not Path("/tmp/reprolab-fault.parquet").exists()
    # reading statements still work, including EXPLAIN (ANALYZE) of a SELECT and introspection
    assert query(warehouse, "SELECT count(*) AS n FROM fault_group.docs")["n"].iloc[0] == 3
    assert len(query(warehouse, "EXPLAIN ANALYZE SELECT * FROM fault_group.docs")) == 1
    assert set(query(warehouse, "DESCRIBE fault_group.docs")["column_name"]) >= {"doc_id", "n", "run_id"}
    assert len(query(warehouse, "SUMMARIZE fault_group.docs")) > 0
    assert len(query(warehouse, "SELECT * FROM fault_group.docs_history")) == 6
    # a PIVOT that names its values is one SELECT; without them DuckDB runs several statements, and we say how
    pivoted = query(warehouse, "PIVOT fault_group.docs ON doc_id IN ('a', 'b') USING sum(n)")
    assert list(pivoted.columns[-2:]) == ["a", "b"]
    with pytest.raises(CatalogError, match=r"PIVOT without its values .* ON metric IN"):
        query(warehouse, "PIVOT fault_group.docs ON doc_id USING sum(n)")


def test_cli_query_door_exits_nonzero_with_one_line(warehouse, capsys):
    latest = materialization_files(warehouse, "fault_group", "docs")[-1]
    sql = f"EXPLAIN ANALYZE COPY (SELECT 'x' AS doc_id FROM range(3)) TO '{latest}' (FORMAT parquet)"
    assert main(["--warehouse", str(warehouse), "query", sql]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "read-only" in err and len(err.splitlines()) == 1
    assert main(["--warehouse", str(warehouse), "query", "SELECT * FROM read_text('/etc/passwd')"]) == 2
    assert "Permission" in capsys.readouterr().err


def test_corrupt_latest_file_keeps_older_ones(warehouse, capsys):
    older, latest = materialization_files(warehouse, "fault_group", "docs")
    latest.write_bytes(b"PAR1 truncated garbage")
    report = refresh_catalog(warehouse)
    assert str(latest) in report.warnings and not report.errors
    assert {"fault_group.docs", "fault_group.docs_history"} <= set(report.views)
    # the latest view falls back to the older good file; history keeps it
    assert query(warehouse, "SELECT count(*) AS n FROM fault_group.docs")["n"].iloc[0] == 3
    assert query(warehouse, "SELECT count(*) AS n FROM fault_group.docs_history")["n"].iloc[0] == 3
    assert main(["--warehouse", str(warehouse), "catalog"]) == 0
    assert str(latest) in capsys.readouterr().err
    assert main(["--warehouse", str(warehouse), "summary"]) == 0
    assert "fault_group.docs" in capsys.readouterr().out


def test_a_table_whose_every_file_is_corrupt_says_how_to_find_out(warehouse):
    for path in materialization_files(warehouse, "fault_group", "docs"):
        path.write_bytes(b"PAR1 truncated garbage")
    refresh_catalog(warehouse)
    with pytest.raises(CatalogError, match=r"docs has files in the warehouse but no view: `reprolab catalog`"):
        query(warehouse, "SELECT * FROM fault_group.docs")
    with pytest.raises(CatalogError, match=r"`reprolab tables` lists"):  # a name the warehouse never had
        query(warehouse, "SELECT * FROM fault_group.no_such_table")


def test_a_table_named_without_its_schema_is_named_in_full(warehouse):
    refresh_catalog(warehouse)
    with pytest.raises(CatalogError, match=r"did you mean fault_group\.docs\?"):
        query(warehouse, "SELECT * FROM docs")
    with pytest.raises(CatalogError, match=r"`reprolab tables` lists"):
        query(warehouse, "SELECT * FROM no_such_table")


def test_catalog_on_missing_or_unwritable_warehouse_is_one_line(tmp_path, capsys):
    assert main(["--warehouse", str(tmp_path / "nowhere"), "catalog"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no warehouse at" in err and len(err.splitlines()) == 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["--warehouse", str(blocker), "catalog"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1


def test_query_while_another_process_writes_the_catalog_is_one_line(warehouse):
    """A writer holding DuckDB's own lock (a process with the catalog open read-write) makes readers fail with a
    clear message, not a traceback."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(warehouse / 'catalog.duckdb')!r})
        print('held', flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        out = subprocess.run([str(Path(sys.executable).parent / "reprolab"), "--warehouse", str(warehouse),
                              "query", "SELECT 1"], capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr and "cannot open the catalog" in out.stderr
        out = subprocess.run([str(Path(sys.executable).parent / "reprolab"), "--warehouse", str(warehouse),
                              "tables"], capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 2 and "Traceback" not in out.stderr
    finally:
        holder.kill()
        holder.wait()


def test_catalog_writers_serialise_on_the_file_lock(warehouse):
    """The rebuild waits for the writer lock rather than writing beside another writer."""
    with open(warehouse / ".catalog.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        proc = subprocess.Popen([str(Path(sys.executable).parent / "reprolab"), "--warehouse", str(warehouse),
                                 "catalog"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
    assert proc.wait(timeout=60) == 0
