"""The language-model sweep over runs and corpora: which runs a corpus gets (`sweep_specs`), its token source
(`lm_source`), training them all and the equal-loss distances between them (`sweep_source`, `sweep_corpus`),
and their tables (`run_table`, `eval_history`). One run's data and training are `assets.sgd_noise.language`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch

from assets.sgd_noise.data import REGIMES
from assets.sgd_noise.language import (
    CorpusSource,
    FactsSource,
    LMRun,
    LMRunSpec,
    next_token_probabilities,
    train_lm,
    windows_for,
)
from assets.sgd_noise.synthetic import log_steps


@dataclass(frozen=True)
class LMSweepSettings:
    """What the sweep of every corpus shares (the LM sweep Config's fields of the same names)."""

    learning_rates: tuple[float, ...]
    seeds: int  # the lowest-noise setting runs seeds 0..seeds-1 (the distance baseline); the others seed 0
    warmup_steps: int
    eval_windows: int
    distance_windows: int
    log_points: int
    loss_levels: int
    cut_fraction: float
    cut_batch_factor: int
    cut_lr_factor: float

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> LMSweepSettings:
        """The settings from ``values`` (e.g. a Config's ``model_dump()``), which must name every field."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})


def lm_builder(size: Any, vocab_size: int, device: str = "cpu") -> Callable[[int], torch.nn.Module]:
    """seed -> a fresh model of ``size`` on ``device`` (special ids as the corpora's tokenizers lay them out)."""
    from assets.lm.model import build_model

    return lambda seed: build_model(size, vocab_size, seed, bos_token_id=1, eos_token_id=2, pad_token_id=0).to(device)


def lm_source(corpus: str, tokenizer: Any, world_record: dict | None, documents: pd.DataFrame | None, *,
              offline_documents: int, offline_code_tokens: int) -> FactsSource | CorpusSource:
    """The facts world's source (fresh documents online, ``offline_documents`` fixed ones offline), or the code
    corpus's (its training files read once online, ``offline_code_tokens`` fixed tokens offline)."""
    if corpus == "facts":
        from assets.corpora.facts_world import world_from_record

        return FactsSource(world_from_record(world_record), tokenizer, offline_documents)
    return corpus_source(tokenizer, documents, offline_code_tokens)


def sweep_corpus(corpus: str, source: FactsSource | CorpusSource, vocab_size: int, size: Any, steps: int,
                 batch_sizes: Sequence[int], settings: LMSweepSettings, *, device: str = "cpu",
                 on_run: Callable[[LMRun], None] | None = None,
                 log: Callable[[str], None] = print) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One corpus's sweep (`sweep_specs` over both regimes, the noisiest setting cut at ``cut_fraction`` of
    ``steps``), trained by `sweep_source` with models of ``size``: (runs, curves, distances)."""
    s = settings
    cut = int(round(s.cut_fraction * steps))
    specs = sweep_specs(REGIMES, batch_sizes, s.learning_rates, list(range(s.seeds)), cut, s.cut_lr_factor,
                        s.cut_batch_factor, corpus)
    log(f"{corpus}: {len(specs)} runs of {steps} steps")
    return sweep_source(source, lm_builder(size, vocab_size, device), specs, steps,
                        sorted(set(log_steps(steps, s.log_points)) | {cut}), warmup_steps=s.warmup_steps,
                        context_length=size.context_length, eval_windows=s.eval_windows,
                        distance_windows=s.distance_windows, loss_levels=s.loss_levels, device=device, on_run=on_run)


def sweep_specs(regimes: Sequence[str], batch_sizes: Sequence[int], learning_rates: Sequence[float],
                seeds: Sequence[int], cut_step: int | None, cut_lr_factor: float = 1.0,
                cut_batch_factor: int = 1, corpus: str = "facts") -> list[LMRunSpec]:
    """Every (regime, batch, learning rate) at the first seed; the lowest-noise setting (largest batch,
    smallest learning rate) at every seed (the seed-to-seed baseline of the distance); the noisiest setting
    carries the noise-reduction branch."""
    out = []
    for regime in regimes:
        for b in sorted(batch_sizes):
            for lr in sorted(learning_rates):
                lowest = b == max(batch_sizes) and lr == min(learning_rates)
                noisiest = b == min(batch_sizes) and lr == max(learning_rates)
                for seed in (seeds if lowest else seeds[:1]):
                    cut = cut_step if noisiest and seed == seeds[0] else None
                    out.append(LMRunSpec(regime, int(b), float(lr), int(seed), cut,
                                         cut_lr_factor if cut else 1.0, cut_batch_factor if cut else 1, corpus))
    return out


def eval_history(run: LMRun) -> list[dict]:
    """A run's held-out loss by step as metric rows: ``eval_loss``, and ``branch_eval_loss`` for its branch."""
    return [{"step": r.step, "eval_loss" if r.run_key == run.spec.key else "branch_eval_loss": r.eval_loss}
            for r in run.curves.itertuples()]


def run_table(runs: Sequence[LMRun]) -> pd.DataFrame:
    rows = []
    for run in runs:
        s = run.spec
        for key in run.snapshots:
            branch = key != s.key
            curve = run.curves[run.curves["run_key"] == key]
            rows.append({"run_key": key, "task": f"lm_{s.corpus}", "regime": s.regime, "batch_size": s.batch_size,
                         "learning_rate": s.learning_rate, "seed": s.seed,
                         "cut_step": s.cut_step if branch else -1,
                         "cut_lr_factor": s.cut_lr_factor if branch else 1.0,
                         "cut_batch_factor": s.cut_batch_factor if branch else 1,
                         "parent_run": s.key if branch else "", "steps": int(curve["step"].max()),
                         "examples_seen": int(curve["examples"].max()),
                         "final_eval_loss": float(curve["eval_loss"].iloc[-1]),
                         "best_eval_loss": float(curve["eval_loss"].min()), "group_seconds": run.seconds})
    table = pd.DataFrame(rows)
    table["noise_scale"] = table["learning_rate"] / table["batch_size"]
    return table


def corpus_source(tokenizer, documents: pd.DataFrame, offline_tokens: int, name: str = "code") -> CorpusSource:
    """A ``CorpusSource`` from a documents table (``split`` train / validation, ``text``): each train document
    laid out as `encode_documents` lays it out (<bos> tokens <eos>), one array per document."""
    from assets.corpora.tokenization import document_token_ids, encode_documents, encode_texts

    bos, eos = document_token_ids(tokenizer)
    train = [np.asarray([bos, *ids, eos], dtype=np.int32)
             for ids in encode_texts(tokenizer, documents.loc[documents["split"] == "train", "text"])]
    validation = encode_documents(tokenizer, documents.loc[documents["split"] == "validation", "text"].tolist())
    return CorpusSource(train, validation, offline_tokens, name)


def sweep_source(source: FactsSource | CorpusSource, build: Callable[[int], torch.nn.Module],
                 specs: Sequence[LMRunSpec], steps: int, checkpoints: Sequence[int], *, warmup_steps: int,
                 context_length: int, eval_windows: int, distance_windows: int, loss_levels: int, device: str,
                 on_run: Callable[[LMRun], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train every run of one corpus, then the equal-loss distances between its runs (runs, curves, distances)."""
    from assets.sgd_noise.analysis import functional_distances

    x_held, y_held = source.heldout(eval_windows, context_length)
    heldout = (x_held.to(device), y_held.to(device))
    trained = []
    for spec in specs:
        run = train_lm(spec, build, windows_for(spec, source, context_length), heldout, steps, checkpoints,
                       warmup_steps)
        trained.append(run)
        if on_run is not None:
            on_run(run)
    runs = run_table(trained)
    curves = pd.concat([r.curves for r in trained], ignore_index=True)
    snapshots = {key: snaps for r in trained for key, snaps in r.snapshots.items()}
    model, x_dist = build(0), heldout[0][:distance_windows]

    @functools.lru_cache(maxsize=128)  # (windows x positions x vocab) float32 each
    def predict(key: str, index: int) -> np.ndarray:
        model.load_state_dict(snapshots[key][index])
        return next_token_probabilities(model, x_dist)

    return runs, curves, functional_distances(runs, curves, predict, loss_levels)
