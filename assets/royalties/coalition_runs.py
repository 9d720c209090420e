"""The royalties game played inside an MLflow run: coalition models as its child runs, pieces from the
all-owners model.

`play_tracked_game` plays the game (`assets.royalties.game.play_game`) inside the game's MLflow run and returns
every table of it. `CoalitionRuns` gives `play_game` the ``fit`` of each seed: train the coalition's model
once (`fit_coalition_model`), log it as a child run (`assets.lm.registration.log_training_run`), register the
first seed's all-owners model (it generates the pieces, whose lineage names its exact URI), report progress,
and keep one row per model (`models`). ``tracking`` is the Dagster side's MLflow resource, used by its methods.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from assets.lm.registration import DatasetInput, ProgressLog, log_training_run
from assets.royalties.coalitions import (
    CoalitionModel,
    CoalitionTraining,
    coalition_splits,
    fit_coalition_model,
)
from assets.royalties.game import play_game
from assets.royalties.pieces import build_pieces, piece_log_likelihoods
from assets.royalties.royalty_shares import shapley_frame
from assets.royalties.shapley import coalition_key


@dataclass
class CoalitionRuns:
    """Coalition models of every seed, trained with ``training`` (its TrainConfig's seed replaced by each
    seed's) and logged under the game's MLflow run ``game_run``; ``register_seed``'s all-owners model is
    registered as ``registered``. ``expected``: models to train, if known (for the ETA)."""

    tracking: Any
    dagster_run_id: str
    game_run: str
    documents: pd.DataFrame
    owners: list[str]
    base_model: Any
    tokenizer: Any
    base_model_uri: str
    training: CoalitionTraining
    register_seed: int
    registered: str
    log: Callable[[str], None]
    expected: int | None = None
    documents_source: str = "facts_documents"  # the asset ``documents`` comes from (the dataset inputs' source)
    rows: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.progress = ProgressLog(self.log, self.expected)

    def fit_for_seed(self, seed: int) -> Callable[[frozenset[str]], CoalitionModel]:
        """The ``fit`` of seed ``seed``'s `CoalitionCache` (the empty coalition: the base model, untrained)."""
        training = dataclasses.replace(self.training, train=dataclasses.replace(self.training.train, seed=seed))
        steps = training.train.max_steps

        def fit(coalition: frozenset[str]) -> CoalitionModel:
            key = coalition_key(coalition, self.owners)
            fitted = fit_coalition_model(self.base_model, self.tokenizer, self.documents, coalition, training)
            row = {"seed": seed, "coalition": key, "n_members": len(coalition), "trained": fitted.trained,
                   "init": training.init if fitted.trained else "base", "steps": steps if fitted.trained else 0,
                   "final_val_loss": fitted.final_val_loss, "train_seconds": fitted.seconds,
                   "tokens_seen": fitted.tokens_seen, "mlflow_run_id": "", "model_uri": ""}
            if fitted.trained:
                register = seed == self.register_seed and len(coalition) == len(self.owners)
                row["mlflow_run_id"], row["model_uri"] = self._log(fitted, key, seed, steps, register, training)
                self.progress(f"coalition model {key}, seed {seed}: val loss {fitted.final_val_loss:.3f}")
            self.rows.append(row)
            return fitted

        return fit

    def _log(self, fitted: CoalitionModel, key: str, seed: int, steps: int, register: bool,
             training: CoalitionTraining) -> tuple[str, str]:
        """Log one coalition model as a child run of the game (its train and validation texts as the run's
        dataset inputs); the registered one with its checkpoint. (run id, model URI or "")."""
        cfg = self.training.train
        params = {"coalition": key, "n_members": len(fitted.coalition), "seed": seed, "init": self.training.init,
                  "steps": steps, "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate,
                  "base_model_uri": self.base_model_uri}
        metrics = {"final_val_loss": fitted.final_val_loss, "train_seconds": fitted.seconds,
                   "tokens_seen": fitted.tokens_seen}
        with self.tracking.start_run(f"royalties-coalition-{key}-seed{seed}", dagster_run_id=self.dagster_run_id,
                                     asset_key="royalties_game", params=params,
                                     tags={"mlflow.parentRunId": self.game_run}) as run_id, \
                tempfile.TemporaryDirectory() as tmp:
            self.tracking.log_datasets(run_id, [
                DatasetInput.of_texts(f"royalties-coalition-{key}-{split}", texts, split, self.documents_source)
                for split, texts in zip(("train", "validation"), coalition_splits(self.documents, fitted.coalition,
                                                                                  training), strict=True)])
            checkpoint = None
            if register:  # a checkpoint only for the model that is registered
                from assets.lm.model import save_checkpoint

                checkpoint = save_checkpoint(fitted.model, self.tokenizer, Path(tmp) / "model")
            model = log_training_run(self.tracking, run_id, curve=None, metrics=metrics, checkpoint_dir=checkpoint,
                                     registered=self.registered if register else None)
        return run_id, model["model_uri"] or ""

    @property
    def generator_uri(self) -> str:
        """The registered all-owners model's URI (it generated the pieces)."""
        return next(row["model_uri"] for row in reversed(self.rows) if row["model_uri"])

    def pieces(self, generator: CoalitionModel, context_length: int, **options: Any) -> pd.DataFrame:
        """The batch of pieces (`build_pieces` with ``options``) from the all-owners model, with its URI."""
        pieces = build_pieces(self.documents, self.owners, generator.model, self.tokenizer,
                              context_length=context_length, **options)
        uri = self.generator_uri
        self.log(f"{len(pieces)} pieces from {uri}: " + ", ".join(
            f"{kind} {n}" for kind, n in pieces.groupby("kind").size().items()))
        return pieces.assign(generator_uri=np.where(pieces["kind"] == "generated", uri, ""))

    def models(self, values: pd.DataFrame) -> pd.DataFrame:
        """One row per coalition model, with the mean coalition value over the pieces (also logged to its run)."""
        mean_values = values.groupby(["seed", "coalition"])["value"].mean()
        for row in self.rows:
            row["mean_value"] = float(mean_values.get((row["seed"], row["coalition"]), math.nan))
            if row["mlflow_run_id"]:
                self.tracking.log_metrics(row["mlflow_run_id"], {"mean_value": row["mean_value"]})
        return pd.DataFrame(self.rows)


@dataclass
class TrackedGame:
    """Every table of one game: pieces, coalition values, Shapley values and shares, Monte Carlo history, one row
    per coalition model, and per seed the estimator's numbers."""

    pieces: pd.DataFrame
    values: pd.DataFrame
    shapley: pd.DataFrame
    history: pd.DataFrame
    models: pd.DataFrame
    estimators: pd.DataFrame


def play_tracked_game(tracking: Any, dagster_run_id: str, documents: pd.DataFrame, owners: list[str], base_model: Any,
                      tokenizer: Any, base_model_uri: str, training: CoalitionTraining, *, seeds: Sequence[int],
                      estimator: str, mc_options: dict, piece_options: dict, params: dict, registered: str,
                      log: Callable[[str], None]) -> TrackedGame:
    """Play the game with ``seeds`` in the MLflow run "royalties-game" (``params`` logged), its coalition models
    as child runs; the first seed's all-owners model is registered as ``registered`` and samples the pieces."""
    started = time.time()
    context_length = int(base_model.config.max_position_embeddings)
    with tracking.start_run("royalties-game", dagster_run_id=dagster_run_id, asset_key="royalties_game",
                            params=params) as game_run:
        runs = CoalitionRuns(tracking, dagster_run_id, game_run, documents, owners, base_model, tokenizer,
                             base_model_uri, training, register_seed=seeds[0], registered=registered, log=log,
                             expected=len(seeds) * (2 ** len(owners) - 1) if estimator == "exact" else None)
        game = play_game(owners, runs.fit_for_seed, seeds,
                         lambda fitted: runs.pieces(fitted, context_length, **piece_options),
                         lambda fitted, texts: piece_log_likelihoods(fitted.model, tokenizer, texts),
                         estimator=estimator, mc_options=mc_options)
        shapley, history, mc_summary = shapley_frame(game.values, game.pieces, owners, **mc_options)
        models = runs.models(game.values)
        estimators = game.estimators.merge(mc_summary, on="seed")
        tracking.log_metrics(game_run, {"coalitions_trained": float(estimators["coalitions_trained"].sum()),
                                        "seconds": time.time() - started})
    log(f"trained {int(models['trained'].sum())} coalition models in {time.time() - started:.0f}s")
    return TrackedGame(game.pieces, game.values, shapley, history, models, estimators)
