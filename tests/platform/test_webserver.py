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
