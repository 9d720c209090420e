"""A language-model training loop you can read in one sitting (after nanoGPT's train.py).

AdamW with decoupled weight decay on matmul weights only, linear warmup then cosine decay to `min_lr`,
gradient accumulation, gradient clipping, bf16 autocast and torch.compile on GPU, a divergence guard, and
DistributedDataParallel when launched by torchrun (WORLD_SIZE > 1). Each rank takes its slice of the same
global batch (see `assets.lm.data`), so a torchrun run reproduces a one-process run with the same global batch.

The loop never waits for the device inside a step: losses are summed on the device and read back together (one
host sync, `assets.lm.readback`) only every `loss_readback_steps` steps and at evaluations, the next batch is
sampled and copied while the current one trains (`assets.lm.batches`), and `loss_chunk_rows` switches to a
chunked linear + cross-entropy that never builds the full float32 logits (`assets.lm.loss`). None of this
changes the logged numbers.

Works with any Hugging Face causal LM whose forward takes `input_ids` and returns `.logits`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from assets.lm.data import EpochOrder, TokenStream, rank_slice
from assets.lm.distributed import Dist, setup_distributed

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

CURVE_COLUMNS = ["step", "tokens", "train_loss", "val_loss", "learning_rate", "tokens_per_s"]


class TrainingDivergedError(RuntimeError):
    """Training produced a non-finite loss or a loss far above its starting value; nothing should be kept."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run. Steps count optimizer updates; batch_size is global, in sequences.

    Each optimizer step sees batch_size sequences, split into grad_accum_steps micro-batches and, under
    torchrun, across ranks: batch_size must be divisible by grad_accum_steps * world_size.
    context_length None uses the model's config.max_position_embeddings. log_interval: one curve row every
    this many steps (train_loss averaged over them), plus every evaluation step.
    eval_batches * (batch_size / grad_accum_steps) fixed validation windows are scored every eval_interval
    steps and after the last step. divergence_factor: after warmup, a logged train loss (a row's mean over its
    log_interval steps) above this multiple of the first row's raises TrainingDivergedError (None disables;
    non-finite losses always raise).
    deterministic None means True on CPU (torch.use_deterministic_algorithms) and False on CUDA.
    sampling: "random" draws training windows uniformly with replacement (nanoGPT); "epochs" visits
    non-overlapping windows once per epoch in a fresh order each epoch (`assets.lm.data.EpochOrder`).
    loss_chunk_rows None: the plain loss (full logits upcast to float32); N: the chunked linear + cross-entropy
    of `assets.lm.loss`, N rows of logits at a time (same loss and gradients up to float rounding).
    loss_readback_steps: the train losses stay on the device and are read back, the divergence guard checked and
    the rows handed to on_log, every this many steps, at evaluation steps and after the last step (a diverged
    run raises then, naming the step where it diverged). Rows read back together share one tokens_per_s.
    fused_projections: train a copy with fused q/k/v and gate/up matmuls and write the weights back after the
    run, also after an error (`assets.lm.fused.fused_view`: None on CUDA where possible, True required).
    """

    max_steps: int = 200
    batch_size: int = 16
    grad_accum_steps: int = 1
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 20
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    eval_interval: int = 50
    eval_batches: int = 4
    log_interval: int = 1
    context_length: int | None = None
    seed: int = 0
    device: str = "cpu"
    bf16: bool = False
    compile: bool = False
    divergence_factor: float | None = 3.0
    deterministic: bool | None = None
    sampling: str = "random"
    loss_chunk_rows: int | None = None
    loss_readback_steps: int = 50
    fused_projections: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))  # run config may hand over a list

        def positive_int(field: str) -> None:
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TrainConfig.{field} must be a positive int, got {value!r}")

        for field in (
            "max_steps",
            "batch_size",
            "grad_accum_steps",
            "eval_interval",
            "eval_batches",
            "log_interval",
            "loss_readback_steps",
        ):
            positive_int(field)
        for field in ("context_length", "loss_chunk_rows"):
            if getattr(self, field) is not None:
                positive_int(field)
        if self.batch_size % self.grad_accum_steps:
            raise ValueError(
                f"TrainConfig.batch_size ({self.batch_size}) must be divisible by "
                f"TrainConfig.grad_accum_steps ({self.grad_accum_steps})"
            )
        if not isinstance(self.warmup_steps, int) or not (0 <= self.warmup_steps <= self.max_steps):
            raise ValueError(
                f"TrainConfig.warmup_steps must be an int in [0, max_steps], got {self.warmup_steps!r}"
            )
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(
                f"TrainConfig.learning_rate must be a positive finite float, got {self.learning_rate!r}"
            )
        if not (0 <= self.min_lr <= self.learning_rate):
            raise ValueError(f"TrainConfig.min_lr must be in [0, learning_rate], got {self.min_lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two floats in [0, 1), got {self.betas!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig.grad_clip must be None or > 0, got {self.grad_clip!r}")
        if self.divergence_factor is not None and not self.divergence_factor > 1:
            raise ValueError(
                f"TrainConfig.divergence_factor must be None or > 1, got {self.divergence_factor!r}"
            )
        if self.fused_projections not in (None, True, False):
            raise ValueError(f"TrainConfig.fused_projections must be None, True or False, got "
                             f"{self.fused_projections!r}")
        if self.sampling not in ("random", "epochs"):
            raise ValueError(f"TrainConfig.sampling must be 'random' or 'epochs', got {self.sampling!r}")
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise ValueError(f"TrainConfig.device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")


@dataclass
class TrainResult:
    """What one training run measured (`train` returns it): curve (CURVE_COLUMNS, one row per logged step, val_loss
    NaN where not evaluated) and totals. `assets.lm.family.FittedModel` extends it once the model is saved."""

    curve: pd.DataFrame
    final_val_loss: float
    tokens_seen: int
    seconds: float
    steps: int
    epochs: float = float("nan")  # passes over the training windows ("epochs" sampling; NaN for "random")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (1-based: step 1 is the first update).

    Linear warmup learning_rate * step / warmup_steps for step <= warmup_steps, then cosine decay from
    learning_rate to min_lr, reaching min_lr exactly at step == max_steps (and staying there after).
    """
    if step <= cfg.warmup_steps and cfg.warmup_steps > 0:
        return cfg.learning_rate * step / cfg.warmup_steps
    decay_steps = cfg.max_steps - cfg.warmup_steps
    ratio = min(1.0, max(0.0, (step - cfg.warmup_steps) / decay_steps)) if decay_steps > 0 else 1.0
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.learning_rate - cfg.min_lr)


def configure_optimizer(model: torch.nn.Module, cfg: TrainConfig, device_type: str) -> torch.optim.Optimizer:
    """AdamW with weight decay on matmul weights only: norms, biases and embeddings are not decayed."""
    import torch

    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    decay, no_decay = [], []
    for _, p in model.named_parameters():  # named_parameters de-duplicates tied weights
        if not p.requires_grad:
            continue
        (no_decay if p.dim() < 2 or id(p) in embedding_ids else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = True if device_type == "cuda" else None  # the fused CUDA kernel is the fastest AdamW there
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=cfg.betas, fused=fused)


def next_token_loss(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy of y given x; logits are upcast to float32 so bf16 autocast does not hurt the loss."""
    from assets.lm import loss

    return loss.next_token_loss(model, x, y, reduction=reduction)


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Turn on torch's deterministic algorithms for the run and restore the caller's setting afterwards."""
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)


def estimate_loss(
    model: torch.nn.Module,
    windows: tuple[torch.Tensor, torch.Tensor],
    batch_size: int,
    *,
    device: str = "cpu",
    bf16: bool = False,
    rank: int = 0,
    world_size: int = 1,
    loss: Callable[..., torch.Tensor] | None = None,
) -> float:
    """Mean next-token loss over fixed (x, y) windows, scored in chunks of `batch_size` rows.

    loss(x, y, reduction) scores a chunk (default: the plain `next_token_loss` of `model`). Under DDP each rank scores its slice of every chunk (batch_size must be divisible by world_size) and the
    summed losses are all-reduced, so the result equals the one-process value.
    """
    import torch

    dist_ = Dist(rank, world_size)
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of token losses, token count)
    x_all, y_all = windows
    try:
        with (
            torch.no_grad(),
            torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16),
        ):
            for start in range(0, x_all.size(0), batch_size):
                chunk = slice(start, min(start + batch_size, x_all.size(0)))
                rows = rank_slice(chunk.stop - chunk.start, rank, world_size)
                x, y = x_all[chunk][rows].to(device), y_all[chunk][rows].to(device)
                summed = loss(x, y, "sum") if loss is not None else next_token_loss(model, x, y, "sum")
                total[0] += summed.double()
                total[1] += y.numel()
    finally:
        model.train(was_training)
    dist_.all_reduce_sum(total)
    return float(total[0] / total[1])


def train(
    model: torch.nn.Module,
    train_tokens: np.ndarray,
    val_tokens: np.ndarray,
    cfg: TrainConfig,
    on_log: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train `model` in place on random windows of `train_tokens`; score fixed windows of `val_tokens`.

    Returns the loss curve and totals. Raises TrainingDivergedError (naming the step and loss) on a
    non-finite loss or, after warmup, a logged train loss above divergence_factor x the first logged row's. Under
    torchrun every rank returns the same (all-reduced) curve; only rank 0 calls `on_log(row)`.
    """
    import torch

    dist_ = setup_distributed(cfg.device)
    try:
        deterministic = (
            cfg.deterministic if cfg.deterministic is not None else not cfg.device.startswith("cuda")
        )
        with _deterministic(deterministic):
            return _train(model, train_tokens, val_tokens, cfg, on_log, dist_)
    finally:
        if dist_.created_group:
            torch.distributed.destroy_process_group()


def _train(model, train_tokens, val_tokens, cfg: TrainConfig, on_log, dist_: Dist) -> TrainResult:
    import torch

    device = cfg.device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("TrainConfig.device is 'cuda' but torch.cuda.is_available() is False")
        if dist_.world_size > 1:
            device = f"cuda:{dist_.local_rank}"
        torch.cuda.set_device(device if ":" in device else "cuda:0")

    max_positions = getattr(model.config, "max_position_embeddings", None)
    context_length = cfg.context_length or max_positions
    if context_length is None:
        raise ValueError(
            "TrainConfig.context_length is None and the model config has no max_position_embeddings"
        )
    if max_positions is not None and context_length > max_positions:
        raise ValueError(
            f"TrainConfig.context_length ({context_length}) exceeds the model's max_position_embeddings "
            f"({max_positions})"
        )
    train_stream = TokenStream(train_tokens, context_length, field="train_tokens")
    val_stream = TokenStream(val_tokens, context_length, field="val_tokens")
    micro_batch = cfg.batch_size // cfg.grad_accum_steps  # global rows per micro-step
    if micro_batch % dist_.world_size:
        raise ValueError(
            f"TrainConfig.batch_size ({cfg.batch_size}) must be divisible by grad_accum_steps * world_size "
            f"({cfg.grad_accum_steps} * {dist_.world_size})"
        )

    from assets.lm.fused import training_view

    with training_view(model, cfg.fused_projections, device) as trained:
        return _loop(trained, cfg, device, dist_, train_stream, val_stream, on_log)


def _loop(model, cfg: TrainConfig, device: str, dist_: Dist, train_stream, val_stream, on_log) -> TrainResult:
    """The training loop proper on `model` (already on `device`): see `train`."""
    import torch

    from assets.lm.batches import PrefetchedBatches
    from assets.lm.loss import NextTokenLoss
    from assets.lm.readback import DeviceScalars

    device_type = device.split(":")[0]
    context_length = train_stream.context_length
    micro_batch = cfg.batch_size // cfg.grad_accum_steps  # global rows per micro-step
    val_windows = val_stream.fixed_windows(cfg.eval_batches * micro_batch)
    model.train()
    optimizer = configure_optimizer(model, cfg, device_type)
    # The loss is the output of the module that is compiled and DDP-wrapped, so a chunked loss runs inside it.
    loss_module = NextTokenLoss(model, cfg.loss_chunk_rows)
    runner = torch.compile(loss_module) if cfg.compile else loss_module
    if dist_.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(
            runner, device_ids=[dist_.local_rank] if device_type == "cuda" else None
        )
    scorer = runner.module if dist_.world_size > 1 else runner  # evaluation needs no gradient hooks
    autocast = torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=cfg.bf16)
    generator = torch.Generator().manual_seed(cfg.seed)
    order = EpochOrder(train_stream, generator) if cfg.sampling == "epochs" else None
    batches = iter(PrefetchedBatches(train_stream, micro_batch, cfg.max_steps * cfg.grad_accum_steps, generator,
                                     device, order=order, rank=dist_.rank, world_size=dist_.world_size))
    tokens_per_step = cfg.batch_size * context_length

    def evaluate() -> float:
        return estimate_loss(model, val_windows, micro_batch, device=device, bf16=cfg.bf16, rank=dist_.rank,
                             world_size=dist_.world_size, loss=scorer)

    rows: list[dict] = []
    losses = DeviceScalars(cfg.loss_readback_steps)  # (row, steps summed) -> summed train loss, on the device
    first_loss: list[float] = []  # the first logged train loss, the divergence guard's reference
    val_loss = float("nan")
    interval_loss = torch.zeros((), device=device)
    interval_steps, window_steps = 0, 0
    started = window_start = time.perf_counter()

    def read_back() -> list[dict]:
        """One host sync: read the waiting losses, time the window, run the guard; the rows, in order."""
        summed_losses = losses.read_back(lambda summed: dist_.all_reduce_sum(summed) / dist_.world_size)
        tokens_per_s = window_steps * tokens_per_step / max(time.perf_counter() - window_start, 1e-9)
        for (row, n_steps), summed in summed_losses:
            row.update(train_loss=summed / n_steps, tokens_per_s=tokens_per_s)
            _guard(row["step"], row["train_loss"], first_loss[0] if first_loss else None, cfg, "train")
            first_loss[:] = first_loss or [row["train_loss"]]
        return [row for (row, _), _ in summed_losses]

    for step in range(1, cfg.max_steps + 1):
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        for micro in range(cfg.grad_accum_steps):
            x, y = next(batches)  # already on the device; the next one is on its way
            # Gradients are all-reduced only on the last micro-step; the others accumulate locally.
            last = micro == cfg.grad_accum_steps - 1
            sync = runner.no_sync() if dist_.world_size > 1 and not last else contextlib.nullcontext()
            with sync:
                with autocast:
                    loss = runner(x, y)
                (loss / cfg.grad_accum_steps).backward()
            interval_loss += loss.detach() / cfg.grad_accum_steps
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        interval_steps += 1
        window_steps += 1

        do_eval = step % cfg.eval_interval == 0 or step == cfg.max_steps
        if do_eval or step % cfg.log_interval == 0:
            row = dict.fromkeys(CURVE_COLUMNS, float("nan"))
            row.update(step=step, tokens=step * tokens_per_step, learning_rate=lr)
            losses.add((row, interval_steps), interval_loss)
            interval_loss, interval_steps = torch.zeros((), device=device), 0
        if not (do_eval or losses.due(step)):
            continue
        logged = read_back()
        if do_eval:  # the evaluation step is the last row read back
            val_loss = logged[-1]["val_loss"] = evaluate()
            _guard(step, val_loss, None, cfg, "validation")
        rows.extend(logged)
        if on_log is not None and dist_.rank == 0:
            for row in logged:
                on_log(dict(row))
        window_start, window_steps = time.perf_counter(), 0

    curve = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return TrainResult(
        curve=curve,
        final_val_loss=float(val_loss),
        tokens_seen=cfg.max_steps * tokens_per_step,
        seconds=time.perf_counter() - started,
        steps=cfg.max_steps,
        epochs=order.epochs_completed if order is not None else float("nan"),
    )


def _guard(step: int, loss: float, initial_loss: float | None, cfg: TrainConfig, which: str) -> None:
    """Raise TrainingDivergedError on a non-finite loss, or a post-warmup loss far above the initial one."""
    if not math.isfinite(loss):
        raise TrainingDivergedError(f"{which} loss is {loss} at step {step} (lr {lr_at(step, cfg):.3g})")
    if (
        cfg.divergence_factor is not None
        and initial_loss is not None
        and step > cfg.warmup_steps
        and loss > cfg.divergence_factor * initial_loss
    ):
        raise TrainingDivergedError(
            f"{which} loss {loss:.4g} at step {step} exceeds divergence_factor={cfg.divergence_factor} x "
            f"initial loss {initial_loss:.4g}"
        )
