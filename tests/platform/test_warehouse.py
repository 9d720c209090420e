"""The warehouse IO manager and the DuckDB catalog, through real materializations."""

import json

import dagster as dg
import pandas as pd
import pytest

from resources.catalog import CatalogError, query, refresh_catalog
from resources.tables import LINEAGE_COLUMNS, WarehouseError, materialization_files, read_table


@dg.asset(group_name="demo_group", code_version="v1")
def numbers() -> pd.DataFrame:
    """Three numbers."""
    return pd.DataFrame({"x": [1, 2, 3]})


@dg.asset(group_name="demo_group", code_version="v2")
def doubled(numbers: pd.DataFrame) -> pd.DataFrame:
    """The numbers doubled."""
    assert list(numbers.columns) == ["x"], "lineage columns must not reach the science"
    return numbers.assign(y=numbers["x"] * 2)


@dg.asset(group_name="demo_group")
def model_record() -> dict:
    """A record like the one a training asset returns."""
    return {"model_uri": "models:/m/1", "params": {"lr": 0.1}, "final_val_loss": 1.5}


@dg.asset(group_name="demo_group")
def uses_record(model_record: dict) -> pd.DataFrame:
    """A table computed from a model record."""
    return pd.DataFrame({"uri": [model_record["model_uri"]], "lr": [model_record["params"]["lr"]]})


def test_round_trip_with_lineage(resources_for, warehouse_root):
    result = dg.materialize([numbers, doubled], resources=resources_for)
    assert result.success
    out = result.output_for_node("doubled")
    assert out["y"].tolist() == [2, 4, 6]

    files = materialization_files(warehouse_root, "demo_group", "doubled")
    assert len(files) == 1
    stored = read_table(files[0], with_lineage=True)
    assert set(LINEAGE_COLUMNS) <= set(stored.columns)
    assert (stored["run_id"] == result.run_id).all()
    assert (stored["code_version"] == "v2").all()
    upstream = json.loads(stored["upstream"].iloc[0])
    up_file = materialization_files(warehouse_root, "demo_group", "numbers")[0]
    assert upstream == [f"demo_group.numbers:{up_file.stem}"]

    latest = query(warehouse_root, "SELECT x, y, code_version FROM demo_group.doubled ORDER BY x")
    assert latest["y"].tolist() == [2, 4, 6]


def test_latest_and_history_views(resources_for, warehouse_root):
    first = dg.materialize([numbers], resources=resources_for)
    second = dg.materialize([numbers], resources=resources_for)
    assert first.success and second.success
    latest = query(warehouse_root, "SELECT DISTINCT run_id, count(*) OVER () AS n FROM demo_group.numbers")
    assert latest["run_id"].tolist() == [second.run_id] and latest["n"].iloc[0] == 3
    history = query(warehouse_root, "SELECT run_id, count(*) AS n FROM demo_group.numbers_history GROUP BY 1")
    assert sorted(history["run_id"]) == sorted([first.run_id, second.run_id])
    assert history["n"].tolist() == [3, 3]


def test_record_round_trip_and_model_uri_lineage(resources_for, warehouse_root):
    result = dg.materialize([model_record, uses_record], resources=resources_for)
    assert result.success
    assert result.output_for_node("uses_record")["lr"].iloc[0] == 0.1
    stored = read_table(materialization_files(warehouse_root, "demo_group", "uses_record")[0], with_lineage=True)
    assert "models:/m/1" in json.loads(stored["upstream"].iloc[0])
    row = query(warehouse_root, "SELECT model_uri, final_val_loss FROM demo_group.model_record")
    assert row.iloc[0].tolist() == ["models:/m/1", 1.5]


def test_corrupted_parquet_names_the_file(resources_for, warehouse_root):
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([numbers], resources=resources_for, instance=instance).success
    bad = materialization_files(warehouse_root, "demo_group", "numbers")[-1]
    bad.write_bytes(b"not a parquet file")
    with pytest.raises(WarehouseError, match=str(bad)):
        read_table(bad)
    result = dg.materialize([numbers, doubled], selection=[doubled], resources=resources_for,
                            instance=instance, raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert str(bad) in str(failure.step_failure_data.error)
    # the catalog rebuild skips the broken file with a warning naming it (tests/faults: older files are kept)
    report = refresh_catalog(warehouse_root)
    assert str(bad) in report.warnings and "demo_group.numbers" not in report.views


def test_unwritable_root_is_a_clear_error(tmp_path):
    from resources import default_resources

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = dg.materialize([numbers], resources=default_resources(str(blocker / "warehouse")), raise_on_error=False)
    assert not result.success
    text = str([e for e in result.all_events if e.is_failure][0].event_specific_data.error)
    assert "warehouse root" in text and "writable directory" in text


def test_reserved_lineage_column_is_rejected(resources_for):
    @dg.asset(group_name="demo_group")
    def clashing() -> pd.DataFrame:
        return pd.DataFrame({"run_id": ["mine"]})

    result = dg.materialize([clashing], resources=resources_for, raise_on_error=False)
    assert not result.success


def test_query_is_read_only(resources_for, warehouse_root):
    assert dg.materialize([numbers], resources=resources_for).success
    with pytest.raises(CatalogError, match="read-only"):
        query(warehouse_root, "CREATE TABLE t AS SELECT 1")
    with pytest.raises(CatalogError, match="read-only"):
        query(warehouse_root, "DROP VIEW demo_group.numbers")
    assert query(warehouse_root, "SELECT count(*) AS n FROM demo_group.numbers")["n"].iloc[0] == 3


def test_missing_catalog_error(tmp_path):
    with pytest.raises(CatalogError, match="reprolab catalog"):
        query(tmp_path, "SELECT 1")


def test_table_assets_carry_schema_and_table_name(resources_for, warehouse_root):
    result = dg.materialize([numbers], resources=resources_for)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["dagster/table_name"].value == "demo_group.numbers"
    columns = {c.name: c.type for c in meta["dagster/column_schema"].schema.columns}
    assert {"materialization_id", "run_id", "upstream"} <= set(columns) and len(columns) >= 6


def test_a_copied_warehouse_reads_its_own_files_not_the_original(tmp_path, warehouse_root):
    """The instance records absolute paths; a copy of the warehouse (or a move) must read the copy's file with
    the recorded materialization id, never the original's (another lab's, possibly changed since)."""
    import shutil

    from resources import default_resources

    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([numbers], resources=default_resources(str(warehouse_root)), instance=instance).success
    copy = tmp_path / "copy"
    shutil.copytree(warehouse_root, copy)
    original = materialization_files(warehouse_root, "demo_group", "numbers")[-1]
    pd.DataFrame({"x": [100, 200, 300]}).to_parquet(original)  # the original lab changes its file afterwards
    result = dg.materialize([numbers, doubled], selection=[doubled.key], instance=instance,
                            resources=default_resources(str(copy)))
    assert result.success
    assert result.output_for_node("doubled")["y"].tolist() == [2, 4, 6]  # the copy's numbers
    row = read_table(materialization_files(copy, "demo_group", "doubled")[-1], with_lineage=True).iloc[0]
    assert json.loads(row["upstream"]) == [f"demo_group.numbers:{original.stem}"]
    assert json.loads(row["upstream_resolution"]) == {f"demo_group.numbers:{original.stem}": "at launch"}
    # a warehouse that lacks the recorded file reads its own latest (the instance serves another warehouse)
    other = tmp_path / "other"
    assert dg.materialize([numbers], resources=default_resources(str(other))).success  # another instance
    result = dg.materialize([numbers, doubled], selection=[doubled.key], instance=instance,
                            resources=default_resources(str(other)))
    assert result.output_for_node("doubled")["y"].tolist() == [2, 4, 6]
    row = read_table(materialization_files(other, "demo_group", "doubled")[-1], with_lineage=True).iloc[0]
    assert list(json.loads(row["upstream_resolution"]).values()) == ["latest on disk"]
