"""The rules the robustness study's data checks hold its tables to: one function per table, returning the table
the rules read (with any derived columns) and its Great Expectations rules, plus the rules GX does not express
(the same problems under every goal, a target for every answer goal).

``gxe`` is the ``great_expectations.expectations`` module, passed in by the Dagster side (which imports it
lazily, with GX's usage statistics off), so this module stays free of the platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from assets.robustness.items import GOALS, THINK_LESS


def items(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Item ids unique, known tasks, known goals (every task's answer goals and think-less), none missing."""
    return table, [gxe.ExpectColumnValuesToBeUnique(column="item_id"),
                   gxe.ExpectColumnValuesToBeInSet(column="task", value_set=list(GOALS)),
                   gxe.ExpectColumnValuesToBeInSet(column="goal", value_set=[
                       *{g for goals in GOALS.values() for g in goals}, THINK_LESS]),
                   *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("task", "goal")]]


def same_problems_under_every_goal(table: pd.DataFrame) -> bool:
    """Within each task, every goal attacks the same problems."""
    return all(len({frozenset(g["problem_id"]) for _, g in t.groupby("goal")}) == 1
               for _, t in table.groupby("task"))


def targets_present(table: pd.DataFrame) -> bool:
    """Every answer goal's item has a target (think-less has none)."""
    return bool((table.loc[table["goal"] != THINK_LESS, "target"] != "").all())


def runs(gxe: Any, table: pd.DataFrame, compute_levels: Sequence[int]) -> tuple[pd.DataFrame, list]:
    """Reasoning within the compute level (both present), soft tokens within the norm cap, every compute level
    present.

    NaN allowed: ``soft_norm`` and ``soft_cap`` of a run without soft tokens (``norm_over`` fills them, so those
    rows pass)."""
    within = table.assign(over=table["reasoning_tokens"] - table["compute_level"],
                          norm_over=(table["soft_norm"] - table["soft_cap"] * (1 + 1e-5)).fillna(-1.0))
    return within, [gxe.ExpectColumnValuesToBeBetween(column="over", max_value=0),
                    gxe.ExpectColumnValuesToBeBetween(column="norm_over", max_value=0),
                    gxe.ExpectColumnValuesToNotBeNull(column="over"),
                    gxe.ExpectColumnDistinctValuesToEqualSet(column="compute_level",
                                                             value_set=list(compute_levels))]


def success(gxe: Any, grid: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Over the rated cells: rates in [0, 1], low <= rate <= high (to 1e-9) with both bounds present,
    successes <= n.

    NaN allowed: ``success_rate`` (and its interval) of an unrated cell, n = 0 (every item of the cell lost, e.g.
    think-less on the ambiguous task in the demo), which the rules skip."""
    rated = grid.dropna(subset=["success_rate"])
    return rated.assign(below=rated["ci_low"] - rated["success_rate"],
                        above=rated["success_rate"] - rated["ci_high"],
                        spare=rated["n"] - rated["successes"]), [
        gxe.ExpectColumnValuesToBeBetween(column="success_rate", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="below", max_value=1e-9),
        gxe.ExpectColumnValuesToBeBetween(column="above", max_value=1e-9),
        gxe.ExpectColumnValuesToBeBetween(column="spare", min_value=0),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("below", "above", "spare")]]
