"""Supervised probes on the small model's hidden states, and the entropy baseline (scikit-learn).

A probe reads the hidden state at one layer and predicts whether the token's uncertainty is epistemic (1)
or aleatoric (0). ``linear``: standardised logistic regression. ``mlp``: one hidden layer of ReLU units
(the paper's MLP probes are small too). ``entropy``: the small model's entropy alone through a 1-D logistic
regression, the paper's "best entropy threshold" baseline. Scores are the predicted probability of
epistemic; AUC is ROC AUC on held-out tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

KINDS = ("linear", "mlp")


def stack_column(values: Sequence[Any]) -> np.ndarray:
    """A column of equal-length float lists/arrays as a float32 matrix [n, d]."""
    if len(values) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for v in values])


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of ``scores`` for ``labels`` (1 = positive); NaN when a class is missing."""
    from sklearn.metrics import roc_auc_score

    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    if len(np.unique(labels)) < 2:
        return math.nan
    return float(roc_auc_score(labels, scores))


def make_probe(kind: str, seed: int = 0, hidden_units: int = 64, max_iter: int = 300):
    """An unfitted scikit-learn pipeline for ``kind`` in KINDS."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "linear":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=max_iter * 3))
    if kind == "mlp":
        return make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(hidden_units,), alpha=1e-3, max_iter=max_iter, early_stopping=True,
            validation_fraction=0.15, n_iter_no_change=15, random_state=seed))
    raise ValueError(f"probe kind must be one of {KINDS}, got {kind!r}")


def fit_probe(kind: str, features: np.ndarray, labels: np.ndarray, seed: int = 0, **options: Any):
    """Fit a probe; raises ValueError when the training set lacks a class or is too small."""
    features, labels = np.asarray(features, dtype=np.float32), np.asarray(labels)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features must be [n, d] with n = len(labels); got {features.shape} and {labels.shape}")
    counts = np.bincount(labels.astype(int), minlength=2)
    minimum = 8 if kind == "mlp" else 2
    if (counts < minimum).any():
        raise ValueError(f"probe training set needs >= {minimum} examples of each class, got {counts.tolist()}")
    with np.errstate(all="ignore"):
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return make_probe(kind, seed, **options).fit(features, labels)


def probe_scores(probe: Any, features: np.ndarray) -> np.ndarray:
    """P(epistemic) under a fitted probe."""
    return probe.predict_proba(np.asarray(features, dtype=np.float32))[:, 1]


def evaluate(kind: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
             seed: int = 0, **options: Any) -> tuple[float, np.ndarray, Any]:
    """(held-out AUC, held-out scores, fitted probe) of one probe kind, or the entropy baseline when the
    features are one column."""
    probe = fit_probe(kind, train_x, train_y, seed, **options)
    scores = probe_scores(probe, test_x)
    return roc_auc(test_y, scores), scores, probe


def probe_matrix(train: pd.DataFrame, test: pd.DataFrame, feature: str, kinds: Sequence[str],
                 seed: int = 0, **options: Any) -> list[dict[str, Any]]:
    """AUC of each probe kind on one feature column (a hidden-state layer, or "small_entropy" for the
    baseline, which is always a 1-D logistic regression)."""
    rows = []
    if feature == "small_entropy":
        kinds = ["entropy"]
    for kind in kinds:
        x_train = train[[feature]].to_numpy(float) if kind == "entropy" else stack_column(train[feature].tolist())
        x_test = test[[feature]].to_numpy(float) if kind == "entropy" else stack_column(test[feature].tolist())
        auc, _, _ = evaluate("linear" if kind == "entropy" else kind, x_train, train["label"].to_numpy(),
                             x_test, test["label"].to_numpy(), seed, **options)
        rows.append({"method": kind, "feature": feature, "auc": auc, "n_train": len(train), "n_test": len(test)})
    return rows
