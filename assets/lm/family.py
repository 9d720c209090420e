"""A model of the family, from corpus texts to a trained (or imported) checkpoint and its numbers.

`fit_language_model` is what an ``lm_<corpus>_<size>`` asset calls: encode the corpus with its tokenizer,
build the model from its `ModelSize` (or load a local Hugging Face checkpoint instead), train it, score it on
validation windows, and save a ``save_pretrained`` checkpoint holding model and tokenizer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# step logs, not progress bars; the fast tokenizer's threads do not survive Dagster's process forks
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from assets.corpora.tokenization import encode_documents  # noqa: E402
from assets.lm.distributed import is_main_process  # noqa: E402
from assets.lm.model import ModelSize, build_model, count_parameters, load_checkpoint, save_checkpoint  # noqa: E402
from assets.lm.training import CURVE_COLUMNS, TrainConfig, TrainResult, estimate_loss, train  # noqa: E402


@dataclass(kw_only=True)
class FittedModel(TrainResult):
    """A `TrainResult` whose model was saved: the checkpoint on disk and the model's size added. What
    `assets.lm.registration.train_and_register` logs and registers; the registered record is its JSON form.
    An imported checkpoint (``source`` "checkpoint") has a one-row curve, no steps and no tokens seen."""

    checkpoint_dir: Path
    parameters: int
    non_embedding_parameters: int
    source: str  # "trained" or "checkpoint"
    vocab_size: int
    validation_context_length: int | None = None  # tokens per window final_val_loss was measured on

    @classmethod
    def saved(cls, result: TrainResult, **saved: Any) -> FittedModel:
        """``result`` with what saving its model added (``checkpoint_dir``, sizes, ``source``)."""
        return cls(**{f.name: getattr(result, f.name) for f in fields(TrainResult)}, **saved)

    def metrics(self) -> dict[str, float]:
        """What MLflow records of the run and the UI shows."""
        return {"final_val_loss": self.final_val_loss, "parameters": self.parameters}

    def record(self) -> dict[str, Any]:
        """The numbers a model record keeps."""
        return {"parameters": self.parameters, "final_val_loss": self.final_val_loss,
                "validation_context_length": self.validation_context_length,
                "tokens_seen": self.tokens_seen, "train_seconds": self.seconds}


def with_document_tokens(tokenizer: Any, checkpoint_dir: str | Path) -> Any:
    """A checkpoint's own ``tokenizer`` with both a bos and an eos token: the one it has stands for the other
    (GPT-2 and Pythia open and close documents with <|endoftext|>), so every reader of the registered
    tokenizer's ``bos_token_id`` / ``eos_token_id`` gets the ids the validation stream used. A tokenizer with
    neither is refused, naming ``checkpoint_dir``."""
    from assets.corpora.tokenization import document_token_ids

    try:
        document_token_ids(tokenizer)
    except ValueError:
        raise ValueError(
            f"checkpoint_dir={str(checkpoint_dir)!r}: its tokenizer has neither a bos_token nor an eos_token, and "
            "documents are read as <bos> text <eos>: set at least one (e.g. tokenizer.eos_token = '<|endoftext|>', "
            "or the token its model was trained to end a text with) and save it again with "
            "tokenizer.save_pretrained into the same folder") from None
    if tokenizer.bos_token is None:
        tokenizer.bos_token = tokenizer.eos_token
    if tokenizer.eos_token is None:
        tokenizer.eos_token = tokenizer.bos_token
    return tokenizer


def check_embedding_covers(checkpoint_dir: str | Path, rows: int, tokens: int, *, own: bool) -> None:
    """Refuse (ValueError) a checkpoint whose embedding has fewer ``rows`` than the ``tokens`` of the tokenizer it
    is read with: its own (``own``) or, without one, the corpus tokenizer. A larger embedding (padded for speed,
    as many checkpoints are) is fine."""
    if rows >= tokens:
        return
    if own:
        raise ValueError(f"checkpoint_dir={str(checkpoint_dir)!r}: its model's embedding has {rows} rows but its "
                         f"tokenizer has {tokens} tokens (ids {rows}..{tokens - 1} have no embedding): call "
                         f"model.resize_token_embeddings({tokens}) before model.save_pretrained (the new rows start "
                         "untrained), or save the tokenizer the model was trained with")
    raise ValueError(f"checkpoint_dir={str(checkpoint_dir)!r}: its model's embedding has {rows} rows, fewer than the "
                     f"corpus tokenizer's {tokens} tokens, and it has no tokenizer of its own: save the checkpoint "
                     "with the tokenizer it was trained with (tokenizer.save_pretrained into the same folder)")


def token_streams(tokenizer: Any, train_texts: Sequence[str], val_texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Encode the train and validation documents as two token streams (<bos> doc <eos> …, the tokenizer's own)."""
    if not len(train_texts) or not len(val_texts):
        raise ValueError(f"need train and validation documents, got {len(train_texts)} and {len(val_texts)}")
    return encode_documents(tokenizer, list(train_texts)), encode_documents(tokenizer, list(val_texts))


def validation_loss(model: Any, val_tokens: np.ndarray, context_length: int, n_windows: int, batch_size: int,
                    device: str = "cpu") -> float:
    """Mean next-token loss (nats) over ``n_windows`` evenly spaced validation windows."""
    from assets.lm.data import TokenStream

    windows = TokenStream(val_tokens, context_length).fixed_windows(n_windows)
    return estimate_loss(model, windows, batch_size, device=device)


def fit_language_model(
    size: ModelSize,
    tokenizer: Any,
    train_texts: Sequence[str],
    val_texts: Sequence[str],
    cfg: TrainConfig,
    out_dir: Path,
    *,
    checkpoint_dir: str | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> FittedModel:
    """Train a fresh model of ``size`` (or import ``checkpoint_dir``) and save it with its tokenizer to ``out_dir``.
    An imported model is scored on windows of the family's context or its own positions, whichever is shorter
    (``validation_context_length`` of the result says which)."""
    if checkpoint_dir:
        model, own_tokenizer = load_checkpoint(checkpoint_dir, device=cfg.device)
        tokenizer = with_document_tokens(own_tokenizer, checkpoint_dir) if own_tokenizer is not None else tokenizer
        vocab = len(tokenizer)
        check_embedding_covers(checkpoint_dir, model.config.vocab_size, vocab, own=own_tokenizer is not None)
        context = min(size.context_length, getattr(model.config, "max_position_embeddings", size.context_length))
        train_tokens, val_tokens = token_streams(tokenizer, train_texts, val_texts)
        micro_batch = cfg.batch_size // cfg.grad_accum_steps  # the same validation windows training scores
        loss = validation_loss(model, val_tokens, context, cfg.eval_batches * micro_batch, micro_batch, cfg.device)
        curve = pd.DataFrame([{"step": 0, "tokens": 0, "train_loss": math.nan, "val_loss": loss,
                               "learning_rate": 0.0, "tokens_per_s": math.nan}], columns=CURVE_COLUMNS)
        result, source = TrainResult(curve=curve, final_val_loss=loss, tokens_seen=0, seconds=0.0, steps=0), "checkpoint"
    else:
        vocab = len(tokenizer)
        model = build_model(size, vocab, seed=cfg.seed, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        train_tokens, val_tokens = token_streams(tokenizer, train_texts, val_texts)
        result, source = train(model, train_tokens, val_tokens, cfg, on_log=on_log), "trained"
        context = cfg.context_length or size.context_length
    if is_main_process():  # under torchrun every rank holds the same weights; one writes them
        save_checkpoint(model, tokenizer, out_dir, overwrite=True)
    return FittedModel.saved(
        result, checkpoint_dir=Path(out_dir), parameters=count_parameters(model),
        non_embedding_parameters=count_parameters(model, non_embedding=True), source=source, vocab_size=vocab,
        validation_context_length=int(context))


def corpus_texts(corpus: str, documents: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(train texts, validation texts) of a family's corpus; the facts world's protected documents repeat
    ``duplicate_count`` times."""
    if corpus == "facts":
        from assets.corpora.facts_world import training_texts

        train = training_texts(documents)
    else:
        train = documents.loc[documents["split"] == "train", "text"].tolist()
    return train, documents.loc[documents["split"] == "validation", "text"].tolist()
