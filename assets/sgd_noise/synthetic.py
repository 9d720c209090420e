"""The synthetic sweep: many 2-layer ReLU students of a random teacher, trained at once by plain SGD.

One group per (regime, batch size): every (learning rate, seed) run of the group, plus the noise-reduction
branches, is one slice of stacked weights (M, ...) and takes its step through batched matmuls. The runs of
one seed share their initialisation and see the same data, so they differ only in the noise of SGD. A
branch follows its parent exactly until ``cut_step`` (its weights are copied from the parent there) and
then trains with the learning rate multiplied by ``cut_factor`` (< 1: less noise).

At each logged step every run is scored on held-out inputs: cross-entropy against the teacher's
probabilities (``eval_loss``), its excess over the teacher's entropy (``eval_excess``), agreement with the
teacher's most likely class, the training loss (online: the batches since the last log; offline: the whole
training set), and its predictive probabilities on the first ``distance_samples`` held-out inputs are kept
for the functional distance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from assets.lm.batches import to_device
from assets.sgd_noise.data import OFFLINE, ONLINE, SyntheticStream, TeacherTask, _generator, check_regime

_STREAM_INIT = 7


@dataclass(frozen=True)
class RunSpec:
    """One run: its learning rate, seed, and (for a branch) the step and factor of its learning-rate cut."""

    learning_rate: float
    seed: int
    cut_step: int | None = None
    cut_factor: float = 1.0

    def key(self, regime: str, batch_size: int) -> str:
        base = f"{regime}/B{batch_size}/lr{self.learning_rate:g}/s{self.seed}"
        return base if self.cut_step is None else f"{base}/cut{self.cut_step}x{self.cut_factor:g}"

    def parent(self) -> RunSpec:
        return RunSpec(self.learning_rate, self.seed)


@dataclass(frozen=True)
class SweepSpec:
    student_width: int = 128
    steps: int = 2000
    train_size: int = 1024  # offline only
    eval_size: int = 2048
    distance_samples: int = 512
    log_points: int = 30  # checkpoints: geometric early, then even


@dataclass
class SweepResult:
    runs: pd.DataFrame
    curves: pd.DataFrame
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # run_key -> (checkpoints, N, classes)
    seconds: float = 0.0


def log_steps(steps: int, points: int) -> list[int]:
    """About ``points`` steps from 0 to ``steps``: half geometric (early), half evenly spaced."""
    geometric = np.unique(np.round(np.geomspace(1, steps, max(points // 2, 2))).astype(int))
    even = np.linspace(0, steps, max(points - len(geometric), 2)).round().astype(int)
    return sorted(set(geometric.tolist()) | set(even.tolist()) | {0, steps})


def init_students(task: TeacherTask, width: int, seeds: Sequence[int]) -> dict[str, torch.Tensor]:
    """PyTorch-default (uniform ±1/sqrt(fan_in)) initialisation, one slice per seed."""
    out: dict[str, list[torch.Tensor]] = {"w1": [], "b1": [], "w2": [], "b2": []}
    for seed in seeds:
        g = _generator(task.seed, _STREAM_INIT, seed)
        a, b = 1 / math.sqrt(task.input_dim), 1 / math.sqrt(width)
        out["w1"].append((torch.rand(task.input_dim, width, generator=g) * 2 - 1) * a)
        out["b1"].append((torch.rand(width, generator=g) * 2 - 1) * a)
        out["w2"].append((torch.rand(width, task.classes, generator=g) * 2 - 1) * b)
        out["b2"].append((torch.rand(task.classes, generator=g) * 2 - 1) * b)
    return {k: torch.stack(v) for k, v in out.items()}


def logits(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """x (M, N, d) or (N, d) shared -> logits (M, N, classes)."""
    if x.dim() == 2:
        x = x.expand(params["w1"].shape[0], -1, -1)
    hidden = torch.relu(torch.baddbmm(params["b1"][:, None, :], x, params["w1"]))
    return torch.baddbmm(params["b2"][:, None, :], hidden, params["w2"])


def train_group(task: TeacherTask, regime: str, batch_size: int, specs: Sequence[RunSpec], sweep: SweepSpec,
                on_log: Callable[[int, float], None] | None = None, device: str = "cpu") -> SweepResult:
    """Train every run of one (regime, batch size) group at once; see the module docstring."""
    check_regime(regime)
    specs = list(specs)
    if not specs or batch_size < 1:
        raise ValueError(f"specs ({len(specs)}) and batch_size ({batch_size}): expected runs and a positive batch")
    keys = [s.key(regime, batch_size) for s in specs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate runs in the group: {keys}")
    for s in specs:
        if s.cut_step is not None and s.parent() not in specs:
            raise ValueError(f"branch {s.key(regime, batch_size)}: its parent run must be in the group")
    start = time.perf_counter()
    seeds = sorted({s.seed for s in specs})
    slot = torch.tensor([seeds.index(s.seed) for s in specs])  # run -> its seed's row of the stream's batch
    slot_on_device = slot.to(device)  # once: the step indexes the batch on the device with it
    stream = SyntheticStream(task, regime, seeds, sweep.train_size if regime == OFFLINE else None)
    params = {k: v[slot].to(device) for k, v in init_students(task, sweep.student_width, seeds).items()}
    lr = torch.tensor([s.learning_rate for s in specs], device=device)
    parent = {i: specs.index(s.parent()) for i, s in enumerate(specs) if s.cut_step is not None}
    x_eval, q_eval = (t.to(device) for t in task.evaluation_set(sweep.eval_size))
    entropy = float(-(q_eval * q_eval.clamp_min(1e-30).log()).sum(-1).mean())
    target = q_eval.argmax(-1)
    n_dist = min(sweep.distance_samples, sweep.eval_size)
    cuts = {s.cut_step for s in specs if s.cut_step is not None and 0 < s.cut_step < sweep.steps}
    M, checkpoints = len(specs), set(log_steps(sweep.steps, sweep.log_points)) | cuts
    rows, preds = [], []
    loss_sum, loss_count = torch.zeros(M, device=device), 0
    if regime == OFFLINE:
        x_train, y_train = stream.x_train[slot].to(device), stream.y_train[slot].to(device)

    def log(step: int) -> None:
        nonlocal loss_sum, loss_count
        with torch.no_grad():
            logp = torch.log_softmax(logits(params, x_eval), dim=-1)
            eval_loss = -(q_eval * logp).sum(-1).mean(-1)
            agree = (logp.argmax(-1) == target).float().mean(-1)
            if regime == OFFLINE:
                train = torch.nn.functional.cross_entropy(
                    logits(params, x_train).transpose(1, 2), y_train, reduction="none").mean(-1)
            else:
                train = loss_sum / loss_count if loss_count else torch.full((M,), math.nan, device=device)
        preds.append(logp[:, :n_dist].exp().float().cpu().numpy())
        eval_loss, agree, train = eval_loss.cpu(), agree.cpu(), train.cpu()
        examples = step * batch_size
        for i in range(M):
            rows.append((keys[i], len(preds) - 1, step, examples,
                         examples / sweep.train_size if regime == OFFLINE else math.nan,
                         float(eval_loss[i]), float(eval_loss[i]) - entropy, float(agree[i]), float(train[i])))
        loss_sum, loss_count = torch.zeros(M, device=device), 0
        if on_log is not None:
            on_log(step, float(eval_loss.mean()))

    log(0)
    for step in range(1, sweep.steps + 1):
        for i, j in parent.items():
            if specs[i].cut_step == step - 1:  # the branch leaves its parent after cut_step steps
                with torch.no_grad():
                    for p in params.values():
                        p[i] = p[j]
                lr[i] = specs[j].learning_rate * specs[i].cut_factor
        x, y, _ = stream.next(batch_size)  # drawn on the CPU by the seeds' generators, as always
        x, y = to_device(x, device)[slot_on_device], to_device(y, device)[slot_on_device]
        for p in params.values():
            p.requires_grad_(True)
        out = logits(params, x)
        losses = torch.nn.functional.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(-1)
        grads = torch.autograd.grad(losses.sum(), list(params.values()))
        with torch.no_grad():
            for (name, p), g in zip(params.items(), grads, strict=True):
                params[name] = (p - lr.view(-1, *[1] * (p.dim() - 1)) * g).detach()
        loss_sum += losses.detach()
        loss_count += 1
        if step in checkpoints:
            log(step)

    curves = pd.DataFrame(rows, columns=["run_key", "checkpoint", "step", "examples", "epochs", "eval_loss",
                                         "eval_excess", "eval_agreement", "train_loss"])
    stacked = np.stack(preds, axis=1)  # (M, checkpoints, N, classes)
    seconds = time.perf_counter() - start
    runs = pd.DataFrame({
        "run_key": keys, "task": "synthetic", "regime": regime, "batch_size": batch_size,
        "learning_rate": [s.learning_rate for s in specs], "seed": [s.seed for s in specs],
        "cut_step": [s.cut_step if s.cut_step is not None else -1 for s in specs],
        "cut_lr_factor": [s.cut_factor if s.cut_step is not None else 1.0 for s in specs], "cut_batch_factor": 1,
        "parent_run": [s.parent().key(regime, batch_size) if s.cut_step is not None else "" for s in specs],
        "steps": sweep.steps, "examples_seen": sweep.steps * batch_size,
        "train_size": sweep.train_size if regime == OFFLINE else -1, "teacher_entropy": entropy,
        "group_seconds": seconds})
    runs["noise_scale"] = runs["learning_rate"] / runs["batch_size"]
    return SweepResult(runs, curves, {k: stacked[i] for i, k in enumerate(keys)}, seconds)


def run_sweep(task: TeacherTask, regimes: Sequence[str], batch_sizes: Sequence[int],
              learning_rates: Sequence[float], seeds: Sequence[int], sweep: SweepSpec,
              cut_factor: float = 0.25, cut_fraction: float = 0.5,
              on_group: Callable[[int, int, str, int, float], None] | None = None,
              device: str = "cpu") -> SweepResult:
    """Every (regime, batch size, learning rate, seed); the noisiest setting (smallest batch, largest learning
    rate) of each regime also gets a branch per seed that cuts its learning rate at ``cut_fraction`` of the run."""
    groups = [(r, b) for r in regimes for b in sorted(batch_sizes)]
    cut_step = int(round(cut_fraction * sweep.steps))
    parts, predictions, total = [], {}, 0.0
    for index, (regime, batch) in enumerate(groups):
        specs = [RunSpec(float(lr), int(s)) for lr in learning_rates for s in seeds]
        if batch == min(batch_sizes) and 0 < cut_step < sweep.steps and cut_factor != 1:
            specs += [RunSpec(float(max(learning_rates)), int(s), cut_step, cut_factor) for s in seeds]
        result = train_group(task, regime, batch, specs, sweep, device=device)
        parts.append(result)
        predictions.update(result.predictions)
        total += result.seconds
        if on_group is not None:
            on_group(index, len(groups), regime, batch, result.seconds)
    runs = pd.concat([p.runs for p in parts], ignore_index=True)
    curves = pd.concat([p.curves for p in parts], ignore_index=True)
    return SweepResult(runs, curves, predictions, total)


def sweep_tables(result: SweepResult, loss_levels: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs with their final and best held-out loss and final training loss, the TV distances at equal loss
    between their predictions)."""
    from assets.sgd_noise.analysis import functional_distances

    distances = functional_distances(result.runs, result.curves, lambda key, i: result.predictions[key][i],
                                     loss_levels)
    runs = result.runs.merge(result.curves.groupby("run_key").agg(
        final_eval_loss=("eval_loss", "last"), best_eval_loss=("eval_loss", "min"),
        final_train_loss=("train_loss", "last")).reset_index(), on="run_key")
    return runs, distances


def final_losses(runs: pd.DataFrame) -> dict[str, float]:
    """Mean final held-out loss of the main runs (no branches) per regime, batch and learning rate, keyed
    ``final_eval_loss/<regime>/B<batch>/lr<lr>`` (what MLflow records of the sweep)."""
    finals = runs[runs["cut_step"] < 0].groupby(["regime", "batch_size", "learning_rate"])["final_eval_loss"].mean()
    return {f"final_eval_loss/{r}/B{b}/lr{lr:g}": v for (r, b, lr), v in finals.items()}


__all__ = ["ONLINE", "OFFLINE", "RunSpec", "SweepSpec", "SweepResult", "train_group", "run_sweep", "log_steps",
           "sweep_tables", "final_losses"]
