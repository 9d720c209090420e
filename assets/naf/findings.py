"""Headline numbers of the NAF study and the verdict rules that compare them with the paper's claims.

The paper (Vyas, Kakade & Barak 2023) claims, qualitatively: models combined from shards (CP-Δ, CP-k)
regurgitate protected content far less than a model trained on everything, at a small cost in quality,
with small k. The rules below fix what "far less", "small cost" and "small k" mean here, before any run.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

FAR_LESS = 10.0  # "far less": the exact-extraction probability falls by at least this factor
SOMEWHAT_LESS = 2.0
VISIBLE = 0.05  # p "visibly regurgitates" when it samples (or puts this much probability on) the exact text
SMALL_COST = 0.10  # "small perplexity cost": at most +10% held-out perplexity over p
MODERATE_COST = 0.25
COMBINED = ("cp_delta", "cp_kl", "cp_k")


MAX_FACTOR = 1e300  # keeps the headline finite when a combination puts (numerically) no mass on the truth


def _log2_mean(bits: pd.Series) -> float:
    """log2 of the mean of 2^bits, computed without underflow."""
    values = bits.to_numpy(dtype=float)
    top = values.max()
    return float(top + np.log2(np.mean(np.exp2(values - top))))


def regurgitation_numbers(regurgitation: pd.DataFrame) -> dict[str, dict]:
    """At the highest duplication level, per combination: p's and the combination's mean exact-extraction
    probability P(exact) (the probability of sampling the true continuation), the factor between them, and
    sampled exact / near-exact rates. CP-Δ and CP-KL have exact probabilities (computed in log space); CP-k's
    P(exact) is an estimate and its factor may be infinite, so its headline is the sampled rate."""
    top = int(regurgitation["duplicate_count"].max())
    at_top = regurgitation[regurgitation["duplicate_count"] == top]
    p = at_top[at_top["model"] == "p"]
    if p.empty:
        raise ValueError("the regurgitation table has no rows for model p at the top duplication level")
    p_exact, p_rate = float(p["p_exact"].mean()), float(p["sampled_exact_rate"].mean())
    out: dict[str, dict] = {}
    for model in COMBINED:
        c = at_top[at_top["model"] == model]
        if c.empty:
            continue
        if model == "cp_k":
            factor = p_exact / float(c["p_exact"].mean()) if float(c["p_exact"].mean()) > 0 else math.inf
            log2_factor = math.log2(factor) if 0 < factor < math.inf else factor
        else:
            log2_factor = _log2_mean(p["logprob_bits"]) - _log2_mean(c["logprob_bits"])
            factor = min(2.0 ** min(log2_factor, 1000.0), MAX_FACTOR)
        rate = float(c["sampled_exact_rate"].mean())
        out[model] = {
            "level": top, "n_documents": int(c["doc_id"].nunique()), "p_mean_p_exact": p_exact,
            "mean_p_exact": float(c["p_exact"].mean()), "factor": factor, "log2_factor": log2_factor,
            "p_sampled_exact_rate": p_rate, "sampled_exact_rate": rate,
            "p_near_exact_rate": float(p["sampled_near_exact_rate"].mean()),
            "near_exact_rate": float(c["sampled_near_exact_rate"].mean()),
            "p_visible": bool(max(p_exact, p_rate) >= VISIBLE),
            "rate_far_less": bool(rate <= p_rate / FAR_LESS) if p_rate > 0 else False,
        }
    return out


def regurgitation_verdict(numbers: dict) -> str:
    """Far less (>= FAR_LESS times) and p visibly regurgitates: reproduced; far less but p itself hardly
    regurgitates, or only SOMEWHAT_LESS: partially; otherwise not reproduced."""
    factor = numbers["factor"]
    if math.isnan(factor):
        return "not comparable"
    if factor >= FAR_LESS:
        return "reproduced" if numbers["p_visible"] else "partially reproduced"
    return "partially reproduced" if factor >= SOMEWHAT_LESS else "not reproduced"


def cp_k_verdict(numbers: dict) -> str:
    """CP-k by its sampled exact rate: at most 1/FAR_LESS of p's, with p visibly regurgitating."""
    if not numbers["p_visible"]:
        return "partially reproduced" if numbers["sampled_exact_rate"] <= numbers["p_sampled_exact_rate"] else "not reproduced"
    return "reproduced" if numbers["rate_far_less"] else "not reproduced"


def perplexity_numbers(perplexity: pd.DataFrame) -> dict[str, dict]:
    """Per combination: held-out perplexity, its relative cost over p and over the shard models."""
    table = perplexity.set_index("model")
    p = float(table.loc["p", "perplexity"])
    shards = float(table.loc[["q1", "q2"], "perplexity"].mean())
    return {m: {"perplexity": float(table.loc[m, "perplexity"]), "p_perplexity": p, "shard_perplexity": shards,
                "cost_vs_p": float(table.loc[m, "perplexity"]) / p - 1.0,
                "cost_vs_shards": float(table.loc[m, "perplexity"]) / shards - 1.0}
            for m in ("cp_delta", "cp_kl") if m in table.index}


def perplexity_verdict(cost: float) -> str:
    return "reproduced" if cost <= SMALL_COST else "partially reproduced" if cost <= MODERATE_COST else "not reproduced"


def k_numbers(k_values: pd.DataFrame, regurgitation: pd.DataFrame) -> dict[str, dict]:
    """Per generator: median and 95th percentile of k_x over all sampled continuations, the median at the
    highest duplication level, the share within k; and the yardstick: the median information content
    -log2 q_safe(true continuation) of the protected continuations (the NAF bound p(C) <= 2^k q_safe(C)
    says something only while k is below it)."""
    safe = regurgitation.loc[regurgitation["model"] == "q_safe", "logprob_bits"]
    information = float(-safe.median()) if len(safe) else math.nan
    top = int(k_values["duplicate_count"].max())
    out = {}
    for model, rows in k_values.groupby("model"):
        k = rows["k_bits"].to_numpy(dtype=float)
        out[str(model)] = {
            "median_k_bits": float(np.median(k)), "p95_k_bits": float(np.percentile(k, 95)),
            "median_k_bits_top": float(rows.loc[rows["duplicate_count"] == top, "k_bits"].median()),
            "median_k_bits_per_token": float(rows["k_bits_per_token"].median()),
            "within_k_share": float(rows["within_k"].mean()), "information_bits": information,
        }
    return out


def k_verdict(combined: dict, p: dict) -> str:
    """Small k: the 95th percentile stays below the protected continuations' information content (the
    bound is non-vacuous) and the median below p's median at the highest duplication level."""
    non_vacuous = combined["p95_k_bits"] < combined["information_bits"]
    below_p = combined["median_k_bits_top"] < p["median_k_bits_top"]
    return "reproduced" if non_vacuous and below_p else "partially reproduced" if non_vacuous or below_p else "not reproduced"
