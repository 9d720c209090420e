"""The training grid: model size N × unique tokens U_D × epochs, each run trained with the LM family's trainer.

Unique data. The corpus' train split is encoded once and cut into chunks of ``chunk_tokens`` tokens, drawn in
a seeded random order (`token_chunks`). A run with U_D unique tokens trains on the first U_D tokens of that
draw (`unique_pool`), so the pools are nested like the paper's subsets of C4 and each is a sample of the
whole corpus rather than a few files. A run trains for D = U_D × epochs tokens (rounded to whole optimizer
steps; the actual D and epochs are recorded). Held-out loss is measured on the corpus' validation split,
which no run ever trains on.

Epochs are exact passes by default (`sampling="epochs"`): the trainer cuts the pool into non-overlapping windows
and shows each once per epoch in a fresh order, so after e epochs every window has been seen e times, as in the
paper's repeated data. `sampling="random"` draws windows with replacement instead (Poisson(e) repeats).

A grid cell with epochs = 1 and U_D = D is a unique-data run: the baseline that repeated data is compared
with, and the runs the Chinchilla stage of the fit uses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from assets.lm.model import ModelSize


def token_label(n: int) -> str:
    """1024 -> '1k', 1048576 -> '1m', 1536 -> '1536' (asset-name friendly)."""
    for unit, scale in (("m", 2**20), ("k", 2**10)):
        if n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


@dataclass(frozen=True)
class GridCell:
    """One training run of the grid: a model size trained for ``epochs`` passes over ``unique_tokens``."""

    size: ModelSize
    unique_tokens: int
    epochs: int

    def __post_init__(self) -> None:
        if not isinstance(self.unique_tokens, int) or self.unique_tokens < 1:
            raise ValueError(f"GridCell.unique_tokens must be a positive int, got {self.unique_tokens!r}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"GridCell.epochs must be a positive int, got {self.epochs!r}")

    @property
    def tokens(self) -> int:
        return self.unique_tokens * self.epochs

    @property
    def name(self) -> str:
        return f"scaling_run_{self.size.name}_u{token_label(self.unique_tokens)}_e{self.epochs}"


def grid_cells(sizes: Sequence[ModelSize], unique_budgets: Sequence[int], epochs: Sequence[int],
               unique_baselines: Sequence[int] = ()) -> list[GridCell]:
    """Every (size, U_D, epochs), plus single-epoch unique-data runs at the D values in ``unique_baselines``."""
    if not sizes or not unique_budgets or not epochs:
        raise ValueError("sizes, unique_budgets and epochs must each name at least one value")
    names = [s.name for s in sizes]
    if len(set(names)) != len(names):
        raise ValueError(f"model size names must be unique, got {names}")
    cells: dict[tuple[str, int, int], GridCell] = {}
    for size in sizes:
        for u in unique_budgets:
            for e in epochs:
                cells.setdefault((size.name, int(u), int(e)), GridCell(size, int(u), int(e)))
        for d in unique_baselines:
            cells.setdefault((size.name, int(d), 1), GridCell(size, int(d), 1))
    return sorted(cells.values(), key=lambda c: (names.index(c.size.name), c.unique_tokens, c.epochs))


# The grid per profile: every (size, U_D, epochs), plus unique-data runs (epochs = 1) at the D values listed.
GRIDS: dict[str, dict] = {
    "tiny": {"sizes": [ModelSize(name="xs", d_model=16, n_layers=1, n_heads=2, d_ff=32, context_length=32),
                       ModelSize(name="s", d_model=32, n_layers=1, n_heads=2, d_ff=64, context_length=32)],
             "unique_budgets": [1024], "epochs": [1, 2, 4], "unique_baselines": [2048, 4096]},
    "demo": {"sizes": [ModelSize(name="s", d_model=32, n_layers=1, n_heads=2, d_ff=64, context_length=64),
                       ModelSize(name="m", d_model=48, n_layers=2, n_heads=4, d_ff=96, context_length=64)],
             "unique_budgets": [4096, 8192], "epochs": [1, 2, 4, 8, 16], "unique_baselines": [16384, 32768, 65536]},
    "gpu": {"sizes": [ModelSize(name="8m", d_model=256, n_layers=4, n_heads=4, d_ff=1024, context_length=256),
                      ModelSize(name="20m", d_model=384, n_layers=6, n_heads=6, d_ff=1536, context_length=256),
                      ModelSize(name="42m", d_model=512, n_layers=8, n_heads=8, d_ff=2048, context_length=256),
                      ModelSize(name="76m", d_model=640, n_layers=10, n_heads=10, d_ff=2560, context_length=256)],
            "unique_budgets": [2**17, 2**19], "epochs": [1, 2, 4, 8, 16, 32], "unique_baselines": [2**18, 2**20]},
}


# ------------------------------------------------------------------------------------------------ token pools
def token_chunks(train_tokens: np.ndarray, val_tokens: np.ndarray, chunk_tokens: int, seed: int) -> pd.DataFrame:
    """The encoded corpus as a table: train chunks in their seeded draw order, then the validation stream.

    Columns: split ("train"/"validation"), draw (order within the split), n_tokens, tokens (int32 ids).
    The validation split is kept whole in one row: it is the held-out set, in its original order.
    """
    train_tokens, val_tokens = np.asarray(train_tokens), np.asarray(val_tokens)
    if not isinstance(chunk_tokens, int) or chunk_tokens < 2:
        raise ValueError(f"chunk_tokens must be an int >= 2, got {chunk_tokens!r}")
    n_chunks = len(train_tokens) // chunk_tokens
    if n_chunks < 1 or not len(val_tokens):
        raise ValueError(f"need at least one train chunk of {chunk_tokens} tokens and a validation split; got "
                         f"{len(train_tokens)} train and {len(val_tokens)} validation tokens")
    order = np.random.default_rng(seed).permutation(n_chunks)
    chunks = [train_tokens[i * chunk_tokens:(i + 1) * chunk_tokens].astype(np.int32) for i in order]
    rows = [{"split": "train", "draw": k, "n_tokens": chunk_tokens, "tokens": c} for k, c in enumerate(chunks)]
    rows.append({"split": "validation", "draw": 0, "n_tokens": len(val_tokens), "tokens": val_tokens.astype(np.int32)})
    return pd.DataFrame(rows)


def available_unique_tokens(chunks: pd.DataFrame) -> int:
    return int(chunks.loc[chunks["split"] == "train", "n_tokens"].sum())


def unique_pool(chunks: pd.DataFrame, unique_tokens: int) -> np.ndarray:
    """The run's whole training data: the first ``unique_tokens`` + 1 train tokens in draw order, ``unique_tokens``
    to read and one more, the last window's target. A window of T inputs needs T + 1 tokens, so a pool of exactly
    U tokens holds only U/T - 1 whole windows: its last T tokens would never be read and every "epoch" would
    repeat a window (the grid's unique data and epochs were both off by one window until 1 Dec 2026)."""
    train = chunks[chunks["split"] == "train"].sort_values("draw")
    available = int(train["n_tokens"].sum())
    if unique_tokens + 1 > available:
        raise ValueError(f"unique_tokens={unique_tokens} exceeds the corpus' {available} train tokens less the "
                         "last window's target; lower the grid's unique budgets or use a larger corpus")
    need = math.ceil((unique_tokens + 1) / int(train["n_tokens"].iloc[0]))
    return np.concatenate([np.asarray(t, dtype=np.int32) for t in train["tokens"].iloc[:need]])[:unique_tokens + 1]


def held_out_tokens(chunks: pd.DataFrame) -> np.ndarray:
    val = chunks[chunks["split"] == "validation"].sort_values("draw")
    if val.empty:
        raise ValueError("the token table has no validation rows")
    return np.concatenate([np.asarray(t, dtype=np.int32) for t in val["tokens"]])


def cell_datasets(cell: GridCell, chunks: pd.DataFrame, source: str = "scaling_tokens") -> list:
    """A grid run's MLflow dataset inputs: its unique pool (train) and the held-out stream (validation)."""
    from assets.lm.registration import DatasetInput

    return [DatasetInput.of_tokens(f"{cell.name}-unique-pool", unique_pool(chunks, cell.unique_tokens), "train", source),
            DatasetInput.of_tokens("scaling-held-out", held_out_tokens(chunks), "validation", source)]


# ------------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class RunSettings:
    """Optimisation of every grid run (the trainer's `TrainConfig` minus what the cell decides)."""

    batch_size: int = 8
    learning_rate: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_fraction: float = 0.05
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_windows: int = 128
    evaluations: int = 1
    seed: int = 0
    device: str = "cpu"
    bf16: bool = False
    compile: bool = False
    sampling: str = "epochs"

    def __post_init__(self) -> None:
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"RunSettings.warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"RunSettings.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        for name in ("batch_size", "eval_windows", "evaluations"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RunSettings.{name} must be a positive int, got {value!r}")

    def train_config(self, steps: int, context_length: int):
        from assets.lm.training import TrainConfig

        eval_batches = max(1, math.ceil(self.eval_windows / self.batch_size))
        return TrainConfig(
            max_steps=steps, batch_size=self.batch_size, learning_rate=self.learning_rate,
            min_lr=self.learning_rate * self.min_lr_ratio,
            warmup_steps=min(steps, math.ceil(self.warmup_fraction * steps)),
            weight_decay=self.weight_decay, grad_clip=self.grad_clip,
            eval_interval=max(1, steps // self.evaluations), eval_batches=eval_batches,
            context_length=context_length, seed=self.seed, device=self.device, bf16=self.bf16,
            compile=self.compile, sampling=self.sampling,
            # Heavily repeated data can overfit; that is the measurement, not a divergence.
            divergence_factor=None,
        )


def steps_for(cell: GridCell, settings: RunSettings) -> int:
    """Optimizer steps that make D = U_D × epochs tokens (nearest whole step, at least one)."""
    per_step = settings.batch_size * cell.size.context_length
    steps = round(cell.tokens / per_step)
    if steps < 1:
        raise ValueError(f"{cell.name}: D = {cell.tokens} tokens is less than one step of "
                         f"{per_step} tokens (batch_size × context_length); raise unique_tokens or epochs")
    return steps


@dataclass
class CellResult:
    """What one grid run measured, and where its checkpoint is."""

    cell: GridCell
    parameters: int
    non_embedding_parameters: int
    tokens: int
    steps: int
    held_out_loss: float
    final_train_loss: float
    seconds: float
    curve: pd.DataFrame
    checkpoint_dir: Path | None

    @property
    def epochs(self) -> float:
        return self.tokens / self.cell.unique_tokens

    def metrics(self) -> dict[str, float]:
        """What MLflow records of the run and the UI shows."""
        return {"held_out_loss": self.held_out_loss, "parameters": self.parameters, "tokens": self.tokens,
                "epochs": self.epochs}

    def record(self) -> dict[str, Any]:
        return {"run": self.cell.name, "size": self.cell.size.name, "parameters": self.parameters,
                "non_embedding_parameters": self.non_embedding_parameters,
                "unique_tokens": self.cell.unique_tokens, "epochs": self.epochs,
                "nominal_epochs": self.cell.epochs, "tokens": self.tokens, "steps": self.steps,
                "held_out_loss": self.held_out_loss, "final_train_loss": self.final_train_loss,
                "train_seconds": self.seconds}


def train_cell(cell: GridCell, chunks: pd.DataFrame, tokenizer: Any, settings: RunSettings,
               checkpoint_dir: str | Path | None = None,
               on_log: Callable[[dict], None] | None = None) -> CellResult:
    """Train a fresh model of ``cell.size`` for D = U_D × epochs tokens on its unique pool; score held-out data."""
    from assets.lm.model import build_model, count_parameters, save_checkpoint
    from assets.lm.training import train

    context = cell.size.context_length
    if cell.unique_tokens <= context:
        raise ValueError(f"{cell.name}: unique_tokens={cell.unique_tokens} must exceed the context length {context}")
    pool = unique_pool(chunks, cell.unique_tokens)
    held_out = held_out_tokens(chunks)
    steps = steps_for(cell, settings)
    cfg = settings.train_config(steps, context)
    vocab = len(tokenizer)
    model = build_model(cell.size, vocab, seed=settings.seed, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    started = time.perf_counter()
    result = train(model, pool, held_out, cfg, on_log=on_log)
    seconds = time.perf_counter() - started
    saved = None
    if checkpoint_dir is not None:
        saved = save_checkpoint(model, tokenizer, checkpoint_dir, overwrite=True)
    train_losses = result.curve["train_loss"].dropna()
    return CellResult(cell=cell, parameters=count_parameters(model),
                      non_embedding_parameters=count_parameters(model, non_embedding=True),
                      tokens=steps * settings.batch_size * context, steps=steps,
                      held_out_loss=float(result.final_val_loss),
                      final_train_loss=float(train_losses.iloc[-1]) if len(train_losses) else math.nan,
                      seconds=seconds, curve=result.curve, checkpoint_dir=saved)


def with_device(settings: RunSettings, device: str, bf16: bool, compile: bool) -> RunSettings:
    return replace(settings, device=device, bf16=bf16, compile=compile)
