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
    too_long = {str(p.relative_to(REPO)): n for p in modules if (n := len(p.read_text().splitlines())) > 400}
    assert not too_long, f"Dagster modules over 400 lines: {too_long}"


def test_science_modules_stay_readable():
    too_long = {str(p.relative_to(REPO)): n for p in SCIENCE if (n := len(p.read_text().splitlines())) > 450}
    assert not too_long, f"modules over 450 lines want splitting: {too_long}"


def _modules(path: Path) -> set[str]:
    """Every module a file imports (full dotted names), at any depth in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _room(path: Path) -> str:
    return path.relative_to(REPO / "assets").parts[0]


ALL_ASSET_MODULES = sorted((REPO / "assets").rglob("*.py"))
DEFS = [p for p in ALL_ASSET_MODULES if p.name == "defs.py" or p.parent.name == "defs"]


def test_imports_point_one_way():
    """corpora -> lm -> chat -> studies -> report: science never imports resources/ or pipelines/, nothing under
    assets/ imports pipelines/, and no room's defs imports another room's defs."""
    science = [p for p in ALL_ASSET_MODULES if p not in DEFS]
    offenders = []
    for path in science:
        bad = {m for m in _modules(path) if m.split(".")[0] in ("resources", "pipelines")}
        if bad:
            offenders.append(f"{path.relative_to(REPO)} imports {sorted(bad)} (science stays free of the platform)")
    for path in DEFS:
        for m in _modules(path):
            if m.split(".")[0] == "pipelines":
                offenders.append(f"{path.relative_to(REPO)} imports {m} (assets never import pipelines/)")
            parts = m.split(".")
            if parts[0] == "assets" and len(parts) > 2 and parts[2] == "defs" and parts[1] != _room(path):
                offenders.append(f"{path.relative_to(REPO)} imports {m} (another room's defs: depend through "
                                 "the graph instead)")
    assert not offenders, "\n".join(offenders)


def test_the_import_rule_catches_offenders(tmp_path):
    """Not vacuous: the parser sees nested and aliased imports."""
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from pipelines.torchrun_main import main\n    import resources.tracking as t\n")
    assert {"pipelines.torchrun_main", "resources.tracking"} <= _modules(sample)
