"""The settings every trained model shares, declared once: the model's shape and the optimiser.

Plain pydantic, no Dagster: a study's Dagster ``Config`` mixes them in (``class NafModelsConfig(ModelShape,
Optimiser, dg.Config)``) and restates only the defaults it changes (per profile, with
``resources.profiles.pick``). `ModelShape.model_size` and `train_config` build the science's `ModelSize` and
`TrainConfig` by keyword from the fields the Config has, so a field is never copied across by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from assets.lm.training import TrainConfig

if TYPE_CHECKING:  # pragma: no cover - typing only
    from assets.lm.model import ModelSize

SHAPE_FIELDS = ("d_model", "n_layers", "n_heads", "d_ff", "context_length")
# the TrainConfig fields a Config may carry (context_length is the model's: training uses all of it)
OPTIMISER_FIELDS = ("max_steps", "batch_size", "grad_accum_steps", "learning_rate", "min_lr", "warmup_steps",
                    "weight_decay", "grad_clip", "eval_interval", "eval_batches", "seed")


# What the fields every study shares mean: the launchpad's descriptions (resources.config.StudyConfig).
FIELD_DOCS = {
    "d_model": "width of the residual stream (hidden size)",
    "n_layers": "number of transformer blocks",
    "n_heads": "attention heads per block (d_model must divide by it)",
    "d_ff": "hidden width of each block's MLP",
    "context_length": "positions the model attends over (its training window)",
    "max_steps": "optimiser steps",
    "batch_size": "sequences (or examples) per optimiser step",
    "grad_accum_steps": "micro-batches accumulated per optimiser step",
    "learning_rate": "peak learning rate (after warm-up)",
    "min_lr": "learning rate at the end of the cosine decay",
    "warmup_steps": "linear warm-up steps",
    "weight_decay": "AdamW weight decay",
    "grad_clip": "gradient-norm clip (0: none)",
    "eval_interval": "evaluate the validation loss every this many steps",
    "eval_batches": "validation batches per evaluation",
    "seed": "random seed (data order, initialisation, sampling): runs with the same seed repeat",
    "cpu_threads": "torch CPU threads while this asset runs (0: torch's default)",
    "temperature": "sampling temperature (0: greedy)",
    "max_answer_tokens": "tokens a model may write in its final answer",
    "text_column": "the column of the user's file that holds the text",
    "validation_fraction": "share of documents held out for validation",
    "aliases": "MLflow registry aliases set on the new model version",
    "splits": "which item splits to evaluate (train, eval)",
}


class ModelShape(BaseModel):
    """Shape of a model of the LM family (`assets.lm.model.ModelSize`); defaults: the tiny facts model."""

    d_model: int = 32
    n_layers: int = 1
    n_heads: int = 2
    d_ff: int = 64
    context_length: int = 32

    def model_size(self, name: str, family: ModelSize | None = None) -> ModelSize:
        """The `ModelSize` called ``name``; a field left None takes ``family``'s value."""
        return model_size(self, name, family)


class Optimiser(BaseModel):
    """The optimiser fields of `assets.lm.training.TrainConfig` every training Config has (defaults: its own)."""

    max_steps: int = TrainConfig.max_steps
    batch_size: int = TrainConfig.batch_size
    learning_rate: float = TrainConfig.learning_rate
    min_lr: float = TrainConfig.min_lr
    warmup_steps: int = TrainConfig.warmup_steps
    eval_batches: int = TrainConfig.eval_batches
    seed: int = TrainConfig.seed

    def train_config(self, compute: Any, **overrides: Any) -> TrainConfig:
        return train_config(self, compute, **overrides)


def model_size(source: Any, name: str, family: ModelSize | None = None) -> ModelSize:
    """`ModelSize` ``name`` from the shape fields of ``source``; None fields (or missing ones) take ``family``'s."""
    from assets.lm.model import ModelSize

    shape = {field: getattr(source, field, None) for field in SHAPE_FIELDS}
    if family is not None:
        shape = {field: getattr(family, field) if value is None else value for field, value in shape.items()}
    return ModelSize(name=name, n_kv_heads=family.n_kv_heads if family else None, **shape)


def train_config(source: Any, compute: Any, **overrides: Any) -> TrainConfig:
    """`TrainConfig` from the optimiser fields ``source`` has, on ``compute``'s device, precision and compile
    setting (the Compute resource), with ``overrides`` (e.g. ``eval_interval=steps``) on top. A grad_clip of 0
    means no clipping (None)."""
    fields = {field: getattr(source, field) for field in OPTIMISER_FIELDS if hasattr(source, field)}
    if fields.get("grad_clip") == 0:  # the config's "0: none" (FIELD_DOCS) is TrainConfig's None
        fields["grad_clip"] = None
    device = {"device": compute.torch_device(), "bf16": compute.use_bf16(), "compile": compute.use_compile()}
    return TrainConfig(**{**fields, **device, **overrides})
