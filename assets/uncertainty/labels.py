"""Labels as in the paper's code (``create_dataset_filter.py``), class balancing per token id, and the facts
world's ground-truth labels.

Proxy labels (the large model stands in for the truth), on tokens whose small-model entropy H_s lies in
[entropy_min, entropy_max):
- epistemic ("high epistemic, low aleatoric"): the large model is confident, H_l < zero_entropy (paper 0.2);
- aleatoric ("low epistemic, high aleatoric"): the large model is as unsure, |H_l - H_s| <= entropy_delta (0.1).
Paper: entropy_min = 2.0 nats for LLaMA's 32k vocabulary.

Balancing (``balanced_classes``): for every token id, keep as many epistemic as aleatoric examples (the
smaller count, drawn without replacement), so a probe cannot win by recognising the token; tokens seen in
one class only drop out. The paper draws each example with probability min_count / count, which is this in
expectation. The current token (the last token of the context) is the one balanced on, as in the paper's code.

Ground truth (facts world only): on the same uncertain tokens, epistemic if the true next-token entropy is
below zero_entropy (a fact or a fixed word: nothing is left to chance), aleatoric if the true entropy is at
least ``aleatoric_min`` (default entropy_min: the truth itself is as uncertain as the filter asks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

EPISTEMIC, ALEATORIC, UNLABELLED = 1, 0, -1
NAMES = {EPISTEMIC: "epistemic", ALEATORIC: "aleatoric", UNLABELLED: "unlabelled"}


@dataclass(frozen=True)
class Thresholds:
    """Entropy thresholds (nats) of the paper's labelling."""

    entropy_min: float = 2.0
    entropy_max: float = math.inf
    zero_entropy: float = 0.2
    entropy_delta: float = 0.1
    allow_overlap: bool = False  # quantile thresholds may overlap; epistemic then takes precedence

    def __post_init__(self) -> None:
        for name in ("entropy_min", "zero_entropy", "entropy_delta"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"Thresholds.{name} must be a finite number >= 0, got {value!r}")
        if not self.entropy_max > self.entropy_min:
            raise ValueError(f"Thresholds.entropy_max ({self.entropy_max}) must exceed entropy_min ({self.entropy_min})")
        if not self.allow_overlap and self.entropy_min < self.zero_entropy + self.entropy_delta:
            raise ValueError(f"Thresholds.entropy_min ({self.entropy_min}) must be >= zero_entropy + entropy_delta "
                             f"({self.zero_entropy} + {self.entropy_delta}), else a token could be both classes")


def quantile_thresholds(small_entropy: np.ndarray, large_entropy: np.ndarray, q_min: float = 0.5,
                        q_zero: float = 0.25, q_delta: float = 0.25) -> Thresholds:
    """Thresholds read off the data, for models too little trained for absolute ones (the tiny profile):
    entropy_min = the q_min quantile of H_s; among tokens above it, zero_entropy = the q_zero quantile of H_l
    and entropy_delta = the q_delta quantile of |H_l - H_s|."""
    hs, hl = np.asarray(small_entropy, dtype=float), np.asarray(large_entropy, dtype=float)
    if not len(hs):
        raise ValueError("quantile_thresholds needs at least one token")
    floor = float(np.quantile(hs, q_min))
    above = hs >= floor
    zero = float(np.quantile(hl[above], q_zero)) + 1e-9
    delta = float(np.quantile(np.abs(hl - hs)[above], q_delta)) + 1e-9
    return Thresholds(floor, math.inf, zero, delta, allow_overlap=True)


def proxy_labels(small_entropy: np.ndarray, large_entropy: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """EPISTEMIC / ALEATORIC / UNLABELLED per token, from the two models' entropies."""
    hs, hl = np.asarray(small_entropy, dtype=float), np.asarray(large_entropy, dtype=float)
    if hs.shape != hl.shape:
        raise ValueError(f"small_entropy shape {hs.shape} != large_entropy shape {hl.shape}")
    uncertain = (hs >= thresholds.entropy_min) & (hs < thresholds.entropy_max)
    labels = np.full(hs.shape, UNLABELLED, dtype=np.int64)
    labels[uncertain & (np.abs(hl - hs) <= thresholds.entropy_delta)] = ALEATORIC
    labels[uncertain & (hl < thresholds.zero_entropy)] = EPISTEMIC
    return labels


def truth_labels(small_entropy: np.ndarray, true_entropy: np.ndarray, thresholds: Thresholds,
                 aleatoric_min: float | None = None) -> np.ndarray:
    """Ground-truth EPISTEMIC / ALEATORIC / UNLABELLED on the tokens the small model is unsure of (NaN truth:
    unlabelled)."""
    hs, ht = np.asarray(small_entropy, dtype=float), np.asarray(true_entropy, dtype=float)
    if hs.shape != ht.shape:
        raise ValueError(f"small_entropy shape {hs.shape} != true_entropy shape {ht.shape}")
    floor = thresholds.entropy_min if aleatoric_min is None else float(aleatoric_min)
    if floor <= thresholds.zero_entropy:
        raise ValueError(f"aleatoric_min ({floor}) must exceed zero_entropy ({thresholds.zero_entropy})")
    uncertain = (hs >= thresholds.entropy_min) & (hs < thresholds.entropy_max) & np.isfinite(ht)
    labels = np.full(hs.shape, UNLABELLED, dtype=np.int64)
    labels[uncertain & (ht < thresholds.zero_entropy)] = EPISTEMIC
    labels[uncertain & (ht >= floor)] = ALEATORIC
    return labels


def balance_by_token(token_ids: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Keep mask: per token id, equally many EPISTEMIC and ALEATORIC rows (the smaller count, drawn without
    replacement); UNLABELLED rows and tokens seen in one class only are dropped."""
    tokens, labels = np.asarray(token_ids), np.asarray(labels)
    if tokens.shape != labels.shape:
        raise ValueError(f"token_ids shape {tokens.shape} != labels shape {labels.shape}")
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(labels), dtype=bool)
    labelled = np.flatnonzero(labels != UNLABELLED)
    frame = pd.DataFrame({"row": labelled, "token": tokens[labelled], "label": labels[labelled]})
    for _, group in frame.groupby("token", sort=True):
        rows = {c: group.loc[group["label"] == c, "row"].to_numpy() for c in (EPISTEMIC, ALEATORIC)}
        n = min(len(rows[EPISTEMIC]), len(rows[ALEATORIC]))
        for c in (EPISTEMIC, ALEATORIC):
            if n:
                keep[rng.choice(rows[c], size=n, replace=False)] = True
    return keep


def class_counts(labels: np.ndarray, keep: np.ndarray | None = None) -> dict[str, int]:
    """{"epistemic": n, "aleatoric": n, "unlabelled": n} (of the kept rows, if ``keep`` is given)."""
    labels = np.asarray(labels)
    if keep is not None:
        labels = labels[np.asarray(keep, dtype=bool)]
    return {NAMES[c]: int((labels == c).sum()) for c in (EPISTEMIC, ALEATORIC, UNLABELLED)}


def label_table(tokens: pd.DataFrame, thresholds: Thresholds, *, balanced: bool = True, seed: int = 0,
                truth_aleatoric_min: float | None = None) -> pd.DataFrame:
    """The labels of one token table (rows aligned with it): ``label`` (proxy), ``kept`` (after balancing),
    and where the truth is known ``truth_label``."""
    label = proxy_labels(tokens["small_entropy"].to_numpy(), tokens["large_entropy"].to_numpy(), thresholds)
    keep = balance_by_token(tokens["token_id"].to_numpy(), label, seed) if balanced else label != UNLABELLED
    out = pd.DataFrame({"label": label, "kept": keep}, index=tokens.index)
    if "true_entropy" in tokens.columns:
        out["truth_label"] = truth_labels(tokens["small_entropy"].to_numpy(),
                                          tokens["true_entropy"].astype(float).to_numpy(), thresholds,
                                          truth_aleatoric_min)
    else:
        out["truth_label"] = UNLABELLED
    return out


def agreement(proxy: np.ndarray, truth: np.ndarray) -> tuple[float, int]:
    """(share of tokens where the proxy label equals the truth, number of tokens with both labels)."""
    proxy, truth = np.asarray(proxy), np.asarray(truth)
    both = (proxy != UNLABELLED) & (truth != UNLABELLED)
    n = int(both.sum())
    return (float((proxy[both] == truth[both]).mean()) if n else math.nan), n


def entropy_quantiles(entropy: np.ndarray, qs: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95, 0.99)) -> dict[str, float]:
    """Quantiles of an entropy column, for choosing thresholds from the data."""
    values = np.asarray(entropy, dtype=float)
    values = values[np.isfinite(values)]
    return {f"q{int(q * 100)}": float(np.quantile(values, q)) if len(values) else math.nan for q in qs}


def label_counts(labels: pd.DataFrame, thresholds: dict[str, Thresholds]) -> pd.DataFrame:
    """Per dataset: its entropy floor, class counts before and after balancing, the truth's classes, the
    proxy-truth agreement and small-model entropy quantiles."""
    counts = []
    for d in sorted(thresholds):
        rows = labels[labels["dataset"] == d]
        rate, n_both = agreement(rows["label"].to_numpy(), rows["truth_label"].to_numpy())
        counts.append({"dataset": d, "entropy_min": thresholds[d].entropy_min,
                       **{f"{k}_before": v for k, v in class_counts(rows["label"]).items()},
                       **{f"{k}_kept": v for k, v in class_counts(rows["label"], rows["kept"]).items()
                          if k != "unlabelled"},
                       "truth_epistemic": int((rows["truth_label"] == EPISTEMIC).sum()),
                       "truth_aleatoric": int((rows["truth_label"] == ALEATORIC).sum()),
                       "proxy_truth_agreement": rate, "agreement_tokens": n_both,
                       **{f"small_{k}": v for k, v in entropy_quantiles(rows["small_entropy"]).items()}})
    return pd.DataFrame(counts)


def balance_holds(labels: pd.DataFrame, balanced: bool) -> tuple[bool, dict]:
    """(passed, numbers): after balancing every token id has as many epistemic as aleatoric kept examples
    (checked only when ``balanced``), and both classes are kept."""
    kept = labels[labels["kept"]]
    per_token = kept.groupby(["dataset", "token_id"])["label"].agg(["sum", "count"])
    unbalanced = int((per_token["sum"] * 2 != per_token["count"]).sum()) if balanced else 0
    passed = bool(unbalanced == 0 and kept["label"].nunique() == 2 and (kept["label"] >= 0).all())
    return passed, {"unbalanced_token_ids": unbalanced, "kept_tokens": len(kept), "balanced_classes": balanced}
