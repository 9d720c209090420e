"""Coalition models: one language model per coalition of copyright owners, each trained at most once.

The model of coalition S is trained on the base (public) documents plus S's documents: fine-tuned from the
base model by default, or trained from scratch (`CoalitionTraining.init`). The empty coalition's model is the
base model itself, so v({}) = 0 exactly. `CoalitionCache` memoises models and their scores by coalition, so
the exact and Monte Carlo estimators, and every piece, share one training per coalition.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from assets.royalties.shapley import coalition_key

Scorer = Callable[[Any], np.ndarray]


class CoalitionCache:
    """Fits each coalition's model at most once and remembers its scores (log-likelihoods of the pieces).

    ``fit(coalition) -> model`` trains (or returns) the coalition's model. `model` fits and keeps a model
    (the all-owners model is kept to generate pieces); `log_likelihoods` fits if needed, scores, and drops
    the model unless it was kept, so a large game never holds more than the kept models in memory.
    One cache serves one scorer: a different scorer is refused rather than silently mixed.
    """

    def __init__(self, players: Sequence[str], fit: Callable[[frozenset[str]], Any]):
        self.players = list(players)
        self._fit = fit
        self._kept: dict[frozenset[str], Any] = {}
        self._scores: dict[frozenset[str], np.ndarray] = {}
        self._fitted: set[frozenset[str]] = set()
        self._scorer: Scorer | None = None
        self.fit_order: list[str] = []  # coalition keys in the order they were fitted

    def _check(self, coalition: frozenset[str] | Sequence[str]) -> frozenset[str]:
        coalition = frozenset(coalition)
        coalition_key(coalition, self.players)  # validates membership
        return coalition

    def _fit_once(self, coalition: frozenset[str]) -> Any:
        if coalition in self._fitted:
            raise RuntimeError(f"coalition {coalition_key(coalition, self.players)} would be trained twice")
        self._fitted.add(coalition)
        self.fit_order.append(coalition_key(coalition, self.players))
        return self._fit(coalition)

    @property
    def n_fits(self) -> int:
        return len(self.fit_order)

    def model(self, coalition: frozenset[str] | Sequence[str]) -> Any:
        """The coalition's model, fitted on first use and kept in memory until `release`."""
        coalition = self._check(coalition)
        if coalition not in self._kept:
            self._kept[coalition] = self._fit_once(coalition)
        return self._kept[coalition]

    def release(self, coalition: frozenset[str] | Sequence[str]) -> None:
        self._kept.pop(self._check(coalition), None)

    def log_likelihoods(self, coalition: frozenset[str] | Sequence[str], score: Scorer) -> np.ndarray:
        """``score(model of S)`` (one log-likelihood per piece), computed once per coalition."""
        coalition = self._check(coalition)
        if self._scorer is None:
            self._scorer = score
        elif score is not self._scorer:
            raise ValueError("CoalitionCache.log_likelihoods: this cache already holds scores of another scorer")
        if coalition not in self._scores:
            model = self._kept.get(coalition)
            if model is None:
                model = self._fit_once(coalition)
            self._scores[coalition] = np.asarray(score(model), dtype=np.float64)
        return self._scores[coalition]

    def value(self, coalition: frozenset[str] | Sequence[str], score: Scorer) -> np.ndarray:
        """v(S) = log p_S(x) - log p_base(x) for every piece x (so v({}) = 0)."""
        return self.log_likelihoods(coalition, score) - self.log_likelihoods(frozenset(), score)

    def scored(self) -> dict[frozenset[str], np.ndarray]:
        """Every coalition scored so far and its log-likelihoods."""
        return dict(self._scores)


def owners_of(documents: pd.DataFrame, n_owners: int | None = None) -> list[str]:
    """The players: the documents' owner authors (``is_owner``) in natural order (owner_2 before owner_10),
    the first `n_owners` of them if given."""
    missing = [c for c in ("author", "is_owner") if c not in documents.columns]
    if missing:
        raise ValueError(f"documents is missing columns {missing}; it has {list(documents.columns)}")
    owners = sorted(documents.loc[documents["is_owner"], "author"].unique().tolist(), key=lambda n: (len(n), n))
    if n_owners is not None:
        if not 2 <= n_owners <= len(owners):
            raise ValueError(f"n_owners={n_owners}: expected 2..{len(owners)} (owners: {owners})")
        owners = owners[:n_owners]
    if len(owners) < 2:
        raise ValueError(f"the royalties game needs at least 2 owners; the documents have {owners}")
    return owners


# ------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class CoalitionTraining:
    """How a coalition's model is trained from the base model (init "finetune") or from scratch ("scratch").

    The data is always the base authors' documents plus the coalition's, each train document repeated
    `duplicate_count` times as in the family's training stream. `train` holds the TrainConfig of one
    coalition model; `model_size` is needed for "scratch".
    """

    train: Any  # assets.lm.training.TrainConfig
    init: str = "finetune"
    base_authors: tuple[str, ...] = ("public",)
    model_size: Any = None  # assets.lm.model.ModelSize, for init="scratch"
    author_column: str = "author"

    def __post_init__(self) -> None:
        if self.init not in ("finetune", "scratch"):
            raise ValueError(f"CoalitionTraining.init must be 'finetune' or 'scratch', got {self.init!r}")
        if self.init == "scratch" and self.model_size is None:
            raise ValueError("CoalitionTraining.model_size is required when init='scratch'")


def coalition_texts(documents: pd.DataFrame, coalition: frozenset[str], base_authors: Sequence[str],
                    split: str, author_column: str = "author", seed: int = 0) -> list[str]:
    """Texts of the base authors and the coalition in `split` (train: duplicates repeated, seeded shuffle)."""
    from assets.corpora.facts_world import training_texts

    missing = [c for c in (author_column, "split", "text") if c not in documents.columns]
    if missing:
        raise ValueError(f"documents is missing columns {missing}; it has {list(documents.columns)}")
    authors = set(base_authors) | set(coalition)
    chosen = documents[documents[author_column].isin(authors) & (documents["split"] == split)]
    if split == "train":
        if "duplicate_count" not in chosen.columns:
            chosen = chosen.assign(duplicate_count=1)
        return training_texts(chosen, seed=seed)
    return chosen["text"].tolist()


@dataclass
class CoalitionModel:
    """A trained coalition model and what its training recorded."""

    model: Any
    coalition: frozenset[str]
    trained: bool
    final_val_loss: float
    seconds: float
    tokens_seen: int


def coalition_splits(documents: pd.DataFrame, coalition: frozenset[str],
                     training: CoalitionTraining) -> tuple[list[str], list[str]]:
    """(train texts, validation texts) a coalition's model trains and is scored on (the train texts shuffled
    with the training's seed)."""
    return (coalition_texts(documents, coalition, training.base_authors, "train", training.author_column,
                            seed=training.train.seed),
            coalition_texts(documents, coalition, training.base_authors, "validation", training.author_column))


def fit_coalition_model(base_model: Any, tokenizer: Any, documents: pd.DataFrame, coalition: frozenset[str],
                        training: CoalitionTraining) -> CoalitionModel:
    """Train coalition `coalition`'s model; the empty coalition returns the base model untrained."""
    from assets.corpora.tokenization import encode_documents
    from assets.lm.training import train

    if not coalition:
        return CoalitionModel(base_model, coalition, trained=False, final_val_loss=float("nan"), seconds=0.0,
                              tokens_seen=0)
    cfg = training.train
    train_texts, val_texts = coalition_splits(documents, coalition, training)
    if not train_texts or not val_texts:
        raise ValueError(f"coalition {sorted(coalition)}: no train or validation documents for authors "
                         f"{sorted(set(training.base_authors) | coalition)}")
    started = time.perf_counter()
    if training.init == "finetune":
        model = copy.deepcopy(base_model)
    else:
        from assets.lm.model import build_model

        model = build_model(training.model_size, len(tokenizer), seed=cfg.seed, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    result = train(model, encode_documents(tokenizer, train_texts), encode_documents(tokenizer, val_texts), cfg)
    model.eval()
    return CoalitionModel(model, coalition, trained=True, final_val_loss=result.final_val_loss,
                          seconds=time.perf_counter() - started, tokens_seen=result.tokens_seen)
