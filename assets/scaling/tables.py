"""What the scaling study's Dagster side prepares, as plain functions: the corpus a study encodes, a grid run's
MLflow parameters, registered name and description, and the fitted law's plot and numbers."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from assets.scaling.grid import GridCell, RunSettings

PAPER_BUDGETS = [float(c) for c in np.logspace(20, 24, 9)]  # FLOPs of the paper's allocation (its C4 law)


# ---------------------------------------------------------------------------------------------- preparation
def study_corpus(documents: pd.DataFrame, corpus_path: str | None, text_column: str, validation_fraction: float,
                 seed: int) -> tuple[pd.DataFrame, str]:
    """(documents, source): the code corpus as given, or the local corpus at ``corpus_path`` read instead. The
    source names a local corpus by its absolute path and a hash of its documents (``/data/c.jsonl#sha256:…``), so
    two files of one name, or one file edited between runs, are told apart in every table that carries it."""
    if not corpus_path:
        return documents, "code_corpus"
    import hashlib
    from pathlib import Path

    from assets.corpora.user_corpus import read_user_corpus

    documents = read_user_corpus(corpus_path, text_column, None, validation_fraction, seed)
    digest = hashlib.sha256()
    for split, text in zip(documents["split"], documents["text"], strict=True):
        digest.update(f"{split}\0{len(text)}\0{text}".encode())
    return documents, f"{Path(corpus_path).expanduser().resolve()}#sha256:{digest.hexdigest()[:16]}"


def encoded_splits(tokenizer: Any, documents: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The train and validation documents each encoded into one token stream."""
    from assets.corpora.tokenization import encode_documents

    return tuple(encode_documents(tokenizer, documents.loc[documents["split"] == split, "text"].tolist())
                 for split in ("train", "validation"))


def cell_description(cell: GridCell) -> str:
    """A grid run asset's description in the UI."""
    return (f"Grid run: model {cell.size.name} trained {cell.epochs} epoch(s) over "
            f"{cell.unique_tokens:,} unique tokens (D = {cell.tokens:,}); its held-out loss and MLflow run.")


def run_params(cell: GridCell, settings: RunSettings, corpus: str, tokenizer_uri: str) -> dict:
    """A grid run's MLflow parameters: the cell, its model's shape, the corpus and the optimisation."""
    return {"cell": cell.name, "size": cell.size.name, **dataclasses.asdict(cell.size),
            "unique_tokens": cell.unique_tokens, "epochs": cell.epochs, "corpus": corpus,
            **dataclasses.asdict(settings), "tokenizer_uri": tokenizer_uri}


def registered_name(cell: GridCell) -> str:
    """The MLflow registered model of a grid run."""
    return f"scaling-{cell.size.name}-u{cell.unique_tokens}-e{cell.epochs}"


# ---------------------------------------------------------------------------------------------- the fit
def law_fit_figure(runs: pd.DataFrame, full: Any, parameter_count: str):
    """The fitted curves over the measured losses, N counted as the fit counted it."""
    from assets.scaling.plots import loss_vs_epochs_figure

    return loss_vs_epochs_figure(runs.assign(parameters=runs[parameter_count]), full.law,
                                 f"fitted law: R_D* = {full.law.rd_star:.3g}, "
                                 f"R_N* = {full.law.rn_star:.3g} (dotted: all-unique data)")


def law_fit_numbers(full: Any, resamples: int) -> dict:
    """The fit's headline numbers: R_D*, R_N*, stage-1 starts and runs, bootstrap resamples."""
    return {"rd_star": float(full.law.rd_star), "rn_star": float(full.law.rn_star),
            "stage1_starts": full.chinchilla.n_starts, "stage1_runs": len(full.stage1_index),
            "bootstrap_resamples": resamples}
