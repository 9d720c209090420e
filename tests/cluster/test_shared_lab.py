"""The shared lab for real: a Dagster instance on PostgreSQL (deploy/dagster_home/dagster.yaml as shipped), the
warehouse on an S3-compatible store, MLflow on PostgreSQL with artifacts in the store. A tiny slice of the graph
(the facts corpus, its tokenizer and the small language model) runs on "machine A"; "machine B", with an empty
disk, trains from A's tables; "machine C" reads everything back with `reprolab query`, lineage included."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest

from pipelines.definitions import defs  # imported before any shared-lab variable is set, as a process would
from resources.warehouse import Warehouse
from tests.cluster.conftest import BUCKET

pytestmark = pytest.mark.cluster

MODEL = ("lm_facts_small", "lm_facts_small_curve")


def _resources(root, store_url: str) -> dict:
    from resources import default_resources

    return default_resources(str(root)) | {"io_manager": Warehouse(root=str(root), store_url=store_url)}


def _paths(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {e.asset_key.to_user_string(): e.materialization.metadata["path"].value
            for e in result.get_asset_materialization_events()}


def _lineage(root, path: str) -> tuple[list[str], dict[str, str]]:
    from resources.store import active_store
    from resources.tables import read_table

    row = read_table(active_store().fetch(path, root), with_lineage=True)
    row = row if isinstance(row, dict) else row.iloc[0]
    return json.loads(row["upstream"]), json.loads(row["upstream_resolution"])


@pytest.fixture(scope="module")
def lab(shared_lab, tmp_path_factory):
    """Machine A materializes the small facts model and everything upstream of it on the shared instance; machine B
    (another empty local mirror) then retrains the model alone, reading A's tables from the store."""
    from pipelines.cli import main

    url = shared_lab["REPROLAB_WAREHOUSE_URL"]
    mirror_a, mirror_b = tmp_path_factory.mktemp("machine-a"), tmp_path_factory.mktemp("machine-b")
    assert main(["--warehouse", str(mirror_a), "init"]) == 0  # `make ui` / `reprolab demo` create the stores so
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME: the cluster dagster.yaml
    everything = list(defs.assets) + list(defs.asset_checks)
    first = dg.materialize(everything, selection=dg.AssetSelection.assets(*MODEL).upstream(), instance=instance,
                           resources=_resources(mirror_a, url))
    second = dg.materialize(everything, selection=dg.AssetSelection.assets(*MODEL), instance=instance,
                            resources=_resources(mirror_b, url))
    try:
        yield {"instance": instance, "first": first, "second": second, "a": mirror_a, "b": mirror_b, "url": url}
    finally:
        instance.dispose()


def test_runs_are_recorded_in_postgres(lab, postgres):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    instance = lab["instance"]
    assert lab["first"].success and lab["second"].success
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert {"runs", "event_logs", "jobs"} <= {r[0] for r in postgres.sql(
        "dagster", "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    stored = {row[0] for row in postgres.sql("dagster", "SELECT run_id FROM runs")}
    assert {lab["first"].run_id, lab["second"].run_id} <= stored
    # the latest materialization of the model, as any machine asking the instance sees it: run B's
    latest = instance.get_latest_materialization_event(dg.AssetKey("lm_facts_small"))
    assert latest.run_id == lab["second"].run_id


def test_tables_live_in_the_object_store_whole_and_immutable(lab, object_store):
    written = [*_paths(lab["first"]).items(), *_paths(lab["second"]).items()]
    assert {"facts_documents", "facts_tokenizer", *MODEL} <= {asset for asset, _ in written}
    assert all(path.startswith(lab["url"] + "/") for _, path in written)
    keys = object_store.keys("warehouse/")
    assert {path.removeprefix(f"s3://{BUCKET}/") for _, path in written} <= set(keys)
    assert not [k for k in keys if k.rsplit("/", 1)[-1].startswith(".")]  # no temporary objects left
    logs = object_store.keys("dagster-logs/")  # step stdout/stderr, through the instance's S3 compute log manager
    assert {lab[run].run_id for run in ("first", "second")} <= {k.split("/")[2] for k in logs}
    model_files = [k for k in keys if k.startswith("warehouse/lm/lm_facts_small/")]
    assert len(model_files) == 2  # one per run: nothing overwritten


def test_machine_b_read_machine_a_tables_from_the_store(lab):
    """B's disk was empty: the inputs it trained on are A's materializations, fetched into B's mirror."""
    first_ids = {e.asset_key.to_user_string(): f"{e.materialization.metadata['table'].value}:"
                 f"{e.materialization.metadata['materialization_id'].value}"
                 for e in lab["first"].get_asset_materialization_events()}
    upstream, resolution = _lineage(lab["b"], _paths(lab["second"])["lm_facts_small"])
    assert {first_ids["facts_documents"], first_ids["facts_tokenizer"]} <= set(upstream)
    assert {resolution[first_ids[k]] for k in ("facts_documents", "facts_tokenizer")} == {"at launch"}
    fetched = lab["b"] / "corpora" / "facts_documents" / (first_ids["facts_documents"].split(":")[1] + ".parquet")
    assert fetched.exists()


def test_reprolab_query_on_a_third_machine_reads_back_with_lineage(lab, tmp_path, capsys):
    """An empty mirror, the store's variables set: `reprolab query` builds its catalog from the store's listing."""
    from pipelines.cli import main

    mirror_c = tmp_path / "machine-c"
    sql = ("WITH RECURSIVE up(t, m) AS (SELECT table_name, materialization_id FROM lineage "
           "WHERE table_name = 'lm.lm_facts_small' "
           "UNION SELECT l.upstream_table, l.upstream_materialization_id FROM lineage l JOIN up "
           "ON l.table_name = up.t AND l.materialization_id = up.m WHERE l.upstream_table IS NOT NULL) "
           "SELECT DISTINCT t FROM up ORDER BY t")
    assert main(["--warehouse", str(mirror_c), "query", "--format", "json", sql]) == 0
    reached = {row["t"] for row in json.loads(capsys.readouterr().out)}
    assert {"lm.lm_facts_small", "corpora.facts_documents", "corpora.facts_tokenizer"} <= reached

    assert main(["--warehouse", str(mirror_c), "query", "--format", "json",
                 "SELECT materialization_id, run_id FROM lm.lm_facts_small_history ORDER BY 1"]) == 0
    history = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert list(history["run_id"]) == [lab["first"].run_id, lab["second"].run_id]


def test_model_registry_round_trip_on_postgres_and_the_store(lab, postgres, tmp_path):
    """Both runs registered a version in the Postgres registry; the artifacts are in the store; the model loads
    back by its exact URI on a machine that never saw it, and `current` points at the newest."""
    from assets.lm.registry import load_model
    from resources.tracking import Tracking

    records = [lab[run].asset_value("lm_facts_small") for run in ("first", "second")]
    assert [r["model_uri"] for r in records] == ["models:/lm-facts-small/1", "models:/lm-facts-small/2"]
    tracking = Tracking(warehouse_root=str(tmp_path))
    assert tracking.resolved_tracking_uri.startswith("postgresql+psycopg2://")
    version = tracking.client.get_model_version_by_alias("lm-facts-small", "current")
    assert str(version.version) == "2" and version.source.startswith(f"s3://{BUCKET}/mlflow/")
    assert postgres.sql("mlflow", "SELECT count(*) FROM model_versions WHERE name = 'lm-facts-small'")[0][0] == 2

    model, tokenizer = load_model(records[0]["model_uri"], tracking.resolved_tracking_uri)
    assert sum(p.numel() for p in model.parameters()) == records[0]["parameters"]
    assert tokenizer is not None and len(tokenizer) == records[0]["vocab_size"]
