"""The GPU session's shell scripts parse (they run only on a GPU machine, never in CI)."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", ["gpu_session.sh", "gpu_dagster.sh", "device_wheels.sh"])
def test_script_parses(script):
    out = subprocess.run(["bash", "-n", str(REPO / "benchmarks" / script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
