"""The house rules that the code itself can be checked against: lint, the Dagster split, module sizes."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# a study's Dagster side is its defs.py, or a defs/ package once that outgrows one module
SCIENCE = sorted(p for p in (REPO / "assets").glob("*/*.py") if p.name != "defs.py")


def test_ruff_is_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_science_modules_do_not_import_dagster():
    offenders = [str(p.relative_to(REPO)) for p in SCIENCE if "dagster" in _imports(p)]
    assert not offenders, f"only defs.py, resources/ and pipelines/ may import dagster: {offenders}"


def test_defs_modules_stay_thin():
    modules = [*(REPO / "assets").glob("*/defs.py"), *(REPO / "assets").glob("*/defs/*.py")]
    too_long = {str(p.relative_to(REPO)): n for p in modules if (n := len(p.read_text().splitlines())) > 450}
    assert not too_long, f"Dagster modules over 450 lines: {too_long}"


def test_science_modules_stay_readable():
    too_long = {str(p.relative_to(REPO)): n for p in SCIENCE if (n := len(p.read_text().splitlines())) > 450}
    assert not too_long, f"modules over 450 lines want splitting: {too_long}"
