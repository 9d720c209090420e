"""The watermark study's tables: what each holds (TABLES, the assets' descriptions) and the rules its data checks
hold it to: one function per table, returning the table the rules read and its Great Expectations rules, plus
the rule GX does not express (the calibrated thresholds hold their false-positive rate on unwatermarked texts
held out from calibration).

``gxe`` is the ``great_expectations.expectations`` module, passed in by the Dagster side (which imports it
lazily, with GX's usage statistics off), so this module stays free of the platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

TABLES = {
    "watermark_texts": "Every generated text under every detector: score, p-value, detection at 1% FPR, the "
                       "oracle's quality, token ids; held_out marks the unwatermarked texts kept out of calibration.",
    "watermark_calibration": "Per scheme: parameters, the threshold calibrated on half the unwatermarked texts, "
                             "its false-positive rate on the held-out half, null p-values, detection rate.",
    "watermark_walk": "Every step of every attacked text: accepted or not, span, detector score, p-value (EXP / "
                      "EXP-edit: empirical, against the calibration half of the unwatermarked texts), detection at "
                      "1% FPR, quality-oracle score.",
    "watermark_attack": "Per attacked text: score, p-value and detection before and after, steps, tokens changed, "
                        "oracle and judge quality before and after, attack success.",
    "watermark_summary": "Per scheme: detection rate before and after the attack, attack success after the fixed "
                         "budget T and at T/4, T/2, 3T/4 (and the demo's earlier 40-step budget), quality change.",
}
"""What each table of the study holds, by asset name (the assets' descriptions)."""

DESCRIPTIONS = {
    "texts_valid": "p-values in [0, 1] (NaN allowed: EXP/EXP-edit null texts past the permutation subset), known "
                   "schemes and roles, finite scores and oracle log-probabilities",
    "calibration_holds": "each threshold, set on half the unwatermarked texts, holds the target FPR on the "
                         "held-out half (one-sided exact binomial test, family level 0.05 over the schemes)",
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


CHECK_LEVEL = 0.05
"""The calibration check's family-wise level: each of the k schemes is tested at CHECK_LEVEL / k (Bonferroni)."""


def calibration_holds(calibration: pd.DataFrame, fpr: float, level: float = CHECK_LEVEL) -> tuple[bool, dict]:
    """The calibration's rule, (it holds, its numbers): every scheme's threshold, set on the calibration half of
    the unwatermarked (null) texts, flags the held-out half no more often than the target ``fpr`` allows. The
    test: one-sided exact binomial, p = P(Binomial(n_held_out, fpr) >= false positives); it fails when any
    scheme's p < level / number of schemes. The threshold's own randomness (a quantile of a finite half) is
    part of what it tests: a threshold whose real FPR is above ``fpr`` is what the check is for. Sizes (n_null
    split in halves): tiny 100 + 100 and demo 200 + 200 (five schemes at 0.01 each: 5 of 100, or 7 of 200
    held-out false positives fail), gpu 500 + 500.

    The numbers say how many texts each half has, the count that would fail, and, when a half is too small to
    mean much, so: a calibration half whose quantile is the r-th largest score with r / (n + 1) above ``fpr``
    (e.g. under 1/fpr texts: the maximum, expected FPR 1/(n + 1)) cannot hold the target even in expectation; a
    held-out half that cannot reach the failing count cannot fail."""
    from scipy.stats import binom

    per_scheme = level / max(len(calibration), 1)
    rows = calibration.to_dict("records")
    p_values = {r["scheme"]: float(binom.sf(r["held_out_false_positives"] - 1, r["n_held_out"], fpr)) for r in rows}
    n_cal, n_held = int(calibration["n_calibration"].min()), int(calibration["n_held_out"].min())
    fails_at = next((k for k in range(n_held + 1) if binom.sf(k - 1, n_held, fpr) < per_scheme), None)
    numbers = {
        "test": f"one-sided exact binomial test of each scheme's held-out false positives against fpr = {fpr}, "
                f"at {per_scheme:.3g} per scheme (Bonferroni: family level {level} over {len(rows)} schemes)",
        "target_fpr": fpr, "n_calibration": n_cal, "n_held_out": n_held,
        "split_seed": int(calibration["split_seed"].iloc[0]),
        "held_out_false_positives": ", ".join(
            f"{name} {int(r['held_out_false_positives'])}/{int(r['n_held_out'])} (p = {p_values[name]:.2g})"
            for name, r in zip(p_values, rows, strict=True)),
        "worst_held_out_false_positive_rate": float(calibration["held_out_false_positive_rate"].max()),
        "smallest_p_value": min(p_values.values(), default=float("nan")),
        "fails_at_false_positives": fails_at if fails_at is not None else "never",
    }
    # the threshold is the r-th largest calibration score: on fresh exchangeable scores it flags r / (n + 1)
    rank = n_cal - int(np.quantile(np.arange(n_cal), 1 - fpr, method="higher"))
    numbers["expected_held_out_fpr"] = rank / (n_cal + 1)
    small = []
    if rank / (n_cal + 1) > fpr:
        small.append(f"the calibration half has {n_cal} texts: its (1 - fpr) quantile is the {rank}-th largest "
                     f"score, whose expected FPR {rank}/{n_cal + 1} = {rank / (n_cal + 1):.2%} is above the target")
    if fails_at is None:
        small.append(f"the held-out half has {n_held} texts: no count of false positives fails at this level, so "
                     "the check cannot fail")
    if small:
        numbers["too_few_texts"] = "; ".join(small)
    holds = all(p >= per_scheme for p in p_values.values())
    return holds, numbers


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
