"""Compute: the device, bf16 autocast and torch.compile switches, seeding, and a hardware record for lineage.

Torch is imported inside the methods, never at module import, so the code location loads without it and a
step process does not touch CUDA before the step runs.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import re
from typing import Any, Literal

import dagster as dg
from pydantic import Field, PrivateAttr

from resources.settings import ConfigurationError


class Compute(dg.ConfigurableResource):
    """Where and how models run.

    ``device``: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``. ``bf16`` and ``compile``:
    ``auto`` turns them on on CUDA only. ``seed`` is the base seed that ``seed_everything`` applies.

    ``tf32`` (on by default; CUDA only) is for the float32 work that bf16 autocast does not cover (generation,
    scoring, probes, detectors, the parity and synthetic SGD-noise trainers): TensorFloat-32 tensor-core
    matmuls (10-bit mantissa, float32 range; about 7x the float32 matmul rate of an H100/H200). It is set for
    CUDA matmuls only (``torch.backends.cuda.matmul.allow_tf32``) while a step uses the resource, put back
    afterwards, and recorded in ``hardware()``; ``tf32=False`` keeps IEEE float32 matmuls.
    """

    device: str = Field(default="auto", description="auto (CUDA when present), cpu, cuda or cuda:N")
    bf16: Literal["auto", "on", "off"] = Field(default="auto", description="bfloat16 autocast in training "
                                                                          "(auto: on CUDA only)")
    compile: Literal["auto", "on", "off"] = Field(default="auto", description="torch.compile the model "
                                                                             "(auto: on CUDA only)")
    tf32: bool = Field(default=True, description="TensorFloat-32 matmuls for float32 work on CUDA (no effect on "
                                                  "CPU)")
    seed: int = Field(default=0, description="base seed that seed_everything applies (python, numpy, torch)")
    cpu_threads: int = Field(default=0, description="torch CPU threads (0: torch's default)")
    _tf32_before: bool | None = PrivateAttr(default=None)  # the process's setting, put back at teardown

    def check_device(self) -> None:
        """Raise ConfigurationError unless ``device`` is auto, cpu, cuda or cuda:N (without importing torch)."""
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigurationError(f"device={self.device!r} (resource `compute`): expected auto, cpu, cuda or cuda:N")

    def torch_device(self) -> str:
        import torch

        self.check_device()
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigurationError(f"device={self.device!r} (resource `compute`): CUDA is not available here; use 'auto' or 'cpu'")
        index = int(self.device.split(":")[1]) if ":" in self.device else 0
        if self.device.startswith("cuda") and index >= torch.cuda.device_count():
            raise ConfigurationError(f"device={self.device!r} (resource `compute`): out of range, this machine has "
                                     f"{torch.cuda.device_count()} CUDA device(s)")
        return self.device

    def use_bf16(self) -> bool:
        return self.bf16 == "on" or (self.bf16 == "auto" and self.torch_device().startswith("cuda"))

    def use_compile(self) -> bool:
        return self.compile == "on" or (self.compile == "auto" and self.torch_device().startswith("cuda"))

    def use_tf32(self) -> bool:
        return self.tf32 and self.torch_device().startswith("cuda")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """On CUDA, apply ``tf32`` to CUDA matmuls for the step (``torch.backends.cuda.matmul.allow_tf32``: CPU
        matmuls keep their setting); ``teardown_after_execution`` puts the process's setting back."""
        import torch

        self._tf32_before = torch.backends.cuda.matmul.allow_tf32
        if self.torch_device().startswith("cuda"):
            torch.backends.cuda.matmul.allow_tf32 = self.tf32

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        import torch

        if self._tf32_before is not None:
            torch.backends.cuda.matmul.allow_tf32 = self._tf32_before

    def autocast(self):
        """bf16 autocast on the chosen device when enabled, else a no-op context."""
        if not self.use_bf16():
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.torch_device().split(":")[0], dtype=torch.bfloat16)

    def seed_everything(self, offset: int = 0) -> int:
        """Seed python, numpy and torch with ``seed + offset``; returns the seed used."""
        import numpy as np
        import torch

        seed = self.seed + offset
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        if self.cpu_threads:
            torch.set_num_threads(self.cpu_threads)
        return seed

    def hardware(self) -> dict[str, Any]:
        """What ran the step, for lineage: device, its name, torch version, thread count, precision."""
        import torch

        device = self.torch_device()
        record = {
            "device": device,
            "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "bf16": self.use_bf16(),
            "compile": self.use_compile(),
            "tf32": self.use_tf32(),
            "host": platform.node(),
        }
        return record
