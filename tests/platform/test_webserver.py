"""End to end through the webserver: `dagster dev` on a temporary instance, a run launched through the
GraphQL API the UI uses, queued and started by the daemon, then the result read with `reprolab query`."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
STATUS = 'query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict) -> dict:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


@pytest.fixture
def dagster_dev(tmp_path):
    home, warehouse, port = tmp_path / "dagster_home", tmp_path / "warehouse", _free_port()
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "REPROLAB_WAREHOUSE": str(warehouse), "REPROLAB_PROFILE": "tiny"}
    proc = subprocess.Popen([str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-m", "pipelines.definitions"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            time.sleep(1)
    else:
        pytest.fail("dagster dev did not answer within 180 s")
    yield port, warehouse
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


def test_launch_through_graphql_and_query(dagster_dev):
    port, warehouse = dagster_dev
    params = {
        "selector": {"repositoryLocationName": "pipelines.definitions", "repositoryName": "__repository__",
                     "jobName": "main", "assetSelection": [{"path": ["code_corpus"]}]},
        "runConfigData": {},
    }
    launched = _graphql(port, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline, status = time.time() + 240, None
    while time.time() < deadline:
        status = _graphql(port, STATUS, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"

    out = subprocess.run([str(BIN / "reprolab"), "--warehouse", str(warehouse), "query",
                          "SELECT count(*) AS files, any_value(run_id) AS run FROM corpora.code_corpus", "--format", "json"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)[0]
    assert row["files"] > 0 and row["run"] == run_id

    # what the UI shows, through the same GraphQL API: kinds, owners, study tags, launchpad descriptions,
    # and the column schema and table name of the materialization
    nodes = _graphql(port, NODES, {})["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    corpus, model = by_key["code_corpus"], by_key["lm_facts_small"]
    assert {"parquet", "duckdb"} <= set(corpus["kinds"]) and {"pytorch", "mlflow"} <= set(model["kinds"])
    assert all(n["owners"] == [{"team": "reprolab"}] for n in nodes if n["isMaterializable"])
    assert {"key": "reprolab/study", "value": "corpora"} in corpus["tags"]
    assert "+src." in model["opVersion"]  # the code version follows the source
    fields = model["configField"]["configType"]["fields"]
    assert fields and all(f["description"] for f in fields), [f["name"] for f in fields if not f["description"]]
    entries = _graphql(port, SCHEMA, {"key": {"path": ["code_corpus"]}})["assetOrError"]["assetMaterializations"][0]
    labels = {e["label"]: e for e in entries["metadataEntries"]}
    assert labels["dagster/table_name"]["text"] == "corpora.code_corpus"
    columns = {c["name"]: c for c in labels["dagster/column_schema"]["schema"]["columns"]}
    assert "text" in columns and columns["materialization_id"]["description"]


NODES = """
query Nodes { assetNodes {
  assetKey { path } isMaterializable kinds opVersion tags { key value }
  owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
  configField { configType { ... on CompositeConfigType { fields { name description } } } }
} }"""
SCHEMA = """
query Schema($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
  assetMaterializations(limit: 1) { metadataEntries { label
    ... on TextMetadataEntry { text }
    ... on TableSchemaMetadataEntry { schema { columns { name type description } } } } } } } }"""
