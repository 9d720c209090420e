"""`reprolab mlflow-ui`: serves the warehouse's store where the configured UI address says, with few processes."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_ui_serves_on_the_configured_address_with_one_worker(tmp_path):
    port = _free_port()
    env = {**os.environ, "REPROLAB_MLFLOW_UI_URL": f"http://127.0.0.1:{port}"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "reprolab"), "--warehouse", str(tmp_path / "wh"),
                             "mlflow-ui"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline, up = time.time() + 150, False
        while time.time() < deadline and not up:
            try:
                up = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200
            except OSError:
                time.sleep(1)
        assert up, "the MLflow UI did not answer on the configured port"
        group = subprocess.run(["pgrep", "-g", str(os.getpgid(proc.pid))], capture_output=True, text=True)
        assert len(group.stdout.split()) <= 3, group.stdout  # mlflow + one uvicorn worker (was ~12 processes)
    finally:
        os.killpg(os.getpgid(proc.pid), signal.SIGTERM)
        proc.wait(timeout=30)
