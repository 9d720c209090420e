"""Supervised fine-tuning on conversations, with the loss on the assistant's tokens only.

A conversation is rendered by the chat template (`assets.chat.format`), and every token the assistant
writes (reasoning, `<|/reasoning|>`, `<|answer|>`, answer, `<|end|>`) is a target; the system, developer,
user and data turns and the role headers are context only (label -100, which cross-entropy ignores).
Rows are right-padded to a fixed length; with causal attention, padding after a sequence changes nothing
before it, so no attention mask is needed.

The loop is the LM family's (`assets.lm.training`): its `TrainConfig`, AdamW with decay on matmul weights
only (`configure_optimizer`), linear warmup then cosine decay (`lr_at`), gradient clipping, bf16 autocast
and torch.compile on GPU, and its float32 `next_token_loss`. Only the batch source differs: the LM trainer
cuts windows from one token stream, SFT draws whole conversations (a fresh permutation each epoch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from assets.chat.format import encode_conversation
from assets.lm.family import FittedModel
from assets.lm.training import (
    CURVE_COLUMNS,
    TrainConfig,
    TrainingDivergedError,
    TrainResult,
    configure_optimizer,
    lr_at,
    next_token_loss,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

IGNORE_INDEX = -100


@dataclass
class SFTData:
    """Conversations as fixed-length rows: input_ids [N, T] (right-padded) and labels [N, T], where
    labels[i, t] = input_ids[i, t] on assistant tokens and -100 elsewhere (the Hugging Face convention:
    aligned with input_ids, the shift to next-token targets happens in the loss). lengths [N]: real tokens."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    lengths: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.size(0))

    @property
    def n_target_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


def sft_data(
    tokenizer: Any, conversations: Sequence[Sequence[Mapping[str, Any]]], context_length: int
) -> SFTData:
    """Encode conversations with the chat template and mask everything but the assistant's tokens.

    Raises ValueError naming the first conversation longer than `context_length` tokens (a cut-off
    conversation would teach the model to stop mid-answer).
    """
    import torch

    if not isinstance(context_length, int) or context_length < 2:
        raise ValueError(f"context_length must be an int >= 2, got {context_length!r}")
    if not conversations:
        raise ValueError("sft_data needs at least one conversation")
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(conversations), context_length), pad, dtype=torch.long)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    lengths = torch.zeros(len(conversations), dtype=torch.long)
    for i, messages in enumerate(conversations):
        ids, mask = encode_conversation(tokenizer, messages)
        if len(ids) > context_length:
            raise ValueError(
                f"conversations[{i}] has {len(ids)} tokens, more than context_length="
                f"{context_length}; raise context_length or shorten the conversation"
            )
        row = torch.tensor(ids, dtype=torch.long)
        input_ids[i, : len(ids)] = row
        labels[i, : len(ids)] = row.masked_fill(torch.tensor(mask) == 0, IGNORE_INDEX)
        lengths[i] = len(ids)
    return SFTData(input_ids, labels, lengths)


def _batch(data: SFTData, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) for next-token loss, cut to the longest row of this batch (padding columns cost compute)."""
    width = int(data.lengths[rows].max())
    ids, labels = data.input_ids[rows, :width], data.labels[rows, :width]
    return ids[:, :-1], labels[:, 1:]


def sft_loss(
    model: Any, data: SFTData, batch_size: int = 64, *, device: str = "cpu", bf16: bool = False,
    loss: Callable[..., torch.Tensor] | None = None,
) -> float:
    """Mean cross-entropy per assistant token over all of `data` (nats), in eval mode, no gradient.

    loss(x, y, reduction) scores a batch (default: `next_token_loss` of `model`, a Hugging Face causal LM).
    The batch losses are summed in float64 on the device and read back once."""
    import torch

    from assets.lm.batches import to_device

    was_training = model.training
    model.eval()
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    try:
        with torch.no_grad(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            for start in range(0, len(data), batch_size):
                x, y = _batch(data, torch.arange(start, min(start + batch_size, len(data))))
                count += int((y != IGNORE_INDEX).sum())  # counted on the host, before the copy
                x, y = to_device(x, device), to_device(y, device)
                total += (loss(x, y, "sum") if loss is not None else next_token_loss(model, x, y, "sum")).double()
    finally:
        model.train(was_training)
    return float(total) / max(count, 1)


def fit_sft(
    model: Any,
    train: SFTData,
    cfg: TrainConfig,
    val: SFTData | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Fine-tune `model` in place on `train` conversations for cfg.max_steps optimizer steps.

    Each step takes cfg.batch_size conversations (in cfg.grad_accum_steps micro-batches), visiting every
    conversation once per epoch in a seeded order. The loss is the mean over the step's assistant tokens, all
    its micro-batches together (a mean per micro-batch, averaged, would weigh a token of a short answer more and
    make grad_accum_steps change the objective). `val` is scored every cfg.eval_interval steps and after the
    last. The curve has the LM trainer's CURVE_COLUMNS; "tokens" counts the real (non-padding) tokens read. As
    in the LM trainer, the train losses stay on the device and are read back (one host sync) every
    cfg.loss_readback_steps steps, at evaluations and
    after the last step; rows read back together share one tokens_per_s, and on_log gets them then. Raises
    TrainingDivergedError on a non-finite loss when it is read back, naming the step of the row (the rows
    before it are logged first). The model is left in train mode, as the LM trainer leaves it.
    cfg.fused_projections trains the fused view as the LM trainer does (`assets.lm.fused.training_view`).
    """
    from assets.lm.fused import training_view

    with training_view(model, cfg.fused_projections, cfg.device) as trained:
        return _fit(trained, train, cfg, val, on_log)


def _fit(model: Any, train: SFTData, cfg: TrainConfig, val: SFTData | None, on_log) -> TrainResult:
    """`fit_sft`'s loop on `model` (already on cfg.device): a Hugging Face model or its fused view."""
    import torch

    from assets.lm.batches import to_device
    from assets.lm.loss import NextTokenLoss
    from assets.lm.readback import DeviceScalars

    device = cfg.device
    device_type = device.split(":")[0]
    model.train()
    optimizer = configure_optimizer(model, cfg, device_type)
    loss_module = NextTokenLoss(model)  # what is compiled; labels of -100 are ignored by its cross-entropy
    runner = torch.compile(loss_module) if cfg.compile else loss_module
    autocast = torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=cfg.bf16)
    generator = torch.Generator().manual_seed(cfg.seed)
    micro = cfg.batch_size // cfg.grad_accum_steps
    order, position = torch.randperm(len(train), generator=generator), 0

    def next_rows(n: int) -> torch.Tensor:
        nonlocal order, position
        taken = []
        while n > 0:
            if position == len(order):
                order, position = torch.randperm(len(train), generator=generator), 0
            chunk = order[position : position + n]
            position += len(chunk)
            n -= len(chunk)
            taken.append(chunk)
        return torch.cat(taken)

    rows_out: list[dict] = []
    losses = DeviceScalars(cfg.loss_readback_steps)  # (row, steps summed) -> summed train loss, on the device
    tokens, interval_steps, interval_tokens, window_tokens = 0, 0, 0, 0
    interval_loss = torch.zeros((), device=device)
    started = window_start = time.perf_counter()
    val_loss = float("nan")

    def publish(rows: list[dict]) -> None:
        rows_out.extend(rows)
        for row in rows if on_log is not None else ():
            on_log(dict(row))

    def read_back() -> list[dict]:
        """One host sync: the waiting rows with their train losses, in order; raises at a non-finite loss."""
        summed_losses = losses.read_back()
        tokens_per_s = window_tokens / max(time.perf_counter() - window_start, 1e-9)
        done = []
        for (row, n_steps), summed in summed_losses:
            row.update(train_loss=summed / n_steps, tokens_per_s=tokens_per_s)
            if not math.isfinite(row["train_loss"]):
                publish(done)  # what a step-by-step check would have logged before raising
                raise TrainingDivergedError(
                    f"SFT loss is {row['train_loss']} at step {row['step']} (lr {row['learning_rate']:.3g})"
                )
            done.append(row)
        return done

    for step in range(1, cfg.max_steps + 1):
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # the step's loss is the mean over all its assistant tokens, whichever micro-batch holds them: each
        # micro-batch's summed loss over the step's count, so grad_accum_steps does not change the objective
        parts = [next_rows(micro) for _ in range(cfg.grad_accum_steps)]
        batches = [_batch(train, rows) for rows in parts]
        targets = max(sum(int((y != IGNORE_INDEX).sum()) for _, y in batches), 1)  # counted on the host
        for rows, (x, y) in zip(parts, batches, strict=True):
            with autocast:
                loss = runner(to_device(x, device), to_device(y, device), "sum") / targets
            loss.backward()
            interval_loss += loss.detach()
            interval_tokens += int(train.lengths[rows].sum())
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        interval_steps += 1
        do_eval = val is not None and (step % cfg.eval_interval == 0 or step == cfg.max_steps)
        if do_eval or step % cfg.log_interval == 0 or step == cfg.max_steps:
            tokens += interval_tokens
            window_tokens += interval_tokens
            row = dict.fromkeys(CURVE_COLUMNS, float("nan"))
            row.update(step=step, tokens=tokens, learning_rate=lr)
            losses.add((row, interval_steps), interval_loss)
            interval_loss, interval_steps, interval_tokens = torch.zeros((), device=device), 0, 0
        if not (do_eval or step == cfg.max_steps or losses.due(step)):
            continue
        logged = read_back()
        if do_eval:  # the evaluation step is the last row read back
            val_loss = logged[-1]["val_loss"] = sft_loss(model, val, micro, device=device, bf16=cfg.bf16,
                                                         loss=loss_module)
        publish(logged)
        window_start, window_tokens = time.perf_counter(), 0
    return TrainResult(
        curve=pd.DataFrame(rows_out, columns=CURVE_COLUMNS),
        final_val_loss=float(val_loss),
        tokens_seen=tokens,
        seconds=time.perf_counter() - started,
        steps=cfg.max_steps,
    )


def fine_tune(
    model: Any,
    tokenizer: Any,
    train: SFTData,
    cfg: TrainConfig,
    out_dir: str | Path,
    val: SFTData | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> FittedModel:
    """`fit_sft`, then the model and its tokenizer (chat template included) saved to `out_dir`: the LM family's
    `FittedModel` (what `assets.lm.registration` logs and registers)."""
    from assets.lm.model import count_parameters, save_checkpoint

    result = fit_sft(model, train, cfg, val, on_log=on_log)
    save_checkpoint(model, tokenizer, out_dir, overwrite=True)
    return FittedModel.saved(result, checkpoint_dir=Path(out_dir), parameters=count_parameters(model),
                             non_embedding_parameters=count_parameters(model, non_embedding=True),
                             source="trained", vocab_size=len(tokenizer))
