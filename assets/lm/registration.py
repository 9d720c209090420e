"""One way to train a model, record it in MLflow and load it back, for every study that trains.

`train_and_register` trains (or imports) a model inside an MLflow run tagged with the Dagster run, logs its
parameters, curve and metrics, logs and registers the checkpoint with aliases, and returns the asset's record
and metadata (with the loss-curve plot).

One training run has one result type and one record: `assets.lm.training.TrainResult` is what the run measured
(curve and totals); `assets.lm.family.FittedModel` is a TrainResult whose model was saved (checkpoint, sizes),
the `Trained` a fit hands here; the record is the asset's value, a JSON dict: the MLflow part (``model_uri``,
run id, link, version), ``Trained.record()``'s numbers and the hardware. `log_training_run` is its MLflow half for a model trained elsewhere
(the royalties game's coalition models). `load_registered` / `load_tokenizer_of` load a record's exact model
and tokenizer; `imported_tokenizer` says which tokenizer an imported checkpoint uses. `ProgressLog` is the one
progress/ETA logger.

Dagster-free by import, so the science may use it too: the Dagster side hands in its context (``log``,
``run.run_id``), its ``tracking`` and ``compute`` resources, and a `Display` (how the UI shows a link and a
figure).
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd


class ProgressLog:
    """About ``times`` log lines over ``expected`` units of work (training steps, models), each with the elapsed
    time and, when ``expected`` is known, an ETA. Call it once per unit (or pass ``done``); `on_train_log` is
    the trainer's ``on_log`` (it also speaks at every evaluation)."""

    def __init__(self, log: Callable[[str], None], expected: int | None, label: str = "", times: int = 10):
        self.log, self.expected, self.label = log, expected, f"{label}: " if label else ""
        self.every, self.done, self.started = max(1, (expected or times) // times), 0, time.perf_counter()

    def __call__(self, message: str, done: int | None = None, force: bool = False) -> None:
        self.done = self.done + 1 if done is None else done
        if not force and self.done % self.every and self.done != self.expected:
            return
        elapsed = time.perf_counter() - self.started
        if self.expected:
            eta = elapsed / max(self.done, 1) * (self.expected - self.done)
            self.log(f"{self.label}{self.done}/{self.expected} {message}; {elapsed:.0f}s, ETA {eta:.0f}s")
        else:
            self.log(f"{self.label}{self.done} {message}; {elapsed:.0f}s")

    def on_train_log(self, row: Mapping[str, Any]) -> None:
        val = row.get("val_loss", math.nan)
        evaluated = math.isfinite(val)
        self(f"steps, train_loss {row['train_loss']:.3f}" + (f" val_loss {val:.3f}" if evaluated else "")
             + f", {row.get('tokens_per_s', 0):.0f} tok/s", done=int(row["step"]), force=evaluated)


@dataclass(frozen=True)
class Display:
    """How the Dagster side shows a link and a figure in the UI: ``link(url)`` (``dg.MetadataValue.url``) and
    ``figure(fig, name)`` (``resources.presentation.figure_metadata`` bound to the warehouse and the run)."""

    link: Callable[[str], Any]
    figure: Callable[[Any, str], Any]


class Trained(Protocol):
    """What registration needs of a fit: `assets.lm.family.FittedModel`'s members (the LM family and the chat
    models' fine-tuning return one). Fits that return their own class with these members (scaling's
    `CellResult`, which adds its grid cell's numbers) are accepted as they are."""

    curve: pd.DataFrame
    checkpoint_dir: Path | None
    seconds: float

    def metrics(self) -> dict[str, float]: ...  # logged in MLflow and shown in the metadata

    def record(self) -> dict[str, Any]: ...  # the numbers the asset's record keeps


def log_training_run(tracking: Any, run_id: str, *, curve: pd.DataFrame | None, metrics: Mapping[str, float],
                     checkpoint_dir: str | Path | None = None, registered: str | None = None,
                     aliases: tuple[str, ...] | list[str] = ("current",)) -> dict[str, Any]:
    """Log a finished training into the open MLflow run ``run_id``: its curve (metric histories) and metrics;
    with ``registered``, the checkpoint as a new version of that registered model with ``aliases``.

    Returns the model part of a record: ``tracking.log_model``'s (exact ``model_uri``, version, link, …), or
    only the run and its link (``model_uri`` None) when nothing is registered."""
    if registered is not None and checkpoint_dir is None:
        raise ValueError(f"registered={registered!r} needs a checkpoint_dir to log")
    if curve is not None:
        tracking.log_metric_history(run_id, curve.to_dict("records"))
    tracking.log_metrics(run_id, dict(metrics))
    if registered is None:
        return {"model_uri": None, "mlflow_run_id": run_id, "mlflow_link": tracking.run_link(run_id)}
    return tracking.log_model(run_id, checkpoint_dir, registered, aliases=tuple(aliases))


@dataclass(frozen=True)
class DatasetInput:
    """A set a run trained or validated on, as MLflow records it among the run's inputs: its name, a digest of
    its content, its split (the input's context), where it came from, and its row count."""

    name: str
    digest: str
    split: str
    source: str = ""  # the asset the data comes from
    rows: int = 0  # texts (or tokens, for a token stream)

    @classmethod
    def of_texts(cls, name: str, texts: Sequence[str], split: str, source: str = "") -> DatasetInput:
        """The dataset of these texts (the digest is over their content and order)."""
        digest = hashlib.sha256("\x1e".join(map(str, texts)).encode()).hexdigest()[:16]
        return cls(name=name, digest=digest, split=split, source=source or name, rows=len(texts))

    @classmethod
    def of_tokens(cls, name: str, tokens: Any, split: str, source: str = "") -> DatasetInput:
        """The dataset of a token stream (an integer array; the digest is over its int32 values, ``rows`` counts
        tokens)."""
        import numpy as np

        values = np.ascontiguousarray(np.asarray(tokens, dtype=np.int32))
        digest = hashlib.sha256(values.tobytes()).hexdigest()[:16]
        return cls(name=name, digest=digest, split=split, source=source or name, rows=int(values.size))


def train_and_register(context: Any, tracking: Any, compute: Any, fit: Callable[[Path, Callable], Trained], *,
                       run_name: str, params: Mapping[str, Any], steps: int, display: Display,
                       registered: str | None, aliases: tuple[str, ...] | list[str] = ("current",),
                       asset_key: str | None = None, tags: Mapping[str, str] | None = None,
                       plot_name: str | None = None, datasets: Sequence[DatasetInput] = ()
                       ) -> tuple[Trained, dict[str, Any], dict[str, Any]]:
    """Train in an MLflow run tagged with the Dagster run, log and register the checkpoint; (fit, record,
    metadata).

    ``fit(workdir, on_log)`` trains (writing its checkpoint under the temporary ``workdir``) and returns a
    `Trained`; ``on_log`` reports progress about ten times over ``steps``. The record is the model's MLflow
    part, the fit's numbers and the hardware; the metadata shows the URI, the MLflow link, the metrics, the
    seconds and the loss curve (saved as ``plot_name``, by default ``<run_name>``). ``datasets`` are logged as
    the run's MLflow dataset inputs (name, digest, split)."""
    from assets.lm.plots import loss_curve_figure

    hardware = compute.hardware()
    progress = ProgressLog(context.log.info, steps, label=run_name)
    with tracking.start_run(run_name, dagster_run_id=context.run.run_id, asset_key=asset_key or run_name,
                            params={**params, "device": hardware["device"]}, tags=tags) as run_id, \
            tempfile.TemporaryDirectory() as workdir:
        if datasets:
            tracking.log_datasets(run_id, datasets)
        fitted = fit(Path(workdir), progress.on_train_log)
        model = log_training_run(tracking, run_id, curve=fitted.curve, metrics=fitted.metrics(),
                                 checkpoint_dir=fitted.checkpoint_dir, registered=registered, aliases=aliases)
    record = {**model, **fitted.record(), "hardware": hardware}
    figure = loss_curve_figure(fitted.curve, run_name)
    metadata = {"model_uri": model["model_uri"], "mlflow": display.link(model["mlflow_link"]), **fitted.metrics(),
                "seconds": round(fitted.seconds, 1), "loss_curve": display.figure(figure, plot_name or run_name)}
    return fitted, record, metadata


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")  # as load_checkpoint's


def imported_tokenizer(checkpoint_dir: str | Path, tokenizer: Any) -> Any | None:
    """The tokenizer a local checkpoint to import brings, when it is not ``tokenizer`` (the corpus tokenizer): the
    model uses it, is registered with it, and its record names the model's URI as ``tokenizer_uri``. None when
    the checkpoint has no tokenizer files (the model then uses ``tokenizer``) or the same vocabulary.

    A checkpoint without a tokenizer whose model vocabulary is not ``tokenizer``'s size is refused (ValueError):
    its token ids would mean other words. So is one whose own tokenizer has neither a bos nor an eos token (a
    document stream needs one; with only one, it stands for both, as GPT-2's <|endoftext|> does) or more tokens
    than its model's embedding has rows."""
    from transformers import AutoConfig, AutoTokenizer

    path = Path(checkpoint_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"checkpoint_dir={str(path)!r} has no config.json (not a save_pretrained checkpoint)")
    if any((path / name).is_file() for name in TOKENIZER_FILES):
        from assets.lm.family import check_embedding_covers, with_document_tokens

        try:
            own = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as exc:
            raise ValueError(f"checkpoint_dir={str(path)!r}: its tokenizer files could not be loaded: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}") from exc
        if own.get_vocab() == tokenizer.get_vocab():
            return None
        own = with_document_tokens(own, path)  # refused here, before a run is opened, when it has neither
        rows = AutoConfig.from_pretrained(path, local_files_only=True).vocab_size
        check_embedding_covers(path, rows, len(own), own=True)
        return own
    vocab = AutoConfig.from_pretrained(path, local_files_only=True).vocab_size
    if vocab != len(tokenizer):
        raise ValueError(f"checkpoint_dir={str(path)!r} has no tokenizer and its model's vocabulary ({vocab} tokens) "
                         f"is not the corpus tokenizer's ({len(tokenizer)}): save the checkpoint with the tokenizer "
                         "it was trained with (tokenizer.save_pretrained into the same folder)")
    return None


def imported_shape(checkpoint_dir: str | Path) -> dict[str, Any]:
    """The shape of the model in a local checkpoint, from its config.json (`assets.lm.model.checkpoint_shape`):
    what an imported model's record and MLflow parameters state, not the family size it stands in for."""
    from transformers import AutoConfig

    from assets.lm.model import checkpoint_shape

    try:
        config = AutoConfig.from_pretrained(Path(checkpoint_dir), local_files_only=True)
    except Exception as exc:  # transformers' message does not always name the folder
        raise ValueError(f"checkpoint_dir={str(checkpoint_dir)!r}: its config.json could not be read: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}") from exc
    return checkpoint_shape(config)


def load_registered(record: Mapping[str, Any], tracking: Any, device: str = "cpu") -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) of a model record: its exact ``model_uri`` in the ``tracking`` store."""
    from assets.lm.registry import load_model

    return load_model(record["model_uri"], tracking.resolved_tracking_uri, device=device)


def load_tokenizer_of(record: Mapping[str, Any], tracking: Any) -> Any:
    """The tokenizer a record names (``tokenizer_uri``: a tokenizer asset's, or a model record's)."""
    from assets.corpora.tokenization import load_tokenizer

    return load_tokenizer(tracking.download_model(record["tokenizer_uri"]))

