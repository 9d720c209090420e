"""Two processes materializing at once: neither fails on DuckDB's single-writer lock, no view is lost."""

import subprocess
import sys
from pathlib import Path

import duckdb

from resources.catalog import catalog_path, query

SCRIPT = Path(__file__).with_name("concurrent_materialize.py")
REPO = Path(__file__).resolve().parents[2]


def test_two_processes_materialize_at_once(warehouse_root):
    repeats = 4
    procs = [
        subprocess.Popen([sys.executable, str(SCRIPT), str(warehouse_root), name, str(repeats)], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("alpha", "beta")
    ]
    # meanwhile, read the catalog the way a researcher would: read-only opens must never block the writers
    reads = 0
    while any(p.poll() is None for p in procs):
        if catalog_path(warehouse_root).exists():
            try:
                con = duckdb.connect(str(catalog_path(warehouse_root)), read_only=True)
                con.execute("SELECT 1").fetchall()
                con.close()
                reads += 1
            except duckdb.Error:
                pass
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0, err[-2000:]

    for name in ("alpha", "beta"):
        latest = query(warehouse_root, f"SELECT count(*) AS n, min(writer) AS w FROM race.{name}")
        assert latest.iloc[0].tolist() == [5, name]
        history = query(warehouse_root, f"SELECT count(DISTINCT run_id) AS runs FROM race.{name}_history")
        assert history["runs"].iloc[0] == repeats
    assert not list(Path(warehouse_root).glob(".catalog-*")), "temporary catalogs left behind"
