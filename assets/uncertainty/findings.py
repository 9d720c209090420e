"""Headline numbers of the study from its AUC table, and verdicts against the paper's claims.

The paper (Ahdritz et al. 2024) reports that linear and MLP probes on a small model's embeddings predict the
large model's confidence with AUC often above 0.9, well above the small model's entropy alone; that probes
trained on one text domain keep much of that accuracy on another; and that the unsupervised ICLT reaches a
non-trivial AUC. These thresholds turn our numbers into verdicts.
"""

from __future__ import annotations

import math

import pandas as pd

PAPER_PROBE_AUC = 0.9  # "often above 0.9"
STRONG = 0.85  # a probe AUC we call paper-like
MARGIN = 0.05  # a probe "beats" the entropy baseline by at least this much AUC
ICLT_CHANCE_MARGIN = 0.05  # ICLT "clearly above 0.5": AUC >= 0.55
TRANSFER_FLOOR = 0.6  # a transferred probe keeps a useful AUC


def auc_of(table: pd.DataFrame, train: str, test: str, method: str, target: str = "proxy",
         layer: int | None = None) -> float:
    rows = table[(table["train_dataset"] == train) & (table["test_dataset"] == test) & (table["method"] == method)
                 & (table["target"] == target)]
    if layer is not None:
        rows = rows[rows["layer"] == layer]
    elif method in ("linear", "mlp"):
        rows = rows[rows["feature"].str.startswith("hidden_l")]
    return float(rows["auc"].iloc[-1]) if len(rows) and pd.notna(rows["auc"].iloc[-1]) else math.nan


def chosen_layer(table: pd.DataFrame, dataset: str) -> int:
    """The layer the probes were scored against the truth / across domains at (the configured one)."""
    rows = table[(table["train_dataset"] == dataset) & (table["target"] == "truth") & (table["layer"] >= 0)]
    if len(rows):
        return int(rows["layer"].iloc[0])
    rows = table[(table["train_dataset"] == dataset) & (table["layer"] >= 0)]
    return int(rows["layer"].max()) if len(rows) else -1


def probe_numbers(table: pd.DataFrame, dataset: str) -> dict[str, float]:
    """Held-out AUCs on one dataset at the chosen layer, the best layer, and the entropy baseline."""
    layer = chosen_layer(table, dataset)
    own = table[(table["train_dataset"] == dataset) & (table["test_dataset"] == dataset)
                & (table["target"] == "proxy") & (table["layer"] >= 0)]
    out = {"layer": layer, "entropy": auc_of(table, dataset, dataset, "entropy"),
           "output_probe": auc_of(table, dataset, dataset, "linear", layer=-1),
           "n_test": int(own["n_test"].max()) if len(own) else 0, "n_train": int(own["n_train"].max()) if len(own) else 0}
    for kind in ("linear", "mlp"):
        out[kind] = auc_of(table, dataset, dataset, kind, layer=layer)
        part = own[own["method"] == kind]
        out[f"{kind}_best"] = float(part["auc"].max()) if len(part) else math.nan
        out[f"{kind}_best_layer"] = int(part.loc[part["auc"].idxmax(), "layer"]) if part["auc"].notna().any() else -1
    return out


def probe_verdict(n: dict[str, float]) -> str:
    best = max(n["linear"], n["mlp"]) if not math.isnan(n["linear"]) or not math.isnan(n["mlp"]) else math.nan
    if math.isnan(best) or math.isnan(n["entropy"]):
        return "not comparable"
    if best >= STRONG and best >= n["entropy"] + MARGIN:
        return "reproduced"
    if best >= n["entropy"] + MARGIN:
        return "partially reproduced"
    return "not reproduced"


def beats_baseline(n: dict[str, float]) -> bool:
    return bool(max(n["linear"], n["mlp"]) >= n["entropy"] + MARGIN)


def transfer_verdict(auc: float, in_domain: float) -> str:
    if math.isnan(auc):
        return "not comparable"
    if auc >= TRANSFER_FLOOR and auc >= in_domain - 0.15:
        return "reproduced"
    if auc >= 0.5 + ICLT_CHANCE_MARGIN:
        return "partially reproduced"
    return "not reproduced"


def iclt_verdict(auc: float) -> str:
    if math.isnan(auc):
        return "not comparable"
    if auc >= 0.5 + 2 * ICLT_CHANCE_MARGIN:
        return "reproduced"
    if auc >= 0.5 + ICLT_CHANCE_MARGIN:
        return "partially reproduced"
    return "not reproduced"


def fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"
