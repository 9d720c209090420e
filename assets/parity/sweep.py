"""The grid of runs: sweeps over (architecture, n, k, width, B, η, loss, init, weight decay, training-set size),
expanded into groups of identical networks that differ only by seed, each group trained by the batched trainer.

A run is one (group, seed); its ``run_key`` names every setting. The runs table has one row per run with its
t_c or a censoring flag; the curves table one row per (run, logged step).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import pandas as pd
import torch

from assets.parity.architectures import Network
from assets.parity.trainer import TrainSpec, train_batched

GROUP_COLUMNS = ("arch", "n", "k", "width", "batch_size", "learning_rate", "loss", "init", "weight_decay",
                 "train_set_size")


@dataclass(frozen=True)
class Sweep:
    """A cartesian product of settings, each run with ``seeds`` seeds. ``train_set_size`` None is online SGD."""

    n: tuple[int, ...]
    k: tuple[int, ...]
    name: str = "grid"
    arch: tuple[str, ...] = ("mlp",)
    width: tuple[int, ...] = (100,)
    batch_size: tuple[int, ...] = (32,)
    learning_rate: tuple[float, ...] = (0.1,)
    loss: tuple[str, ...] = ("hinge",)
    init: tuple[str, ...] = ("uniform",)
    weight_decay: tuple[float, ...] = (0.0,)
    train_set_size: tuple[int | None, ...] = (None,)
    seeds: int = 16

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Sweep:
        """From a config dict; list values become tuples, unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"sweep fields {unknown} are unknown; expected some of {sorted(known)}")
        return cls(**{key: tuple(v) if isinstance(v, list) else v for key, v in values.items()})


@dataclass(frozen=True)
class RunGroup:
    """Networks that share every setting but the seed: one batched training."""

    sweep: str
    network: Network
    batch_size: int
    learning_rate: float
    loss: str
    weight_decay: float
    train_set_size: int | None
    seeds: tuple[int, ...]

    def settings(self) -> dict[str, Any]:
        net = self.network
        return {"arch": net.arch, "n": net.n, "k": net.k, "width": net.width if net.arch == "mlp" else net.k,
                "batch_size": self.batch_size, "learning_rate": self.learning_rate, "loss": self.loss,
                "init": net.init, "weight_decay": self.weight_decay, "train_set_size": self.train_set_size}

    def spec(self, base: TrainSpec) -> TrainSpec:
        return replace(base, batch_size=self.batch_size, learning_rate=self.learning_rate, loss=self.loss,
                       weight_decay=self.weight_decay, train_set_size=self.train_set_size)

    def run_key(self, seed: int) -> str:
        s = self.settings()
        data = "online" if s["train_set_size"] is None else f"N{s['train_set_size']}"
        return (f"{s['arch']}-n{s['n']}-k{s['k']}-w{s['width']}-B{s['batch_size']}-lr{s['learning_rate']:g}-"
                f"{s['loss']}-{s['init']}-wd{s['weight_decay']:g}-{data}-s{seed}")


def expand(sweeps: Iterable[Sweep], seed_offset: int = 0, init_scale: float = 1.0) -> list[RunGroup]:
    """All groups of all sweeps, in order; a group already produced by an earlier sweep is not repeated
    (it keeps the larger seed count). Invalid combinations (k > n) raise naming the sweep."""
    groups: dict[tuple, RunGroup] = {}
    for sweep in sweeps:
        if sweep.seeds < 1:
            raise ValueError(f"sweep {sweep.name!r}: seeds={sweep.seeds!r}; expected a positive integer")
        product = itertools.product(sweep.arch, sweep.n, sweep.k, sweep.width, sweep.batch_size,
                                    sweep.learning_rate, sweep.loss, sweep.init, sweep.weight_decay,
                                    sweep.train_set_size)
        for arch, n, k, width, B, lr, loss, init, wd, size in product:
            try:
                net = Network(arch, int(n), int(k), int(width) if arch == "mlp" else 1, init, init_scale)
            except ValueError as exc:
                raise ValueError(f"sweep {sweep.name!r}: {exc}") from exc
            seeds = tuple(range(seed_offset, seed_offset + sweep.seeds))
            group = RunGroup(sweep.name, net, int(B), float(lr), loss, float(wd), size, seeds)
            key = tuple(group.settings().values())
            if key not in groups or len(groups[key].seeds) < len(seeds):
                groups[key] = group if key not in groups else replace(groups[key], seeds=seeds)
    return list(groups.values())


@dataclass
class SweepResult:
    runs: pd.DataFrame
    curves: pd.DataFrame
    seconds: float


def run_groups(groups: Sequence[RunGroup], base: TrainSpec, *, device: str = "cpu",
               dtype: torch.dtype = torch.float32,
               on_group: Callable[[int, RunGroup, pd.DataFrame, float], None] | None = None) -> SweepResult:
    """Train every group; ``on_group(index, group, runs, seconds)`` after each (for progress logs)."""
    if not groups:
        raise ValueError("the grid is empty: give at least one sweep with at least one setting per field")
    start = time.perf_counter()
    runs, curves = [], []
    for index, group in enumerate(groups):
        result = train_batched(group.network, group.spec(base), group.seeds, device=device, dtype=dtype)
        settings = group.settings()
        keys = {seed: group.run_key(seed) for seed in group.seeds}
        table = result.runs.assign(run_key=result.runs["seed"].map(keys), sweep=group.sweep, **settings,
                                   eval_size=base.eval_size, accuracy_target=base.accuracy_target,
                                   group_seconds=result.seconds, device=device)
        runs.append(table)
        curve = result.curves.assign(run_key=result.curves["seed"].map(keys),
                                     **{c: settings[c] for c in ("arch", "n", "k", "width", "weight_decay",
                                                                 "train_set_size")})
        curves.append(curve)
        if on_group is not None:
            on_group(index, group, table, result.seconds)
    runs_df = pd.concat(runs, ignore_index=True)
    front = ["run_key", "sweep", *GROUP_COLUMNS, "seed"]
    runs_df = runs_df[front + [c for c in runs_df.columns if c not in front]]
    curves_df = pd.concat(curves, ignore_index=True)
    front = ["run_key", "arch", "n", "k", "width", "weight_decay", "train_set_size", "seed", "step"]
    curves_df = curves_df[front + [c for c in curves_df.columns if c not in front]]
    # Parquet needs one type per column: the online runs' training-set size is missing, not None-objects.
    for df in (runs_df, curves_df):
        df["train_set_size"] = pd.array(df["train_set_size"], dtype="Int64")
    return SweepResult(runs_df, curves_df, time.perf_counter() - start)


def base_spec(values: Mapping[str, Any]) -> TrainSpec:
    """A TrainSpec from config values (only TrainSpec's fields are read)."""
    names = {f.name for f in fields(TrainSpec)}
    return TrainSpec(**{k: v for k, v in values.items() if k in names})


def finite_sample_plan(values: Mapping[str, Any]) -> tuple[list[RunGroup], TrainSpec]:
    """The finite-sample variant's groups (one setting, each weight decay) and its TrainSpec from a Config's
    values (``n``, ``k``, ``width``, ``train_set_size``, ``weight_decay`` list, ``batch_size``, ...)."""
    v = values
    sweep = Sweep(name="finite_sample", n=(v["n"],), k=(v["k"],), width=(v["width"],), batch_size=(v["batch_size"],),
                  learning_rate=(v["learning_rate"],), loss=(v["loss"],), weight_decay=tuple(v["weight_decay"]),
                  train_set_size=(v["train_set_size"],), seeds=v["seeds"])
    spec = TrainSpec(max_steps=v["max_steps"], eval_size=v["eval_size"], curve_samples=v["eval_size"],
                     accuracy_target=v["accuracy_target"], eval_every=v["eval_every"], log_every=v["eval_every"] * 4,
                     gap_samples=0)
    return expand([sweep]), spec


def sweep_dicts(sweeps: Iterable[Any]) -> list[dict[str, Any]]:
    """Config sweeps (dicts or pydantic models) as plain dicts."""
    return [dict(s) if isinstance(s, Mapping) else s.model_dump() for s in sweeps]

