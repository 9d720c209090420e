"""benchmarks/gpu_profile_estimate.py: the gpu profile's planning table is read from the code and answers to it."""

import copy
import importlib.util
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_profile_estimate.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_profile_estimate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def estimator():
    return _load()


@pytest.fixture(scope="module")
def settings(estimator):
    """The gpu profile's settings (read in a subprocess: this test process runs the tiny profile)."""
    return estimator.gpu_settings()


def _by_study(rows):
    return {r["study"]: r for r in rows}


def test_every_room_gets_a_positive_finite_estimate_read_from_the_gpu_profile(estimator, settings, tmp_path):
    out = tmp_path / "estimate.md"
    rows = _by_study(estimator.main(["--out", str(out)], settings=settings))
    rooms = sorted(p.name for p in SCRIPT.parents[1].joinpath("assets").iterdir() if (p / "defs.py").exists())
    assert sorted(rows) == rooms
    for study, row in rows.items():
        assert math.isfinite(row["minutes"]) and row["minutes"] >= 0, study
        if study != "corpora":  # the corpora room has no GPU work: CPU only, said so in its row
            assert row["minutes"] > 0 and row["pflops"] > 0, study
        for kind in row["breakdown"]:  # no job silently counted as no work (a count read as 0)
            assert kind["pflops"] > 0 and 0 < kind["minutes"] < math.inf, (study, kind["what"])
    # gpu-profile values, not the tiny ones this process runs: the chat base model's width is the gpu pick
    assert settings["configs"]["chat"]["ChatBaseConfig"]["d_model"] > 256
    text = out.read_text()
    assert "Total:" in text and "| lm |" in text and "estimate" in text


def test_doubling_a_setting_raises_the_estimate(estimator, settings):
    base = _by_study(estimator.estimate(settings))
    for room, cls, field in (("lm", "FactsLanguageModelConfig", "max_steps"),
                             ("parity", "ParityRunsConfig", "max_steps"),
                             ("watermark", "WatermarkGenerationConfig", "n_null"),
                             ("watermark", "WatermarkGenerationConfig", "permutation_runs")):
        doubled = copy.deepcopy(settings)
        doubled["configs"][room][cls][field] *= 2
        after = _by_study(estimator.estimate(doubled))
        assert after[room]["minutes"] > base[room]["minutes"], (room, field)
        assert all(after[r]["minutes"] == base[r]["minutes"] for r in after if r != room)
    slower = _by_study(estimator.estimate(settings, launch_s=3 * estimator.LAUNCH_S))
    assert all(slower[r]["minutes"] >= base[r]["minutes"] for r in base)
    assert slower["parity"]["minutes"] == pytest.approx(3 * base["parity"]["minutes"])  # launch-bound
    with_overhead = _by_study(estimator.estimate(settings, step_overhead_s=6.0))
    steps = settings["dagster_steps"]["scaling"]
    assert steps > len(settings["scaling_cells"])  # one Dagster step per grid cell, and the rest
    assert with_overhead["scaling"]["minutes"] == pytest.approx(base["scaling"]["minutes"] + steps * 6.0 / 60)


def test_a_gpu_check_table_replaces_the_assumed_rate_of_the_matching_study(estimator, settings, tmp_path):
    table = tmp_path / "gpu_check.md"
    table.write_text("GPU check, planted.\n\n| part | status | seconds | throughput | what |\n|---|---|---|---|---|\n"
                     "| parity.trainer | ok | 3.0 | 1,000 network-steps/s | planted |\n"
                     "| naf | error: RuntimeError: x | 1.0 |  | planted |\n")
    assert estimator.read_gpu_check(table) == {"parity.trainer": 1000.0}
    base = _by_study(estimator.estimate(settings))
    rows = _by_study(estimator.main(["--gpu-check", str(table), "--out", str(tmp_path / "e.md")], settings=settings))
    assert rows["parity"]["basis"].startswith("from measured throughput")
    assert not base["parity"]["basis"].startswith("from measured")
    network_steps = sum(j.units for j in estimator.parity_jobs(settings))
    assert rows["parity"]["minutes"] == pytest.approx(network_steps / 1000.0 / 60)
    assert rows["naf"]["basis"] == base["naf"]["basis"]  # a part that errored is not a measurement


def test_the_exp_permutation_tests_are_counted_from_the_study_and_timed_by_their_part(estimator, settings, tmp_path):
    gen = settings["configs"]["watermark"]["WatermarkGenerationConfig"]
    n_texts, runs = gen["n_texts"], gen["permutation_runs"]
    assert set(settings["watermark_exp_detectors"].values()) == {False, True}  # EXP and EXP-edit, read off the schemes
    tests = [j for j in estimator.STUDIES["watermark"](settings) if j.part == "watermark.permutation"]
    assert len(tests) == len(settings["watermark_exp_detectors"])
    # per detector: watermarked + min(n_texts, n_null) null texts at calibration, the attacked texts before and after
    tested = 3 * n_texts + min(n_texts, gen["n_null"])
    assert all(j.units == tested * runs for j in tests)
    assert all(j.host_uniforms == tested * runs * gen["exp_key_length"] * gen["response_tokens"] for j in tests)
    edit, plain = sorted(tests, key=lambda j: -j.launches)  # EXP-edit's dynamic programme: a few kernels per row
    assert edit.launches > gen["response_tokens"] * plain.launches / 10 and edit.bytes > plain.bytes
    base = _by_study(estimator.estimate(settings))
    assert "EXP / EXP-edit permutation tests" in {k["what"].split(" (")[0] for k in base["watermark"]["breakdown"]}

    table = tmp_path / "gpu_check.md"
    table.write_text("GPU check, planted.\n\n| part | status | seconds | throughput | what |\n|---|---|---|---|---|\n"
                     "| watermark.permutation | ok | 2.0 | 1,000 null alignments/s | planted |\n")
    rows = _by_study(estimator.main(["--gpu-check", str(table), "--out", str(tmp_path / "e.md")], settings=settings))
    kind = next(k for k in rows["watermark"]["breakdown"] if k["what"].startswith("EXP / EXP-edit permutation"))
    assert kind["minutes"] == pytest.approx(sum(j.units for j in tests) / 1000.0 / 60)
    assert kind["basis"] == "from measured throughput (watermark.permutation)"
    assert all(rows[r]["minutes"] == base[r]["minutes"] for r in rows if r != "watermark")


def test_the_dispatch_counter_counts_kernels_and_their_bytes_not_views():
    import torch

    from benchmarks.gpu_profile_exp import dispatch_traffic, exp_detection_traffic

    x = torch.empty((4, 10), device="meta")
    assert dispatch_traffic(lambda: x.add(1).exp()) == (2, 2 * (40 + 40) * 4.0)
    assert dispatch_traffic(lambda: x.view(40)[:5].unsqueeze(0).t()) == (0, 0.0)  # views launch nothing
    # EXP-edit's dynamic programme runs a fixed number of kernels per text position; EXP's do not grow with it
    rows = [exp_detection_traffic(True, 1, 3, n, 8, 16, None)[0] for n in (4, 8, 12)]
    assert rows[1] - rows[0] == rows[2] - rows[1] > 4
    plain = [exp_detection_traffic(False, 1, 3, n, 8, 16, None)[0] for n in (4, 8)]
    assert plain[0] == plain[1]
