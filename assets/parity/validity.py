"""The rules the parity study's data checks hold its tables to: one function per table, returning the table the
rules read (with any derived columns) and its Great Expectations rules.

``gxe`` is the ``great_expectations.expectations`` module, passed in by the Dagster side (which imports it
lazily, with GX's usage statistics off), so this module stays free of the platform.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

RUNS_REQUIRED = ("n_minus_k", "arch", "final_eval_accuracy")
"""The runs' columns that must be present on every run (t_c may be missing: a censored run)."""


def runs(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """One row per run, t_c >= 1 exactly when converged, n >= k, known architectures, accuracies in [0, 1], no
    missing n - k, architecture or final accuracy (GX's range and set rules skip missing values).

    NaN allowed: ``t_c`` of a censored run (it never converged; ``consistent`` ties it to ``converged``)."""
    checked = table.assign(n_minus_k=table["n"] - table["k"], consistent=table["converged"] == table["t_c"].notna())
    return checked, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeUnique(column="run_key"),
        gxe.ExpectColumnValuesToBeBetween(column="t_c", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="n_minus_k", min_value=0),
        gxe.ExpectColumnValuesToBeInSet(column="consistent", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="arch", value_set=["mlp", "polynet"]),
        gxe.ExpectColumnValuesToBeBetween(column="final_eval_accuracy", min_value=0, max_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in RUNS_REQUIRED],
    ]


def curves(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Accuracies and shares in [0, 1], losses >= 0, steps >= 0, no missing loss, accuracy, step or weight measure
    (GX's range rules skip missing values, so a NaN accuracy needs its own rule; the weight measures are computed
    from the weights at every logged step)."""
    return table, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="eval_loss"),
        gxe.ExpectColumnValuesToNotBeNull(column="eval_accuracy"),
        gxe.ExpectColumnValuesToBeBetween(column="eval_loss", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="eval_accuracy", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="step", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="linf_change", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="relevant_weight_share", min_value=0, max_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("step", "linf_change", "relevant_weight_share")],
    ]


def convergence(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Medians >= 1, shares in [0, 1], at least one run per setting, censored share and run count present.

    NaN allowed: ``median_t_c`` of a setting where half or more of the runs are censored (the median falls among
    them: analysis.censored_quantile; the scaling fit drops those settings), and ``median_transition_share`` of
    a setting where no run converged (a censored run has no transition)."""
    return table, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="median_t_c", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="censored_share", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="median_transition_share", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="runs", min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="censored_share"),
        gxe.ExpectColumnValuesToNotBeNull(column="runs"),
    ]


def scaling(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Exponents and r^2 present, r^2 in [0, 1], at least 3 points per fit."""
    return table, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="exponent"),
        gxe.ExpectColumnValuesToBeBetween(column="r_squared", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="points", min_value=3),
        gxe.ExpectColumnValuesToNotBeNull(column="r_squared"),
        gxe.ExpectColumnValuesToNotBeNull(column="points"),
    ]


def finite_sample_runs(gxe: Any, table: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """A training-set size on every run, memorised step >= 1, t_c >= 1.

    NaN allowed: ``memorized_step`` of a run that never memorised its training set, ``t_c`` of a censored run
    (the demo has censored runs)."""
    return table, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="train_set_size"),
        gxe.ExpectColumnValuesToBeBetween(column="memorized_step", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="t_c", min_value=1),
    ]
