"""The watermark study's tables: what each holds (TABLES, the assets' descriptions) and the rules its data checks
hold it to: one function per table, returning the table the rules read and its Great Expectations rules, plus
the rule GX does not express (the calibrated thresholds hold their false-positive rate on the unwatermarked
texts).

``gxe`` is the ``great_expectations.expectations`` module, passed in by the Dagster side (which imports it
lazily, with GX's usage statistics off), so this module stays free of the platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

TABLES = {
    "watermark_texts": "Every generated text under every detector: score, p-value, detection at 1% FPR, the "
                       "oracle's quality, token ids.",
    "watermark_calibration": "Per scheme: parameters, the threshold calibrated on unwatermarked text, null "
                             "p-values, detection rate.",
    "watermark_walk": "Every step of every attacked text: accepted or not, span, detector score, p-value (EXP / "
                      "EXP-edit: empirical, against the unwatermarked texts), detection at 1% FPR, quality-oracle "
                      "score.",
    "watermark_attack": "Per attacked text: score, p-value and detection before and after, steps, tokens changed, "
                        "oracle and judge quality before and after, attack success.",
    "watermark_summary": "Per scheme: detection rate before and after the attack, attack success after the fixed "
                         "budget T and at T/4, T/2, 3T/4 (and the demo's earlier 40-step budget), quality change.",
}
"""What each table of the study holds, by asset name (the assets' descriptions)."""

DESCRIPTIONS = {
    "texts_valid": "p-values in [0, 1] (NaN allowed: EXP/EXP-edit null texts past the permutation subset), known "
                   "schemes and roles, finite scores and oracle log-probabilities",
    "calibration_holds": "each threshold flags at most 2x the target FPR of the null texts",
    "attack_valid": "every accepted text keeps the oracle's quality; rates in [0, 1]",
}
"""What each data check of the study holds its table to, by check name (the check specs' descriptions)."""

ATTACK_REQUIRED = ("quality_kept", "tokens_changed", "p_value_after", "steps", "judge_bits_per_byte_after")
"""The attack table's columns present on every attacked text (GX's range and set rules skip missing values)."""


def texts(gxe: Any, table: pd.DataFrame, schemes: Sequence[str]) -> tuple[pd.DataFrame, list]:
    """Known schemes and roles, p-values in [0, 1], every text scored, the oracle's log-probabilities <= 0, none
    of scheme, role, score, oracle log-probability missing.

    NaN allowed: ``p_value`` of an EXP / EXP-edit unwatermarked (null) text beyond the first ``n_texts``: the
    authors' permutation p-values are computed on that part of the null texts only (study.py; 176 of 200 per
    scheme in the demo)."""
    return table, [
        gxe.ExpectColumnValuesToBeInSet(column="scheme", value_set=list(schemes)),
        gxe.ExpectColumnValuesToBeInSet(column="role", value_set=["watermarked", "unwatermarked"]),
        gxe.ExpectColumnValuesToBeBetween(column="p_value", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="score"),
        gxe.ExpectColumnValuesToBeBetween(column="oracle_logprob", max_value=0),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("scheme", "role", "oracle_logprob")],
    ]


def calibration_holds(calibration: pd.DataFrame, fpr: float) -> tuple[bool, dict]:
    """The calibration's rule, (it holds, its numbers): every scheme's threshold flags at most twice the target
    false-positive rate ``fpr`` of the unwatermarked (null) texts."""
    worst = float(calibration["null_false_positive_rate"].max())
    return bool(worst <= 2 * fpr), {"worst_null_false_positive_rate": worst, "target_fpr": fpr}


def attack(gxe: Any, table: pd.DataFrame, steps: int) -> tuple[pd.DataFrame, list]:
    """Every attacked text keeps the oracle's quality; shares and p-values in [0, 1]; at most ``steps`` steps;
    the judge scored every text after the attack; none of these missing."""
    return table, [
        gxe.ExpectColumnValuesToBeInSet(column="quality_kept", value_set=[True]),
        gxe.ExpectColumnValuesToBeBetween(column="tokens_changed", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="p_value_after", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="steps", min_value=0, max_value=steps),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ATTACK_REQUIRED],
    ]
