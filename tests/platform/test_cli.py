"""The `reprolab` command against a real warehouse."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from pipelines.cli import main
from resources.catalog import CatalogError

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
    op_typo = tmp_path / "op.yaml"
    op_typo.write_text("ops:\n  chat_budget_acuracy:\n    config: {}\n")
    with pytest.raises(ValueError) as refused:
        demo_run_config(job, [str(op_typo)])
    assert "did you mean 'chat_budget_accuracy'" in str(refused.value)
    assert len(str(refused.value)) < 400, "the expected schema of every op is not dumped"
    device = tmp_path / "device.yaml"
    device.write_text("resources:\n  compute:\n    config:\n      device: gpu\n")
    with pytest.raises(ValueError, match=r"device\.yaml: resource `compute`: device='gpu'.*cuda:N"):
        demo_run_config(job, [str(device)])
    device.write_text("resources:\n  compute:\n    config:\n      device: 'cuda:1'\n")
    import torch

    if torch.cuda.device_count() > 1:
        assert demo_run_config(job, [str(device)])["resources"]["compute"]["config"]["device"] == "cuda:1"
    else:  # refused before the run, not by every step's resource once 136 runs were planned
        with pytest.raises(ValueError, match=r"device='cuda:1'.*(CUDA is not available here|out of range|cuda)"):
            demo_run_config(job, [str(device)])
    device.write_text("resources:\n  compute:\n    config:\n      device: {env: REPROLAB_TEST_DEVICE}\n")
    os.environ["REPROLAB_TEST_DEVICE"] = "cpu"  # an environment variable, as Dagster allows
    try:
        assert demo_run_config(job, [str(device)])["resources"]["compute"]["config"]["device"] == \
            {"env": "REPROLAB_TEST_DEVICE"}
    finally:
        del os.environ["REPROLAB_TEST_DEVICE"]


def test_demo_refuses_a_bad_config_before_announcing_a_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    typo = tmp_path / "typo.yaml"
    typo.write_text("resources:\n  compute:\n    config:\n      bf17: 'on'\n")
    assert main(["--warehouse", str(tmp_path / "wh"), "demo", "--config", str(typo)]) == 2
    out = capsys.readouterr()
    assert "bf17" in out.err and "running job" not in out.out and "run " not in out.out
    assert not (tmp_path / "wh").exists() and not (tmp_path / "home").exists()  # nothing started, nothing made


def test_a_misspelt_profile_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "--warehouse", str(tmp_path / "wh"), "demo"],
                         capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "REPROLAB_PROFILE": "tinyy", "DAGSTER_HOME": str(tmp_path / "home")})
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and "'tinyy'" in out.stderr and "tiny, demo, gpu" in out.stderr


@pytest.mark.parametrize("variable, value", [("REPROLAB_NIGHTLY_CRON", "every night"),
                                             ("REPROLAB_TRAINING_CRON", "* *"),
                                             ("REPROLAB_TIMEZONE", "Mars/Olympus")])
def test_a_bad_schedule_setting_is_one_line_naming_the_variable(tmp_path, variable, value):
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "--warehouse", str(tmp_path / "wh"), "demo"],
                         capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, variable: value, "DAGSTER_HOME": str(tmp_path / "home")})
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and f"{variable}={value!r}" in out.stderr, out.stderr
    assert not (tmp_path / "wh").exists()


def _findings_warehouse(root: Path) -> None:
    """A warehouse whose findings view holds 3 findings with a rule (one long, one without a reference) and 4
    descriptive rows."""
    from resources.catalog import refresh_catalog
    from resources.tables import Lineage, write_table

    rows = [{"study": "cli", "metric": f"m{i}", "ours": 0.5, "reference": 0.5 if i < 2 else None,
             "source": "paper" if i < 2 else "none", "rule": "x" * 400 if i == 0 else "ours >= 0.4",
             "comparison": "at_least", "verdict": "reproduced", "post_hoc": ""} for i in range(3)]
    rows += [{"study": "cli", "metric": f"d{i}", "ours": 0.1, "reference": None, "source": "none",
              "rule": "descriptive (no rule)", "comparison": None, "verdict": "not comparable",
              "post_hoc": "chosen after seeing results" if i == 0 else ""} for i in range(4)]
    write_table(root, "cli", "findings", pd.DataFrame(rows), Lineage(run_id="r", code_version="1"))
    refresh_catalog(root)


def test_summary_prints_the_headline_findings_readably(warehouse_root, capsys):
    _findings_warehouse(warehouse_root)
    assert main(["--warehouse", str(warehouse_root), "summary"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("findings (ours"):]
    # every finding with a rule, with a reference or not (m2: a rule and no reference); descriptive rows left out
    assert all(f" m{i} " in table for i in range(3)) and " d0 " not in table
    assert "xxxx" not in table and "rule" not in table.splitlines()[1].split()  # the headline columns only
    assert max(len(line) for line in out.splitlines()) <= 160
    assert "3 findings with a rule of 7 rows; 4 descriptive rows" in out and "SELECT * FROM findings" in out
    assert "1 rows use a setting chosen after seeing results" in out
    assert main(["--warehouse", str(warehouse_root), "query", "SELECT count(*) AS n FROM findings",
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", "7"]  # query still shows everything


def test_query_refuses_several_statements_and_report_creates_nothing_when_refusing(warehouse_root, tmp_path, capsys):
    _findings_warehouse(warehouse_root)
    root = ["--warehouse", str(warehouse_root)]
    assert main([*root, "query", "SELECT 1; SELECT 2"]) == 2
    assert "one SQL statement, got 2" in capsys.readouterr().err
    assert main([*root, "query", "SELECT 1 AS one;", "--format", "csv"]) == 0  # one statement and its semicolon
    assert capsys.readouterr().out.splitlines() == ["one", "1"]
    missing = tmp_path / "no-warehouse"
    assert main(["--warehouse", str(missing), "report"]) == 2
    assert "no catalog" in capsys.readouterr().err and not missing.exists()
    from pipelines.report import write_report

    with pytest.raises(CatalogError, match="no catalog"):
        write_report(missing)  # the function the CLI does not use any more refuses the same way
    assert not missing.exists()


class _ClosedPipe:
    """stdout after the reader (`| head -1`) left."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_ends_quietly(warehouse_root, monkeypatch, capsys):
    _findings_warehouse(warehouse_root)
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    for command in (["query", "SELECT * FROM findings"], ["tables"], ["summary"]):
        assert main(["--warehouse", str(warehouse_root), *command]) == 141, command  # SIGPIPE's status, no traceback
    # the real thing: the command piped into a reader that stops after one line
    process = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "--warehouse", str(warehouse_root), "query", "SELECT * FROM range(200000)"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    process.stdout.readline()
    process.stdout.close()
    assert process.wait(60) == 141 and process.stderr.read() == ""


def test_the_table_format_prints_sql_null_as_null(warehouse_root, capsys):
    _findings_warehouse(warehouse_root)
    assert main(["--warehouse", str(warehouse_root), "query", "SELECT * FROM (VALUES ('a', 1.5, 2), (NULL, NULL, NULL))"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].split() == ["NULL", "NULL", "NULL"] and lines[-2].split() == ["a", "1.5", "2"]  # was: nan nan <NA>
    assert main(["--warehouse", str(warehouse_root), "query", "SELECT NULL AS x", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"x": None}]  # csv and json were right, and stay so


PARITY_METRICS = ["runs with rising relevant_change_ratio in the plateau (mlp, k=3)",
                  "runs with rising relevant_change_ratio in the plateau (polynet, k=3)"]


def test_summary_keeps_cut_metric_names_apart_and_prints_no_nan(warehouse_root, capsys):
    from resources.catalog import refresh_catalog
    from resources.tables import Lineage, write_table

    rows = [{"study": "parity", "metric": metric, "ours": 0.5, "reference": None, "source": "none",
             "rule": "ours >= 0.4", "comparison": "at_least", "verdict": "reproduced", "post_hoc": ""}
            for metric in PARITY_METRICS]
    write_table(warehouse_root, "parity", "findings", pd.DataFrame(rows), Lineage(run_id="r", code_version="1"))
    refresh_catalog(warehouse_root)
    assert main(["--warehouse", str(warehouse_root), "summary"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("findings (ours"):].splitlines()
    shown = [line.split("  ")[1].strip() for line in table if line.startswith("parity")]
    assert len(set(shown)) == 2, shown  # was: both "runs with rising relevant_change_ratio …"
    assert shown[0].endswith("(mlp, k=3)") and shown[1].endswith("(polynet, k=3)") and "…" in shown[0]
    assert " nan" not in out and "NULL" not in out  # a finding without a reference: blank (was: nan)


def test_names_a_middle_cut_would_merge_are_shown_whole():
    from pipelines.summary import shortened

    names = pd.Series(["a" * 20 + "x" + "b" * 20, "a" * 20 + "y" + "b" * 20, "short", None, "c" * 50])
    shown = shortened(names, 11).tolist()
    assert shown[:2] == names[:2].tolist()  # the same head and tail: cut, they would read the same
    assert shown[2] == "short" and pd.isna(shown[3]) and shown[4] == "ccccc…ccccc"


@pytest.mark.parametrize("command", [["serve", "models:/chat-sft@current", "--port", "70000"],
                                     ["mlflow-ui", "--port", "99999"], ["mlflow-ui", "--port", "0"],
                                     ["serve", "m", "--port", "http"]])
def test_a_port_outside_1_to_65535_is_refused_at_parsing(command, capsys):
    with pytest.raises(SystemExit) as refused:  # was: serve printed http://127.0.0.1:70000/v1 and went on
        main(command)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and err.count("\n") == 1 and "is not a TCP port" in err, err
    from pipelines.cli import build_parser

    assert build_parser().parse_args(["serve", "m", "--port", "65535"]).port == 65535


def test_summary_without_a_catalog_is_an_error_as_elsewhere(tmp_path, capsys):
    for command in ("summary", "tables", "report"):  # was: summary exit 1, the message on stdout without error:
        assert main(["--warehouse", str(tmp_path / "none"), command]) == 2, command
        out = capsys.readouterr()
        assert out.out == "" and out.err.startswith("error: no catalog") and out.err.count("\n") == 1, command


@pytest.mark.parametrize("command", [["init"], ["recover"], ["evaluate", "--base-url", "http://127.0.0.1:9/v1"],
                                     ["serve", "models:/chat-sft@current"]])
def test_a_misspelt_profile_is_refused_by_every_command_that_runs_things(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REPROLAB_PROFILE", "dmeo")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert main(["--warehouse", str(tmp_path / "wh"), *command]) == 2  # was: init and recover rc 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "REPROLAB_PROFILE='dmeo' is not a profile" in err, err
    assert not (tmp_path / "home").exists() and not (tmp_path / "wh").exists()  # refused before anything


def test_the_read_only_commands_ignore_the_profile_as_the_help_says(warehouse_root, capsys, monkeypatch):
    from pipelines.cli import PROFILE_FREE_COMMANDS, build_parser

    _findings_warehouse(warehouse_root)
    monkeypatch.setenv("REPROLAB_PROFILE", "dmeo")
    for command in (["query", "SELECT 1 AS one"], ["tables"], ["summary"], ["report"]):
        assert main(["--warehouse", str(warehouse_root), *command]) == 0, command
    capsys.readouterr()
    help_text = " ".join(build_parser().format_help().split())
    assert f"({', '.join(PROFILE_FREE_COMMANDS)}) never read the profile" in help_text
    assert "(demo, init, recover, evaluate, serve)" in help_text


def test_demo_refuses_a_config_naming_a_path_that_is_not_there(tmp_path, capsys, monkeypatch):
    from pipelines.definitions import defs
    from pipelines.run_config import demo_run_config

    job = defs.resolve_job_def("main")
    config = tmp_path / "paths.yaml"
    config.write_text("ops:\n  lm_facts_small:\n    config:\n      checkpoint_dir: /nonexistent/model\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    # was: the run started and failed mid-graph (FileNotFoundError ... has no config.json)
    assert main(["--warehouse", str(tmp_path / "wh"), "demo", "--config", str(config)]) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and "running job" not in out.out, out
    assert "op `lm_facts_small` field `checkpoint_dir`: '/nonexistent/model' does not exist" in out.err
    assert not (tmp_path / "wh").exists() and not (tmp_path / "home").exists()

    empty = tmp_path / "empty_checkpoint"
    empty.mkdir()
    corpus = tmp_path / "corpus.txt"
    config.write_text(f"ops:\n  uncertainty_tokens:\n    config:\n      facts_small_checkpoint: {empty}\n"
                      f"  scaling_tokens:\n    config:\n      corpus_path: {tmp_path / 'no_corpus.txt'}\n"
                      f"  safety_results:\n    config:\n      benchmark_files: [{corpus}, {tmp_path / 'no.csv'}]\n")
    corpus.write_text("a document\n")
    with pytest.raises(ValueError) as refused:
        demo_run_config(job, [str(config)])
    message = str(refused.value)
    assert f"op `uncertainty_tokens` field `facts_small_checkpoint`: '{empty}' is not a checkpoint directory " \
           "(no config.json)" in message
    assert "op `scaling_tokens` field `corpus_path`" in message and f"'{tmp_path / 'no.csv'}' does not exist" in message
    assert str(corpus) + "'" not in message  # a path that is there is not named
    (empty / "config.json").write_text("{}")
    config.write_text(f"ops:\n  uncertainty_tokens:\n    config:\n      facts_small_checkpoint: {empty}\n")
    assert demo_run_config(job, [str(config)])["ops"]["uncertainty_tokens"]["config"]["facts_small_checkpoint"] == \
        str(empty)
    # a registry URI is not a path (uncertainty's loader takes models:/...): not refused
    config.write_text("ops:\n  uncertainty_tokens:\n    config:\n      facts_small_checkpoint: models:/lm-facts-small/1\n")
    assert demo_run_config(job, [str(config)])


def test_every_op_config_field_naming_a_path_is_checked():
    """A field a study adds later that names a user path (a checkpoint, a file, a folder, a tokenizer) must be
    one run_config checks: its name matches CHECKPOINT_FIELDS or PATH_FIELDS, or it is listed here as no path."""
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.run_config import CHECKPOINT_FIELDS, PATH_FIELDS, _op_configs

    not_paths = {"max_files"}  # a count
    processed = dg.validate_run_config(defs.resolve_job_def("main"), {})
    fields = {field for _, config in _op_configs(processed["ops"]) for field in config}
    hinted = {f for f in fields if re.search(r"path|checkpoint|file|dir|folder|tokenizer", f)} - not_paths
    unchecked = {f for f in hinted if not (CHECKPOINT_FIELDS.match(f) or PATH_FIELDS.match(f))}
    assert hinted and not unchecked, unchecked
