"""Every command the README shows runs: the `reprolab` lines against a tiny warehouse, the SQL as written, and
each `make` target exists (the long-running ones — demo, test, ui, mlflow-ui, serve — are exercised elsewhere)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from resources.catalog import list_views, query

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
LONG_RUNNING = {"demo", "serve", "mlflow-ui"}


def _commands(kind: str) -> list[str]:
    lines = [line.split("  #")[0].strip() for lang, body in BLOCKS if lang == "bash" for line in body.splitlines()]
    return [line for line in lines if line.startswith(kind)]


def test_the_readme_has_what_this_test_reads():
    assert len(_commands(".venv/bin/reprolab")) >= 5 and len(_commands("make")) >= 4
    assert any(lang == "sql" for lang, _ in BLOCKS)


def test_make_targets_exist():
    for line in _commands("make"):
        target = line.split()[1]
        out = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 0, f"{line}: {out.stderr[-500:]}"


@pytest.fixture
def warehouse_with_findings(backbone):
    views = list_views(backbone.root)
    if not ((views["schema"] == "naf") & (views["view"] == "findings")).any():
        backbone.materialize("naf")  # the README's lineage example starts from NAF's findings
    for group, view in (("safety", "safety_system_card"), ("robustness", "robustness_attack_success"),
                        ("alignment", "alignment_methods")):
        if not ((views["schema"] == group) & (views["view"] == view)).any():
            backbone.chat_models()  # the README's system-card and attack-success queries
            backbone.materialize(group)
    return backbone.root


def test_reprolab_commands_run(warehouse_with_findings, tmp_path):
    exe = str(Path(sys.executable).parent / "reprolab")
    ran = 0
    for line in _commands(".venv/bin/reprolab"):
        args = shlex.split(line)[1:]
        if args[0] in LONG_RUNNING:
            continue
        if args[0] == "report":
            args += ["--out", str(tmp_path / "report.html")]
        out = subprocess.run([exe, "--warehouse", str(warehouse_with_findings), *args], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{line}: {(out.stdout + out.stderr)[-1500:]}"
        ran += 1
    assert ran >= 4


def test_readme_sql_runs_and_reaches_the_corpus(warehouse_with_findings):
    for lang, sql in BLOCKS:
        if lang == "sql":
            result = query(warehouse_with_findings, sql)
            assert len(result) > 1, sql
            if "RECURSIVE" in sql:  # the lineage walk reaches the corpus
                assert {"naf.findings", "corpora.facts_documents", "corpora.facts_world"} <= set(result["table_name"])
            elif "safety_system_card" in sql:  # the system card: every evaluated model's headline metrics
                assert {"chat-sft", "chat-rl", "policy_oracle"} <= set(result["model"])
            elif "alignment_methods" in sql:  # every method's headline metrics
                assert {"deliberative_sft", "direct_sft"} <= set(result["method"])
            else:  # attack success per attack, goal and compute level
                assert {"successes", "n", "compute_level"} <= set(result.columns) and result["n"].sum() > 0
