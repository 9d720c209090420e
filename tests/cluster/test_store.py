"""The warehouse's object store (resources/store.py): the same immutable files, published and fetched through a
pyarrow filesystem; on a shared disk (file://) here and on the S3 server of the session; nothing changes when no
store is configured."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from tests.cluster.conftest import AWS_TEST_CREDENTIALS, BUCKET, environment

pytestmark = pytest.mark.cluster


def _write(root, asset="scores", rows=3, run="run-1"):
    from resources.tables import Lineage, write_table

    frame = pd.DataFrame({"x": range(rows)})
    return write_table(root, "study", asset, frame, Lineage(run_id=run, code_version="1",
                                                              materialized_at=datetime.now(UTC)))


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    """A store on a shared file system, and one on the session's S3-compatible server (an empty prefix each)."""
    from resources.store import TableStore

    if request.param == "file":
        yield TableStore.from_url(f"file://{tmp_path / 'shared'}")
        return
    server = request.getfixturevalue("object_store")
    with environment({**AWS_TEST_CREDENTIALS, "AWS_ENDPOINT_URL": server.endpoint}):
        yield TableStore.from_url(f"s3://{BUCKET}/store-test-{tmp_path.name}")


def test_publish_fetch_and_sync_keep_the_files_byte_for_byte(store, tmp_path):
    local = _write(tmp_path / "a")
    uri = store.publish(local)
    assert uri == f"{store.url}/study/scores/{local.name}"
    with pytest.raises(Exception, match="immutable"):
        store.publish(local)  # a table file is never overwritten
    assert store.listing() == [("study", "scores", local.name)]

    other = tmp_path / "b"  # another machine's empty mirror
    fetched = store.fetch(uri, other)
    assert fetched == other / "study" / "scores" / local.name
    assert fetched.read_bytes() == local.read_bytes()
    second = store.publish(_write(tmp_path / "a", rows=5, run="run-2"))
    assert [p.name for p in store.sync(other)] == [second.rsplit("/", 1)[1]]
    assert store.sync(other) == []  # nothing new: nothing fetched
    assert not [p for p in other.rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_listing_skips_temporary_files_and_other_stores(tmp_path):
    from resources.store import TableStore

    shared = tmp_path / "shared"
    store = TableStore.from_url(f"file://{shared}")
    store.publish(_write(tmp_path / "a"))
    (shared / "study" / "scores" / ".half-written.parquet.tmp").write_bytes(b"x")
    (shared / "_mlflow" / "x").mkdir(parents=True)
    (shared / "_mlflow" / "x" / "y.parquet").write_bytes(b"x")
    assert [(g, a) for g, a, _ in store.listing()] == [("study", "scores")]
    assert store.listing([("study", "missing")]) == []


def test_a_uri_outside_the_store_or_a_bad_url_is_refused_by_name(tmp_path):
    from resources.settings import ConfigurationError
    from resources.store import TableStore
    from resources.tables import WarehouseError

    store = TableStore.from_url(f"file://{tmp_path}")
    with pytest.raises(WarehouseError, match="not in this warehouse's store"):
        store.fetch("s3://elsewhere/study/scores/x.parquet", tmp_path / "m")
    for bad in ("warehouse", "s3://", "gs://bucket/x", "file://relative/path"):
        with pytest.raises(ConfigurationError, match="REPROLAB_WAREHOUSE_URL"):
            TableStore.from_url(bad)


def test_the_catalog_of_an_empty_mirror_is_built_from_the_store(tmp_path):
    from resources.catalog import query
    from resources.store import TableStore

    shared = tmp_path / "shared"
    store = TableStore.from_url(f"file://{shared}")
    store.publish(_write(tmp_path / "a", rows=2, run="run-1"))
    store.publish(_write(tmp_path / "a", rows=4, run="run-2"))
    with environment({"REPROLAB_WAREHOUSE_URL": store.url}):
        assert query(tmp_path / "mirror", "SELECT count(*) AS n FROM study.scores")["n"][0] == 4
        store.publish(_write(tmp_path / "a", rows=6, run="run-3"))  # another machine writes: the next read sees it
        history = query(tmp_path / "mirror", "SELECT run_id, count(*) AS n FROM study.scores_history GROUP BY 1 "
                                             "ORDER BY 1")
    assert history.values.tolist() == [["run-1", 2], ["run-2", 4], ["run-3", 6]]


def test_without_a_store_the_warehouse_is_the_local_folder_as_before(tmp_path, monkeypatch):
    """The default: no REPROLAB_WAREHOUSE_URL, no store; `path` metadata is the local file."""
    import dagster as dg

    from resources.warehouse import Warehouse

    monkeypatch.delenv("REPROLAB_WAREHOUSE_URL", raising=False)
    assert Warehouse(root=str(tmp_path)).store_url is None

    @dg.asset(group_name="study")
    def scores() -> pd.DataFrame:
        return pd.DataFrame({"x": [1, 2]})

    result = dg.materialize([scores], resources={"io_manager": Warehouse(root=str(tmp_path))})
    path = result.get_asset_materialization_events()[0].materialization.metadata["path"].value
    assert path.startswith(str(tmp_path)) and path.endswith(".parquet")
    assert not (tmp_path / "shared").exists()


def test_a_table_the_store_refuses_fails_the_step_and_leaves_nothing_behind(object_store, tmp_path):
    import dagster as dg

    from resources.warehouse import Warehouse

    @dg.asset(group_name="study")
    def scores() -> pd.DataFrame:
        return pd.DataFrame({"x": [1, 2]})

    with environment({**AWS_TEST_CREDENTIALS, "AWS_ENDPOINT_URL": object_store.endpoint}):
        warehouse = Warehouse(root=str(tmp_path / "mirror"), store_url="s3://no-such-bucket/warehouse")
        result = dg.materialize([scores], resources={"io_manager": warehouse}, raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "cannot publish" in failure and "to s3://no-such-bucket/warehouse/study/scores/" in failure
    assert not list((tmp_path / "mirror").rglob("*.parquet"))


def test_an_input_recorded_in_another_store_is_read_from_this_one_by_its_id(tmp_path, monkeypatch):
    """The lab moved its store (another bucket or prefix) and kept its Dagster instance: an upstream recorded as a
    file of the old store is this store's file with the same materialization id, not an error nor the latest."""
    import shutil

    import dagster as dg
    import pyarrow.parquet as pq

    from resources.store import TableStore
    from resources.tables import latest_file
    from resources.warehouse import Warehouse

    monkeypatch.delenv("REPROLAB_WAREHOUSE_URL", raising=False)

    @dg.asset(group_name="study")
    def scores() -> pd.DataFrame:
        return pd.DataFrame({"x": [1, 2]})

    @dg.asset(group_name="study")
    def total(scores: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"total": [int(scores["x"].sum())]})

    instance = dg.DagsterInstance.ephemeral()
    old = Warehouse(root=str(tmp_path / "mirror-old"), store_url=f"file://{tmp_path / 'old'}")
    first = dg.materialize([scores], resources={"io_manager": old}, instance=instance)
    recorded = first.get_asset_materialization_events()[0].materialization.metadata
    assert recorded["path"].value.startswith(f"file://{tmp_path / 'old'}/")
    shutil.copytree(tmp_path / "old", tmp_path / "new")
    new_store = TableStore.from_url(f"file://{tmp_path / 'new'}")
    newer = _write(tmp_path / "elsewhere", rows=5, run="run-2")  # a later file in the new store only: not the one
    new_store.publish(newer)
    new = Warehouse(root=str(tmp_path / "mirror-new"), store_url=new_store.url)
    second = dg.materialize([scores, total], selection=[total.key], resources={"io_manager": new}, instance=instance)
    assert second.asset_value("total")["total"].iloc[0] == 3
    written = pq.read_table(latest_file(tmp_path / "mirror-new", "study", "total")).to_pandas()
    assert json.loads(written["upstream"].iloc[0]) == [f"study.scores:{recorded['materialization_id'].value}"]
