"""DDP: torchrun with 2 CPU ranks (gloo) reproduces one process with the same global batch.

The two-rank run trains through the fused training view (`TrainConfig.fused_projections`), the one-process run
the Hugging Face layers as they are: the same parameters at the end show DDP and the fused view both right."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from assets.lm.model import ModelSize, build_model
from tests.lm import ddp_main

REPO = Path(__file__).resolve().parents[2]
# Global batch 8 = 2 micro-steps x 2 ranks x 2 rows: exercises no_sync accumulation and the rank slices.
ARGS = ["--steps", "6", "--batch-size", "8", "--grad-accum", "2", "--eval-interval", "3", "--seed", "3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.mark.slow
def test_torchrun_two_ranks_matches_one_process(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    # The one-process reference runs here (saves a second interpreter start); ddp_main pins 1 thread.
    threads = torch.get_num_threads()
    try:
        ddp_main.main(["--out", str(single), *ARGS])
    finally:
        torch.set_num_threads(threads)
    run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            "-m",
            "tests.lm.ddp_main",
            "--out",
            str(ddp),
            *ARGS,
            "--fused-projections",  # the DDP run trains the fused view: one comparison checks both
        ]
    )

    a, b = load_file(single / "params.safetensors"), load_file(ddp / "params.safetensors")
    assert a.keys() == b.keys()
    max_diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert max_diff < 1e-5, f"parameters differ by {max_diff}"
    # Not vacuous: training moved the weights far more than the tolerance.
    size = ModelSize(name="ddp-test", d_model=32, n_layers=2, n_heads=4, d_ff=64, context_length=16)
    init = build_model(size, 32, seed=3).state_dict()
    assert max(float((a[k] - init[k]).abs().max()) for k in a) > 1e-3

    ca, cb = pd.read_csv(single / "curve.csv"), pd.read_csv(ddp / "curve.csv")
    assert len(ca) == len(cb) == 6
    pd.testing.assert_frame_equal(ca.drop(columns="tokens_per_s"), cb.drop(columns="tokens_per_s"), rtol=1e-5)
    assert ca["val_loss"].notna().sum() == 2
    assert ca["train_loss"].iloc[-1] < ca["train_loss"].iloc[0]
