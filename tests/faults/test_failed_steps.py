"""A step that fails leaves nothing the lab then serves as the latest (operations review, issue of the failed run).

Found on a copy of the demo warehouse: a step failed after its Parquet file was written, the file stayed, and
`reprolab catalog` (a full rebuild) then served the failed run's rows as the latest; one truncated file of an
unrelated table made every later materialization fail while refreshing the catalog; the findings drift check
compared with whatever file came before on disk, a failed run's included.
"""

import dagster as dg
import pandas as pd
import pytest

from resources.catalog import query, refresh_catalog
from resources.tables import Lineage, materialization_files, write_table

ROWS = iter(range(100))


@dg.asset(group_name="fault_steps")
def scaling() -> pd.DataFrame:
    """A small table; each materialization has its own ``n``."""
    return pd.DataFrame({"n": [next(ROWS)], "value": [1.0]})


@dg.asset(group_name="fault_steps")
def unrelated() -> pd.DataFrame:
    """Another table of the warehouse, whose file will be damaged."""
    return pd.DataFrame({"doc": ["a", "b"]})


def _messages(instance, result) -> list[str]:
    return [e.user_message for e in instance.all_logs(result.run_id) if e.user_message]


def _runs_of(warehouse, view: str = "scaling") -> set[str]:
    return set(query(warehouse, f"SELECT DISTINCT run_id FROM fault_steps.{view}")["run_id"])


def test_a_step_failing_after_its_file_was_written_leaves_no_file(resources_for, warehouse_root, monkeypatch):
    instance = dg.DagsterInstance.ephemeral()
    good = dg.materialize([scaling], resources=resources_for, instance=instance)
    assert good.success

    def schema_fails(path):  # anything after the write: here the column schema of the metadata
        raise OSError("disk went away while reading the file back")

    monkeypatch.setattr("resources.warehouse.column_schema", schema_fails)
    failed = dg.materialize([scaling], resources=resources_for, instance=instance, raise_on_error=False)
    assert not failed.success
    monkeypatch.undo()

    assert len(materialization_files(warehouse_root, "fault_steps", "scaling")) == 1  # the failed run's file is gone
    assert _runs_of(warehouse_root, "scaling_history") == {good.run_id}  # no view names a deleted file
    refresh_catalog(warehouse_root)  # the full rebuild the README recommends
    assert _runs_of(warehouse_root) == _runs_of(warehouse_root, "scaling_history") == {good.run_id}


def test_a_failed_publish_to_the_store_leaves_no_file_there_nor_here(resources_for, warehouse_root, tmp_path,
                                                                      monkeypatch):
    from resources.store import TableStore
    from resources.warehouse import Warehouse

    store_dir = tmp_path / "store"
    monkeypatch.setenv("REPROLAB_WAREHOUSE_URL", store_dir.as_uri())
    resources = {**resources_for, "io_manager": Warehouse(root=str(warehouse_root), store_url=store_dir.as_uri())}
    monkeypatch.setattr("resources.warehouse.column_schema",
                        lambda path: (_ for _ in ()).throw(OSError("metadata failed")))
    failed = dg.materialize([scaling], resources=resources, raise_on_error=False)
    assert not failed.success
    assert not materialization_files(warehouse_root, "fault_steps", "scaling")
    assert not TableStore.from_url(store_dir.as_uri()).listing([("fault_steps", "scaling")])


def test_a_truncated_file_of_another_table_does_not_fail_later_materializations(resources_for, warehouse_root):
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([unrelated, scaling], resources=resources_for, instance=instance).success
    assert dg.materialize([unrelated], resources=resources_for, instance=instance).success
    damaged = materialization_files(warehouse_root, "fault_steps", "unrelated")[-1]
    damaged.write_bytes(damaged.read_bytes()[:20])  # truncated: "No magic bytes found"

    result = dg.materialize([scaling], resources=resources_for, instance=instance, raise_on_error=False)
    assert result.success
    warnings = [m for m in _messages(instance, result) if "fault_steps.unrelated" in m and "reprolab catalog" in m]
    assert warnings, "the step says the catalog could not be fully refreshed, and what to run"
    assert _runs_of(warehouse_root) == {result.run_id}  # the new file is served
    assert len(_runs_of(warehouse_root, "scaling_history")) == 2
    assert len(query(warehouse_root, "SELECT * FROM main.lineage")) == 0  # built (no table here has an upstream)
    # the other table's views were rebuilt over its readable file (the older one serves as the latest)
    assert query(warehouse_root, "SELECT count(*) AS n FROM fault_steps.unrelated_history")["n"].iloc[0] == 2
    assert query(warehouse_root, "SELECT count(*) AS n FROM fault_steps.unrelated")["n"].iloc[0] == 2
    report = refresh_catalog(warehouse_root)  # full rebuild: the damaged file skipped and named
    assert str(damaged) in report.warnings and not report.errors


def test_a_truncated_file_of_the_table_itself_is_skipped_and_named(resources_for, warehouse_root):
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([scaling], resources=resources_for, instance=instance).success
    older = materialization_files(warehouse_root, "fault_steps", "scaling")[-1]
    older.write_bytes(older.read_bytes()[:20])
    result = dg.materialize([scaling], resources=resources_for, instance=instance)
    assert result.success
    assert _runs_of(warehouse_root) == {result.run_id}
    assert len(query(warehouse_root, "SELECT * FROM fault_steps.scaling_history")) == 1
    messages = [m for m in _messages(instance, result) if str(older) in m]
    assert messages, "the step names the unreadable file it left out"


@pytest.fixture
def findings_key():
    return dg.AssetKey(["fault_drift", "findings"])


def test_the_drift_check_never_compares_with_a_failed_runs_file(resources_for, warehouse_root, findings_key):
    from assets.findings import Finding, Rule, findings_frame
    from pipelines.findings_drift import findings_regression_check

    values = iter([0.50, 0.90, 0.52])

    @dg.asset(key=findings_key, group_name="fault_drift")
    def drift_findings() -> pd.DataFrame:
        return findings_frame([Finding("fault_drift", "headline", next(values), 1.0, "paper",
                                       Rule.within_factor(2), scale="tiny")])

    @dg.asset(group_name="fault_drift")
    def broken() -> pd.DataFrame:
        raise RuntimeError("a step that failed")

    instance = dg.DagsterInstance.ephemeral()
    first = dg.materialize([drift_findings], resources=resources_for, instance=instance)
    # what a failed step left before the fix (or a process killed between writing and recording): 0.90
    failed = dg.materialize([broken], resources=resources_for, instance=instance, raise_on_error=False)
    assert not failed.success
    write_table(warehouse_root, "fault_drift", "findings", drift_findings(),
                Lineage(run_id=failed.run_id, code_version="1"))
    check = findings_regression_check(findings_key)
    result = dg.materialize([drift_findings, check], resources=resources_for, instance=instance)
    evaluation = result.get_asset_check_evaluations()[0]
    first_stem = materialization_files(warehouse_root, "fault_drift", "findings")[0].stem
    assert evaluation.metadata["compared_with"].value == first_stem, first.run_id
    assert evaluation.passed  # 0.50 -> 0.52, not 0.90 -> 0.52

    from pipelines.findings_drift import previous_file_index

    files = materialization_files(warehouse_root, "fault_drift", "findings")
    assert previous_file_index(instance, findings_key, files) == 0
    assert previous_file_index(instance, findings_key, files[:2]) == 0  # a recorded run's file is compared with
    assert previous_file_index(instance, findings_key, files[1:]) is None  # only a failed step's file before
    # a run this instance never saw (another machine of a shared lab, an earlier instance) is a materialization
    assert previous_file_index(dg.DagsterInstance.ephemeral(), findings_key, files) == 1


def test_a_run_terminated_while_the_catalog_refreshes_withdraws_the_published_file(resources_for, warehouse_root,
                                                                                   tmp_path, monkeypatch):
    from dagster._core.errors import DagsterExecutionInterruptedError

    from resources.store import TableStore
    from resources.warehouse import Warehouse

    store_dir = tmp_path / "store"
    monkeypatch.setenv("REPROLAB_WAREHOUSE_URL", store_dir.as_uri())
    resources = {**resources_for, "io_manager": Warehouse(root=str(warehouse_root), store_url=store_dir.as_uri())}

    def terminated(*args, **kwargs):  # what Dagster raises in a step when its run is terminated
        raise DagsterExecutionInterruptedError()

    monkeypatch.setattr("resources.warehouse.refresh_catalog", terminated)
    result = dg.materialize([scaling], resources=resources, raise_on_error=False)
    assert not result.success
    assert not materialization_files(warehouse_root, "fault_steps", "scaling")
    assert not TableStore.from_url(store_dir.as_uri()).listing([("fault_steps", "scaling")])


def test_lineage_views_skip_a_history_view_that_cannot_be_described(resources_for, warehouse_root):
    import duckdb

    from resources.catalog import RefreshReport, _create_lineage_views, _create_views

    assert dg.materialize([unrelated, scaling], resources=resources_for).success
    con = duckdb.connect()
    views = _create_views(con, warehouse_root, "fault_steps", "unrelated") + _create_views(
        con, warehouse_root, "fault_steps", "scaling")
    damaged = materialization_files(warehouse_root, "fault_steps", "unrelated")[-1]
    damaged.write_bytes(damaged.read_bytes()[:20])
    report = RefreshReport()
    _create_lineage_views(con, views, report)  # raised "No magic bytes found" before
    assert list(report.errors) == ["fault_steps.unrelated_history"]
    assert con.execute("SELECT count(*) FROM main.lineage").fetchone() == (0,)  # built over the other table
