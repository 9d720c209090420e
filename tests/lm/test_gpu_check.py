"""benchmarks/gpu_check.py on CPU at its quick shapes: every part runs, a failing part is reported, not fatal."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
CHEAP_PARTS = ["lm.train", "lm.train_chunked", "chat.generation", "parity.trainer", "watermark", "naf",
               "royalties.pieces", "robustness.soft_tokens"]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_check", None)


def test_every_part_runs_on_cpu_at_quick_shapes(gpu_check, tmp_path):
    out = tmp_path / "check.md"
    table = gpu_check.main(["--device", "cpu", "--quick", "--parts", ",".join(CHEAP_PARTS), "--out", str(out)])
    assert table["part"].tolist() == CHEAP_PARTS
    assert table["status"].tolist() == ["ok"] * len(CHEAP_PARTS), table[["part", "status"]].to_string()
    assert all(table["throughput"].str.contains("/s")) and (table["seconds"] > 0).all()
    assert set(gpu_check.PARTS) >= {"uncertainty.probes", "sgd_noise.synthetic"}  # run on the GPU, too slow here
    assert "| lm.train | ok |" in out.read_text()


def test_a_failing_part_is_reported_and_the_rest_still_run(gpu_check, monkeypatch):
    def broken(check):
        raise RuntimeError("device-side assert")

    monkeypatch.setitem(gpu_check.PARTS, "naf", ("broken on purpose", broken))
    table = gpu_check.run(gpu_check.Check("cpu", quick=True), ["naf", "royalties.pieces"], budget_s=60)
    assert table["status"].tolist() == ["error: RuntimeError: device-side assert", "ok"]
    skipped = gpu_check.run(gpu_check.Check("cpu", quick=True), ["royalties.pieces", "naf"], budget_s=1e-3)
    assert skipped["status"].tolist() == ["ok", "skipped (budget spent)"]
