"""benchmarks/gpu_check.py on CPU at its quick shapes: every part runs, a failing part is reported, not fatal, and
every part the gpu-profile estimate reads a rate from exists."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPT = BENCHMARKS / "gpu_check.py"
# the parts that call each study's own entry point on a model already on the device (benchmarks/gpu_check_parts.py
# and gpu_check_parts2.py)
STUDY_PARTS = {"chat.grpo", "chat.fine_tune", "royalties.game", "safety.responders", "uncertainty.iclt",
               "sgd_noise.lm_sweep", "scaling.epochs", "parity.finite_sample", "robustness.defender",
               "alignment.sft_data", "alignment.judge_rl", "watermark.permutation"}


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
    table = gpu_check.main(["--device", "cpu", "--quick", "--out", str(out)])
    assert table["part"].tolist() == list(gpu_check.PARTS)
    assert set(gpu_check.PARTS) >= STUDY_PARTS | {"uncertainty.probes", "sgd_noise.synthetic", "watermark", "naf"}
    assert table["status"].tolist() == ["ok"] * len(table), table[["part", "status"]].to_string()
    assert all(table["throughput"].str.contains("/s")) and (table["seconds"] > 0).all()
    text = out.read_text()
    assert "| lm.train | ok |" in text and "| chat.grpo | ok |" in text and "quick shapes" in text
    rates = dict(zip(table["part"], table["throughput"], strict=True))
    assert rates["watermark.permutation"].endswith("null alignments/s"), rates["watermark.permutation"]
    assert rates["robustness.defender"].endswith("responses/s") and rates["alignment.judge_rl"].endswith("rollouts/s")


def test_a_failing_part_is_reported_and_the_rest_still_run(gpu_check, monkeypatch):
    def broken(check):
        raise RuntimeError("device-side assert")

    monkeypatch.setitem(gpu_check.PARTS, "naf", ("broken on purpose", broken))
    table = gpu_check.run(gpu_check.Check("cpu", quick=True), ["naf", "royalties.pieces"], budget_s=60)
    assert table["status"].tolist() == ["error: RuntimeError: device-side assert", "ok"]
    skipped = gpu_check.run(gpu_check.Check("cpu", quick=True), ["royalties.pieces", "naf"], budget_s=1e-3)
    assert skipped["status"].tolist() == ["ok", "skipped (budget spent)"]


def test_every_part_the_estimate_times_jobs_with_is_a_gpu_check_part(gpu_check):
    source = (BENCHMARKS / "gpu_profile_work.py").read_text()
    named = set(re.findall(r'part="([\w.]+)"', source)) | set(re.findall(r'\.part, [^=\n]+= "([\w.]+)"', source))
    assert {"safety.responders", "uncertainty.iclt", "parity.trainer"} <= named
    assert named <= set(gpu_check.PARTS), named - set(gpu_check.PARTS)


def test_unknown_parts_are_refused(gpu_check):
    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "cpu", "--quick", "--parts", "no.such.part"])


def test_skipped_parts_are_left_out_and_must_exist(gpu_check):
    table = gpu_check.main(["--device", "cpu", "--quick", "--parts", "royalties.pieces,naf", "--skip", "naf"])
    assert table["part"].tolist() == ["royalties.pieces"]
    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "cpu", "--quick", "--skip", "no.such.part"])


def test_shards_split_the_parts_between_them_and_a_bad_shard_is_refused(gpu_check):
    parts = "royalties.pieces,naf,uncertainty.probes"
    first = gpu_check.main(["--device", "cpu", "--quick", "--parts", parts, "--shard", "1/2"])
    second = gpu_check.main(["--device", "cpu", "--quick", "--parts", parts, "--shard", "2/2"])
    assert first["part"].tolist() == ["royalties.pieces", "uncertainty.probes"]
    assert second["part"].tolist() == ["naf"]
    for bad in ("0/2", "3/2", "2", "a/b"):
        with pytest.raises(SystemExit):
            gpu_check.main(["--device", "cpu", "--quick", "--shard", bad])
