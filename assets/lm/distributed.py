"""The torchrun side of training: which rank this process is, the all-reduce the loop needs, and the job a
launched training process reads (`write_job`) and leaves behind (`read_result`)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    from assets.lm.model import ModelSize
    from assets.lm.training import TrainConfig


@dataclass
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    created_group: bool = False

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t


def is_main_process() -> bool:
    """True outside torchrun and on its rank 0: the process that writes files and reports."""
    return int(os.environ.get("RANK", "0")) == 0


def setup_distributed(device: str) -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(local_rank)  # before NCCL init, so each rank binds its own GPU
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        created = True
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, created)


# -- a training job laid out on disk for an external process (pipelines/torchrun_main.py) ------------------
def write_job(job_dir: str | Path, size: ModelSize, cfg: TrainConfig, tokenizer_dir: str | Path,
              train_texts: list[str], val_texts: list[str]) -> Path:
    """Lay out what the external process needs; returns ``job_dir``."""
    job = Path(job_dir)
    job.mkdir(parents=True, exist_ok=True)
    (job / "texts.json").write_text(json.dumps({"train": list(train_texts), "validation": list(val_texts)}))
    spec = {"size": dataclasses.asdict(size), "train": dataclasses.asdict(cfg), "tokenizer_dir": str(tokenizer_dir)}
    (job / "job.json").write_text(json.dumps(spec))
    return job


def read_result(job_dir: str | Path) -> Any:
    """The `FittedModel` rank 0 left in ``job_dir``; a clear error when the process wrote none."""
    job = Path(job_dir)
    if not (job / "result.json").exists():
        raise RuntimeError(f"the training process left no {job / 'result.json'}: see its log above")
    numbers = json.loads((job / "result.json").read_text())
    import pandas as pd

    from assets.lm.family import FittedModel

    return FittedModel(checkpoint_dir=job / "model", curve=pd.read_csv(job / "curve.csv"), **numbers)


def torchrun_launch(job_dir: str | Path, nproc: int) -> dict[str, Any]:
    """``command``, ``cwd`` and ``env`` that train the job at ``job_dir`` in ``nproc`` torchrun processes (the
    repository's ``pipelines.torchrun_main``; the ranks share the machine's cores)."""
    import sys

    import assets

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "pipelines.torchrun_main", str(job_dir)]
    repo = str(Path(assets.__file__).resolve().parents[1])
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    path = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    return {"command": command, "cwd": repo, "env": {"OMP_NUM_THREADS": threads, "PYTHONPATH": path}}
