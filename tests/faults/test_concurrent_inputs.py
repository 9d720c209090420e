"""Concurrent runs never read each other's inputs (issue 15, 3): an input resolves to the materialization made by
its own run, else to the latest one when the run was created, and lineage says which."""

import json
import time

import dagster as dg
import pandas as pd

from resources import default_resources
from resources.tables import read_table
from resources.warehouse import resolve_upstream_event


def _corpus(tag: str) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"{tag} one", f"{tag} two"]})


@dg.asset(group_name="race", config_schema={"tag": str})
def user_texts(context) -> pd.DataFrame:
    return _corpus(context.op_config["tag"])


@dg.asset(group_name="race", ins={"texts": dg.AssetIn("user_texts")})
def rival_run(context, texts: pd.DataFrame) -> pd.DataFrame:
    """Between this run's steps, another run writes its own user_texts (as two runs launched together do)."""
    other = dg.materialize([user_texts], instance=context.instance, resources=_RESOURCES,
                           run_config={"ops": {"user_texts": {"config": {"tag": "theirs"}}}})
    assert other.success
    return pd.DataFrame({"rival_run": [other.run_id]})


@dg.asset(group_name="race")
def tokenizer_vocab(user_texts: pd.DataFrame, rival_run: pd.DataFrame) -> pd.DataFrame:
    words = sorted({w for t in user_texts["text"] for w in t.split()})
    return pd.DataFrame({"word": words})


_RESOURCES: dict = {}


def test_a_run_reads_its_own_upstream_not_a_concurrent_runs(warehouse_root):
    _RESOURCES.update(default_resources(str(warehouse_root)))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([user_texts, rival_run, tokenizer_vocab], instance=instance, resources=_RESOURCES,
                            run_config={"ops": {"user_texts": {"config": {"tag": "ours"}}}})
    assert result.success
    # the rival's corpus is the newest materialization, yet this run's tokenizer saw its own corpus
    latest = instance.get_latest_materialization_event(dg.AssetKey("user_texts"))
    assert latest.run_id != result.run_id
    assert set(result.asset_value("tokenizer_vocab")["word"]) == {"ours", "one", "two"}
    stored = read_table(result.get_asset_materialization_events()[-1].materialization.metadata["path"].value,
                        with_lineage=True)
    resolution = json.loads(stored["upstream_resolution"].iloc[0])
    assert sorted(resolution.values()) == ["this run", "this run"]


def test_a_run_not_producing_its_input_reads_the_latest_at_launch(warehouse_root):
    resources = default_resources(str(warehouse_root))
    instance = dg.DagsterInstance.ephemeral()
    cfg = {"ops": {"user_texts": {"config": {"tag": "first"}}}}
    first = dg.materialize([user_texts], instance=instance, resources=resources, run_config=cfg)
    job = dg.Definitions(assets=[user_texts]).resolve_implicit_global_asset_job_def()
    launched = instance.create_run_for_job(job, run_config=cfg)  # launched now, its steps not yet run
    time.sleep(0.01)
    later = dg.materialize([user_texts], instance=instance, resources=resources,
                           run_config={"ops": {"user_texts": {"config": {"tag": "later"}}}})
    event, how = resolve_upstream_event(instance, dg.AssetKey("user_texts"), launched.run_id)
    assert how == "at launch" and event.run_id == first.run_id != later.run_id
    event, how = resolve_upstream_event(instance, dg.AssetKey("user_texts"), later.run_id)
    assert how == "this run" and event.run_id == later.run_id
