"""The `reprolab` command against a real warehouse."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd

from pipelines.cli import main

REPO = Path(__file__).resolve().parents[2]


@dg.asset(group_name="cli_group")
def scores() -> pd.DataFrame:
    return pd.DataFrame({"name": ["a", "b"], "score": [0.25, 0.75]})


def test_query_formats_catalog_and_errors(resources_for, warehouse_root, capsys):
    assert dg.materialize([scores], resources=resources_for).success
    root = ["--warehouse", str(warehouse_root)]

    assert main([*root, "query", "SELECT name, score FROM cli_group.scores ORDER BY name", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"name": "a", "score": 0.25}, {"name": "b", "score": 0.75}]
    assert main([*root, "query", "SELECT sum(score) AS s FROM cli_group.scores", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["s", "1.0"]

    assert main([*root, "query", "DELETE FROM cli_group.scores"]) == 2
    assert "read-only" in capsys.readouterr().err

    (warehouse_root / "catalog.duckdb").unlink()
    assert main([*root, "catalog"]) == 0
    assert "2 views" in capsys.readouterr().out
    assert main([*root, "summary"]) == 0
    assert "cli_group.scores" in capsys.readouterr().out


def test_console_script_is_installed(warehouse_root):
    exe = Path(sys.executable).parent / "reprolab"
    out = subprocess.run([str(exe), "--warehouse", str(warehouse_root), "query", "SELECT 1"],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ})
    assert out.returncode == 2 and "reprolab catalog" in out.stderr


def test_demo_run_config_merges_files_over_the_log_level_and_names_a_bad_one(tmp_path):
    import pytest

    from pipelines.cli import demo_run_config
    from pipelines.definitions import defs

    job = defs.resolve_job_def("main")
    shipped = REPO / "deploy" / "run-config" / "cuda-switches-on-cpu.yaml"
    seed = tmp_path / "seed.yaml"
    seed.write_text("resources:\n  compute:\n    config:\n      seed: 7\n      compile: 'off'\n")
    config = demo_run_config(job, [str(shipped), str(seed)])
    assert config["resources"]["compute"]["config"] == {"bf16": "on", "compile": "off", "seed": 7}  # later wins
    assert config["loggers"]["console"]["config"]["log_level"] == "INFO"
    assert "loggers" not in demo_run_config(job, None, verbose=True)

    typo = tmp_path / "typo.yaml"
    typo.write_text("resources:\n  compute:\n    config:\n      bf17: 'on'\n")
    with pytest.raises(ValueError, match=r"(?s)typo\.yaml.*bf17"):
        demo_run_config(job, [str(typo)])
    listed = tmp_path / "list.yaml"
    listed.write_text("- bf16\n")
    with pytest.raises(ValueError, match="expected a YAML mapping"):
        demo_run_config(job, [str(listed)])
    broken = tmp_path / "broken.yaml"
    broken.write_text("resources: [\n")
    with pytest.raises(ValueError, match=r"broken\.yaml: not valid YAML"):
        demo_run_config(job, [str(broken)])
    assert main(["demo", "--config", str(typo)]) == 2  # refused before any run starts
