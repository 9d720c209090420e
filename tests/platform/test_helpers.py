"""Profiles, compute and presentation helpers."""

import base64
import re

import dagster as dg
import pandas as pd
import pytest

from assets.findings import Finding, Rule, findings_frame
from resources.catalog import query
from resources.compute import Compute
from resources.presentation import figure_metadata, markdown_table
from resources.profiles import UnknownProfileError, current_profile, pick
from resources.settings import ConfigurationError


def test_pick_follows_the_profile(monkeypatch):
    assert current_profile() == "tiny" and pick(tiny=1, demo=2, gpu=3) == 1
    monkeypatch.setenv("REPROLAB_PROFILE", "gpu")
    assert pick(tiny=1, demo=2, gpu=3) == 3 and pick(tiny=1, demo=2) == 2
    monkeypatch.setenv("REPROLAB_PROFILE", "laptop")
    with pytest.raises(UnknownProfileError, match="tiny, demo, gpu"):
        pick(tiny=1, demo=2)


def test_compute_seeds_and_records_hardware():
    import torch

    compute = Compute(seed=7)
    compute.seed_everything()
    a = torch.randn(3)
    compute.seed_everything()
    assert torch.equal(a, torch.randn(3))
    hw = compute.hardware()
    assert hw["device"] == "cpu" and hw["bf16"] is False and hw["compile"] is False and hw["torch"]
    assert hw["tf32"] is False  # TF32 is a CUDA matter
    with pytest.raises(ConfigurationError, match="device='tpu'"):
        Compute(device="tpu").torch_device()


def test_compute_sets_tf32_for_the_step_and_puts_it_back(monkeypatch):
    import torch

    seen = []

    @dg.asset
    def matmul_precision(compute: Compute) -> None:
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.mkldnn.matmul.fp32_precision))

    mkldnn = torch.backends.mkldnn.matmul.fp32_precision
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # device "auto" resolves to CUDA
    assert Compute().use_tf32() and not Compute(tf32=False).use_tf32()
    assert torch.backends.cuda.matmul.allow_tf32 is False  # torch's default
    for tf32 in (True, False):
        assert dg.materialize([matmul_precision], resources={"compute": Compute(tf32=tf32)}).success
        assert torch.backends.cuda.matmul.allow_tf32 is False  # put back after the run
    monkeypatch.undo()
    assert dg.materialize([matmul_precision], resources={"compute": Compute(device="cpu")}).success
    assert seen == [(True, mkldnn), (False, mkldnn), (False, mkldnn)]  # CPU matmuls never touched


def test_figure_metadata_embeds_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    md = figure_metadata(fig, "lm/loss curve", tmp_path, run_id="r1")
    payload = re.search(r"base64,([A-Za-z0-9+/=]+)\)", md.value).group(1)
    thumbnail, full = base64.b64decode(payload), (tmp_path / "_plots" / "lm_loss_curve" / "r1.png").read_bytes()
    assert thumbnail.startswith(b"\x89PNG") and full.startswith(b"\x89PNG")
    assert len(thumbnail) < len(full) / 3 and f"`{tmp_path}/_plots/lm_loss_curve/r1.png`" in md.value


def test_markdown_table_truncates():
    md = markdown_table(pd.DataFrame({"a": range(40)}), max_rows=5).value
    assert "|   4 |" in md and "|   5 |" not in md and "35 more rows" in md


def test_findings_land_in_one_view_across_studies(resources_for, warehouse_root):
    def findings_asset(group, value):
        @dg.asset(name="findings", group_name=group, key_prefix=[group])
        def _findings() -> pd.DataFrame:
            return findings_frame([Finding(group, "headline", value, 1.0, "paper", Rule.within_factor(1.5),
                                           scale="tiny")])

        return _findings

    result = dg.materialize([findings_asset("study_a", 0.9), findings_asset("study_b", 0.4)], resources=resources_for)
    assert result.success
    rows = query(warehouse_root, "SELECT study, ours, reference, source, verdict FROM findings ORDER BY study")
    assert rows.values.tolist() == [["study_a", 0.9, 1.0, "paper", "reproduced"],
                                    ["study_b", 0.4, 1.0, "paper", "not reproduced"]]
