"""Two processes materializing at once: neither fails on DuckDB's single-writer lock, no view is lost, and a
reader opening the catalog meanwhile neither fails, blocks the writers, nor sees a half-built catalog."""

import subprocess
import sys
from pathlib import Path

import duckdb

from resources.catalog import catalog_path, query

SCRIPT = Path(__file__).with_name("concurrent_materialize.py")
REPO = Path(__file__).resolve().parents[2]
NAMES = ("alpha", "beta")


def read_catalog(path: Path) -> dict[str, int]:
    """Open the catalog read-only, as a researcher would, and check each race view there is whole: the latest
    view has one materialization's 5 rows, the history 5 rows per run. Returns table -> runs in its history."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        views = {v for (v,) in con.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'race'").fetchall()}
        runs = {}
        for name in NAMES:
            assert (name in views) == (f"{name}_history" in views), views  # a table's two views come together
            if name in views:
                assert con.execute(f"SELECT count(*) FROM race.{name}").fetchone()[0] == 5
                rows, runs[name] = con.execute(f"SELECT count(*), count(DISTINCT run_id) FROM race.{name}_history").fetchone()
                assert runs[name] >= 1 and rows == 5 * runs[name]
        return runs
    finally:
        con.close()


def test_two_processes_materialize_at_once(warehouse_root):
    repeats = 4
    procs = [
        subprocess.Popen([sys.executable, str(SCRIPT), str(warehouse_root), name, str(repeats)], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in NAMES
    ]
    # meanwhile, read the catalog over and over while either writer runs
    reads, failures, runs_seen = 0, [], set()
    try:
        while any(p.poll() is None for p in procs):
            if not catalog_path(warehouse_root).exists():
                continue
            try:
                runs_seen.update(read_catalog(catalog_path(warehouse_root)).values())
                reads += 1
            except duckdb.Error as exc:
                failures.append(str(exc).splitlines()[0])
    except BaseException:
        for p in procs:
            p.kill()
        raise
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0, err[-2000:]

    assert not failures, f"{len(failures)} of {reads + len(failures)} read-only opens failed: {failures[:3]}"
    assert reads > 0, "the catalog was never read while the writers ran"
    # the reads interleaved with the writes: some read saw a table before its last materialization
    assert runs_seen and min(runs_seen) < repeats, runs_seen

    for name in NAMES:
        latest = query(warehouse_root, f"SELECT count(*) AS n, min(writer) AS w FROM race.{name}")
        assert latest.iloc[0].tolist() == [5, name]
        history = query(warehouse_root, f"SELECT count(DISTINCT run_id) AS runs FROM race.{name}_history")
        assert history["runs"].iloc[0] == repeats
    assert not list(Path(warehouse_root).glob(".catalog-*")), "temporary catalogs left behind"
