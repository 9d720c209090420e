"""What the alignment room's Dagster side shows of its tables, as plain functions: the judge's acceptance per
generator mistake, the SFT rows per category, the SFT models' metadata, the methods' scores and metrics
pivoted for reading, and what the results asset records of the pasted policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def acceptance_by_mistake(judged: pd.DataFrame) -> pd.DataFrame:
    """The share of candidates the judge accepted, per generator mistake ("correct": none)."""
    return judged.groupby("error")[["accepted"]].mean().reset_index()


def rows_by_category(table: pd.DataFrame) -> pd.DataFrame:
    """SFT rows per (evaluation, category)."""
    return table.groupby(["evaluation", "category"]).size().rename("rows").reset_index()


def sft_models_metadata(metadata: Mapping[str, Mapping[str, Any]], identical: Mapping[str, Any],
                        conversations: int, dropped: int, replayed: int = 0) -> dict:
    """The SFT models' plain metadata: each method's training metadata as ``<method>_<key>``, the safety
    conversations trained and dropped as too long, chat-sft's conversations replayed beside them, and the identity
    check's counts (its digests left out)."""
    return {**{f"{m}_{k}": v for m, d in metadata.items() for k, v in d.items()},
            "conversations": conversations, "dropped_too_long": dropped, "replayed_conversations": replayed,
            **{k: v for k, v in identical.items() if k != "digests"}}


def results_summary(excerpt: Mapping[str, Any], pasted_uri: str, positions: int, rows: int) -> dict:
    """What the results asset records: the clauses and tokens pasted for policy_in_context (and its model),
    the models' positions and the rows."""
    return {"pasted_clauses": ", ".join(excerpt["clauses"]) or "none (not one clause fits)",
            "policy_in_context_uri": pasted_uri,
            "pasted_tokens": excerpt["tokens"], "full_policy_tokens": excerpt["full_policy_tokens"],
            "positions": int(positions), "rows": rows}


def score_by_method(results: pd.DataFrame) -> pd.DataFrame:
    """Mean battery score per method and evaluation over the answered rows (`score`, NaN when none), with the
    rows it averages (`n`) and all the rows asked (`asked`): an empty answer, or a prompt too long to ask, is
    no answer, so it is left out rather than counted as a score of 0 (as the safety card's metrics do)."""
    from assets.safety.tables import mean_scores

    usable = results["outcome"] != "empty"
    if "answered" in results.columns:
        usable &= results["answered"].astype(bool)
    return mean_scores(results.assign(answered=usable), by=["method"])


def methods_by_metric(table: pd.DataFrame) -> pd.DataFrame:
    """The method table as metric rows x method columns, in the table's order."""
    return table.pivot_table(index="metric", columns="method", values="value", sort=False).reset_index()
