"""The batched trainer: many small networks trained at once by SGD, one slice of stacked weights per seed.

Every step each model gets its own fresh batch (online) or a batch drawn from its own fixed training set
(the finite-sample variant), takes one SGD step (optionally with weight decay, as torch.optim.SGD applies
it: to every parameter), and is watched for convergence:

- online: t_c is the first step at which the model got its whole training batch right and then scored
  ``accuracy_target`` (100%) on the fixed evaluation set; the batch check costs nothing and only a model
  that passes it is evaluated, so t_c is found to the step;
- finite sample: the evaluation set is scored every ``eval_every`` steps (t_c to that resolution), and so is
  the training set (when the model memorised it).

A run that does not converge within ``max_steps`` is censored. ``leave_chance_step`` is the last step at
which an exponential average of the batch accuracy (time constant ~10 steps) was below 0.6, i.e. where the
model was last at chance: the plateau ends there. Curves (loss, accuracy, hidden-progress measures) are
logged on a grid of steps that is geometric early and every ``log_every`` steps later.

Off the CPU the convergence state is read back to the host once per stretch of up to ``READBACK_STEPS``
steps, not every step (see `train_batched`); the recorded results are the same either way.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from assets.parity.architectures import (
    LOSSES,
    Network,
    Params,
    backward,
    check_choice,
    forward,
    initial_params,
    loss_terms,
)
from assets.parity.data import (
    STREAM_ONLINE,
    STREAM_TRAIN_INDEX,
    evaluation_set,
    parity_labels,
    rademacher,
    relevant_mask,
    secret_subsets,
    seed_keys,
    training_set,
    uniform_indices,
)
from assets.parity.hidden_progress import fourier_gap, population_gradient, weight_measures

CHANCE_EMA = 0.1  # weight of the newest batch in the accuracy average
CHANCE_LEVEL = 0.6  # a B=32 batch accuracy averaged this way sits at 0.5 ± 0.02 at chance
READBACK_STEPS = 50  # off the CPU: at most this many steps between two reads of the device's state


@dataclass(frozen=True)
class TrainSpec:
    """How the networks are trained and watched (the paper's defaults: B=32, η=0.1, hinge loss)."""

    batch_size: int = 32
    learning_rate: float = 0.1
    loss: str = "hinge"
    weight_decay: float = 0.0
    max_steps: int = 10_000
    train_set_size: int | None = None  # None: online SGD, a fresh batch every step
    eval_size: int = 8192
    accuracy_target: float = 1.0
    eval_every: int = 25  # finite sample only: how often the evaluation and training sets are scored
    log_every: int = 100
    log_growth: float = 1.35  # the early log grid: steps 1, 2, 3, 4, 5, 7, 9, 12, 16, ... (geometric)
    curve_samples: int = 2048  # the logged curves score the first rows of the evaluation set (t_c uses all)
    gap_samples: int = 2048  # sample for the Fourier-gap estimate (first rows of the evaluation set); 0: off
    stop_when_converged: bool = True

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        for name in ("batch_size", "max_steps", "eval_size", "curve_samples", "eval_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected a positive integer")
        if self.train_set_size is not None and self.train_set_size < 1:
            raise ValueError(f"train_set_size={self.train_set_size!r}: expected a positive integer or None")
        if self.log_growth <= 1 or self.gap_samples < 0:
            raise ValueError(f"log_growth={self.log_growth!r}, gap_samples={self.gap_samples!r}: expected "
                             "log_growth > 1 and gap_samples >= 0")
        if not 0 < self.accuracy_target <= 1:
            raise ValueError(f"accuracy_target={self.accuracy_target!r}: expected a number in (0, 1]")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError(f"learning_rate={self.learning_rate!r}, weight_decay={self.weight_decay!r}: "
                             "expected learning_rate > 0 and weight_decay >= 0")

    @property
    def online(self) -> bool:
        return self.train_set_size is None

    def log_steps(self) -> set[int]:
        steps, value = {0, self.max_steps}, 1.0
        while value < self.max_steps:
            steps.add(int(round(value)))
            value = max(value * self.log_growth, value + 1)
        return steps | set(range(self.log_every, self.max_steps + 1, self.log_every))


@dataclass
class BatchedRuns:
    """One network per seed, trained at once by `train_batched` (not a language-model run)."""

    runs: pd.DataFrame  # one row per seed: t_c or censored, where the plateau ended, measures at t_c
    curves: pd.DataFrame  # (seed, step): losses, accuracies, hidden-progress measures
    params: Params  # final weights (CPU)
    initial: Params  # initial weights (CPU)
    steps: int  # steps actually run (all models)
    seconds: float = 0.0
    subsets: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))


def sgd_step(params: Params, grads: Params, learning_rate: float, weight_decay: float) -> None:
    """In place, as torch.optim.SGD without momentum: p -= lr * (g + wd * p)."""
    for name, p in params.items():
        g = grads[name] + weight_decay * p if weight_decay else grads[name]
        p.sub_(learning_rate * g)


def evaluate(net: Network, params: Params, x: torch.Tensor, y: torch.Tensor, loss: str,
             chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and accuracy (sign(f) == y) of every model on ``x`` (N, n shared, or M, N, n), each (M,)."""
    total_loss = torch.zeros(y.shape[0], dtype=params["W"].dtype, device=y.device)
    correct = torch.zeros_like(total_loss)
    for start in range(0, y.shape[1], chunk):
        xs = x[..., start:start + chunk, :]
        f, _ = forward(net, params, xs)
        ys = y[:, start:start + chunk]
        total_loss += loss_terms(loss, f, ys)[0].sum(dim=1)
        correct += (f * ys > 0).sum(dim=1)
    return total_loss / y.shape[1], correct / y.shape[1]


def _subset(params: Params, index: torch.Tensor) -> Params:
    return {name: p[index] for name, p in params.items()}


def train_batched(net: Network, spec: TrainSpec, seeds: Sequence[int], *, device: str = "cpu",
                  dtype: torch.dtype = torch.float32,
                  on_log: Callable[[int, dict[str, float]], None] | None = None,
                  readback_steps: int | None = None) -> BatchedRuns:
    """Train one network per seed, all at once. ``on_log(step, summary)`` is called at each logged step.

    ``readback_steps``: at most this many steps run between two reads of the convergence state back to the
    host (None: 1 on the CPU, where a read costs nothing, `READBACK_STEPS` elsewhere); every value gives the
    same results."""
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r}: expected a non-empty list of distinct integers")
    start_time = time.perf_counter()
    M, B = len(seeds), spec.batch_size
    keys = seed_keys(seeds, STREAM_ONLINE if spec.online else STREAM_TRAIN_INDEX, device)
    subsets = secret_subsets(seeds, net.n, net.k)
    subsets_t = torch.as_tensor(subsets, device=device)
    relevant = relevant_mask(subsets, net.n, device=device)
    params = initial_params(net, seeds, dtype=dtype, device=device)
    initial = {name: p.clone() for name, p in params.items()}
    x_eval = evaluation_set(net.n, spec.eval_size, device=device, dtype=dtype)
    y_eval = parity_labels(x_eval, subsets_t)
    n_gap = min(spec.gap_samples, spec.eval_size)
    n_curve = min(spec.curve_samples, spec.eval_size)
    if not spec.online:
        x_train = training_set(seeds, net.n, spec.train_set_size, device=device, dtype=dtype)
        y_train = parity_labels(x_train, subsets_t)

    converged = torch.zeros(M, dtype=torch.bool, device=device)
    t_c = torch.full((M,), -1, dtype=torch.int64, device=device)
    memorized = torch.full((M,), -1, dtype=torch.int64, device=device)
    leave_chance = torch.zeros(M, dtype=torch.int64, device=device)
    acc_ema = torch.full((M,), 0.5, dtype=dtype, device=device)
    at_tc = {name: torch.full((M,), math.nan, dtype=dtype, device=device)
             for name in ("relevant_change_ratio", "weight_mass_ratio", "linf_change", "relevant_weight_share")}
    loss_sum = torch.zeros(M, dtype=dtype, device=device)
    loss_steps = 0
    log_steps = spec.log_steps()
    rows: list[np.ndarray] = []
    columns: list[str] = []

    def log(step: int) -> None:
        nonlocal loss_steps, columns
        eval_loss, eval_acc = evaluate(net, params, x_eval[:n_curve], y_eval[:, :n_curve], spec.loss)
        measures = weight_measures(params[net.first_layer], initial[net.first_layer], relevant)
        if n_gap:
            grad = population_gradient(net, params, x_eval[:n_gap], y_eval[:, :n_gap], spec.loss)
            measures |= fourier_gap(grad, relevant)
        train_loss = loss_sum / loss_steps if loss_steps else torch.full_like(loss_sum, math.nan)
        set_acc = (evaluate(net, params, x_train, y_train, spec.loss)[1] if not spec.online
                   else torch.full_like(loss_sum, math.nan))
        values = {"train_loss": train_loss, "eval_loss": eval_loss, "eval_accuracy": eval_acc,
                  "train_set_accuracy": set_acc, **measures}
        columns = list(values)
        block = torch.stack([v.to(dtype) for v in values.values()], dim=1).cpu().numpy()
        rows.append(np.column_stack([np.asarray(seeds), np.full(M, step), block]))
        loss_sum.zero_()
        loss_steps = 0
        if on_log is not None:
            on_log(step, {"eval_loss": float(eval_loss.mean()), "eval_accuracy": float(eval_acc.mean()),
                          "converged": int(converged.sum()), "models": M})

    def mark_converged(index: torch.Tensor, step: int) -> None:
        converged[index] = True
        t_c[index] = step
        sub = weight_measures(params[net.first_layer][index], initial[net.first_layer][index], relevant[index])
        for name in at_tc:
            at_tc[name][index] = sub[name].to(dtype)

    def train_step(step: int) -> torch.Tensor:
        """One SGD step of every model and its bookkeeping on the device (no host sync); the batch accuracy."""
        nonlocal loss_steps
        if spec.online:
            x = rademacher(keys, step, B, net.n, stream=None, device=device, dtype=dtype)
            y = parity_labels(x, subsets_t)
        else:
            index = uniform_indices(keys, step, B, spec.train_set_size, stream=None, device=device)
            x = torch.gather(x_train, 1, index[:, :, None].expand(-1, -1, net.n))
            y = torch.gather(y_train, 1, index)
        f, cache = forward(net, params, x)
        losses, dloss = loss_terms(spec.loss, f, y)
        sgd_step(params, backward(net, params, cache, x, dloss / B), spec.learning_rate, spec.weight_decay)

        batch_acc = (f * y > 0).to(dtype).mean(dim=1)
        acc_ema.mul_(1 - CHANCE_EMA).add_(CHANCE_EMA * batch_acc)
        leave_chance.copy_(torch.where((acc_ema < CHANCE_LEVEL) & ~converged, step, leave_chance))
        loss_sum.add_(losses.mean(dim=1))
        loss_steps += 1
        return batch_acc

    def check_candidates(step: int, batch_acc: torch.Tensor) -> None:
        """Online: a model that got its whole batch right is scored on the evaluation set (t_c to the step)."""
        candidates = torch.nonzero((batch_acc == 1) & ~converged).flatten()
        if len(candidates):
            acc = evaluate(net, _subset(params, candidates), x_eval, y_eval[candidates], spec.loss)[1]
            passed = candidates[acc >= spec.accuracy_target]
            if len(passed):
                mark_converged(passed, step)

    # Steps run in stretches with no host sync inside; a stretch ends at a logged step, an evaluation step
    # (finite sample) or after `run_length` steps. Online, the first step of a stretch with a candidate is
    # found on the device; the stretch is then rolled back to its start and rerun up to that step, whose
    # candidates are checked as if every step had been read back. The rerun is the same computation, so the
    # results do not depend on ``readback``; a stretch after a candidate starts again at one step.
    readback = readback_steps if readback_steps is not None else (
        1 if torch.device(device).type == "cpu" else READBACK_STEPS)
    if readback < 1:
        raise ValueError(f"readback_steps={readback_steps!r}: expected a positive integer or None")
    evaluations = set(range(spec.eval_every, spec.max_steps + 1, spec.eval_every)) if not spec.online else set()
    stops = sorted(log_steps | evaluations)
    log(0)
    step, run_length, done = 0, 1, False
    while step < spec.max_steps and not done:
        end = min(step + run_length, stops[bisect.bisect_right(stops, step)])
        saved = ({name: p.clone() for name, p in params.items()}, acc_ema.clone(), leave_chance.clone(),
                 loss_sum.clone(), loss_steps) if spec.online and end > step + 1 else None
        first = torch.full((), -1, dtype=torch.int64, device=device)  # the stretch's first candidate step
        for s in range(step + 1, end + 1):
            batch_acc = train_step(s)
            if spec.online:
                first = torch.where((first < 0) & ((batch_acc == 1) & ~converged).any(), s, first)
        hit = int(first) if spec.online else -1  # the stretch's one read-back
        if hit < 0:
            step, run_length = end, min(2 * run_length, readback)
        else:
            if hit < end:  # roll back and rerun up to the candidate's step
                for saved_p, p in zip(saved[0].values(), params.values(), strict=True):
                    p.copy_(saved_p)
                for saved_t, t in zip(saved[1:4], (acc_ema, leave_chance, loss_sum), strict=True):
                    t.copy_(saved_t)
                loss_steps = saved[4]
                for s in range(step + 1, hit + 1):
                    batch_acc = train_step(s)
            step, run_length = hit, 1
            check_candidates(step, batch_acc)
        evaluated = not spec.online and step % spec.eval_every == 0
        if evaluated:
            _, acc = evaluate(net, params, x_eval, y_eval, spec.loss)
            mark_converged(torch.nonzero((acc >= spec.accuracy_target) & ~converged).flatten(), step)
            set_acc = evaluate(net, params, x_train, y_train, spec.loss)[1]
            memorized.copy_(torch.where((set_acc >= 1) & (memorized < 0), step, memorized))

        # convergence changes only at a candidate's step or an evaluation: read it back only then
        done = spec.stop_when_converged and (hit >= 0 or evaluated) and bool(converged.all())
        if step in log_steps or done:
            log(step)

    curves = pd.DataFrame(np.concatenate(rows), columns=["seed", "step", *columns])
    curves[["seed", "step"]] = curves[["seed", "step"]].astype(np.int64)
    curves = curves.sort_values(["seed", "step"], kind="stable", ignore_index=True)
    t_c_np = t_c.cpu().numpy()
    runs = pd.DataFrame({
        "seed": seeds,
        "secret": [",".join(map(str, s)) for s in subsets],
        "converged": t_c_np >= 0,
        "t_c": np.where(t_c_np >= 0, t_c_np, np.nan),
        "censored": t_c_np < 0,
        "steps_trained": step,
        "leave_chance_step": leave_chance.cpu().numpy(),
        "memorized_step": np.where(memorized.cpu().numpy() >= 0, memorized.cpu().numpy(), np.nan),
        **{f"{name}_at_tc": value.cpu().numpy() for name, value in at_tc.items()},
    })
    last = curves.groupby("seed").tail(1).set_index("seed")
    runs["final_eval_accuracy"] = last.loc[seeds, "eval_accuracy"].to_numpy()
    return BatchedRuns(runs=runs, curves=curves, params={k: v.cpu() for k, v in params.items()},
                       initial={k: v.cpu() for k, v in initial.items()}, steps=step,
                       seconds=time.perf_counter() - start_time, subsets=subsets)
