"""Headline numbers of the NAF study and its findings (`assets.findings`) against the paper's claims.

The paper (Vyas, Kakade & Barak 2023) claims, qualitatively: models combined from shards (CP-Δ, CP-k)
regurgitate protected content far less than a model trained on everything, at a small cost in quality,
with small k. The rules below fix what "far less", "small cost" and "small k" mean here, before any run; the
paper states no numbers for them, so every finding's reference is none. Every comparison with p needs the
premise (p visibly regurgitates at the top level): without it, or without a CP-k bar (p never sampled the exact
text), the finding is not comparable rather than passed on a ratio of near-zero numbers. CP-k's sampled exact
rate is a count of a few dozen samples: its 95% Wilson interval must lie on one side of the bar (1/10 of p's
rate), else the samples cannot separate the rule and the CP-k findings are not comparable. CP-k's k_x is
descriptive: its accepted outputs pass the threshold k by construction, so its median cannot fail a bar.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from assets.findings import Condition, Finding, Rule, combine, gate
from assets.intervals import wilson_interval

FAR_LESS = 10.0  # "far less": the exact-extraction probability falls by at least this factor
SOMEWHAT_LESS = 2.0
VISIBLE = 0.05  # p "visibly regurgitates" when it puts this much probability on the exact text (mean P(exact))
SMALL_COST = 0.10  # "small perplexity cost": at most +10% held-out perplexity over p
MODERATE_COST = 0.25
# the premise rule and CP-k's bar, made stricter after a review of the demo run (recorded as post-hoc)
REVIEW = ("rule made stricter after review (30 Nov 2026), not tuned to pass: a failed premise (p's P(exact) below "
          f"{VISIBLE}) used to leave 'partially' (the premise's partial bar was 0), and CP-k's bar became 0 <= 0 when "
          "p never sampled the exact text; both are now not comparable")
SAMPLE_REVIEW = ("sample gate added after review (30 Nov 2026), not tuned to pass: CP-k's sampled exact rate counts "
                 "only when its 95% Wilson interval lies on one side of the bar, else not comparable")
COMBINED = ("cp_delta", "cp_kl", "cp_k")
CP_K_DESCRIPTIVE = (
    "descriptive (no rule; judged against the yardstick until a review of 30 Nov 2026, when it read 'reproduced' "
    "on demo): CP-k keeps a proposal only when its k_x <= the threshold k, so its accepted outputs ({share:.0%} "
    "here) have k_x <= k by construction and the rest are its lowest-k proposals; its median is then below k "
    "whenever half are accepted, and below p's by selection, so it cannot show that k stays small. CP-k's claim is "
    "judged on its sampled exact rate (exact_rate_top_cp_k). ")
# check name -> (the finding it reads, what it claims)
CHECKS = {
    "combined_models_regurgitate_far_less": (
        "combined_far_less_top",
        f"At the highest duplication level p visibly regurgitates (P(exact) >= {VISIBLE}), CP-Δ puts at least "
        f"{FAR_LESS:g}x less probability on the protected continuation, and CP-k samples it at most 1/{FAR_LESS:g} as "
        "often as p (its 95% interval below that bar)"),
    "small_perplexity_cost": ("perplexity_cost_cp_delta",
                              f"CP-Δ's held-out perplexity is at most {SMALL_COST:.0%} above p's"),
    "k_stays_small": ("median_k_bits_cp_delta",
                      "CP-Δ's k_x stays below the protected continuations' information content under the safe model "
                      "(median and 95th percentile), and its median at the top level below p's"),
}


MAX_FACTOR = 1e300  # keeps the headline finite when a combination puts (numerically) no mass on the truth


def _log2_mean(bits: pd.Series) -> float:
    """log2 of the mean of 2^bits, computed without underflow."""
    values = bits.to_numpy(dtype=float)
    top = values.max()
    return float(top + np.log2(np.mean(np.exp2(values - top))))


def separates(interval: tuple[float, float], bar: float) -> bool:
    """Whether a rate's 95% interval lies on one side of ``bar`` (the samples decide the rule); when it straddles
    the bar they cannot, and the finding is not comparable."""
    low, high = interval
    return math.isfinite(high) and (high <= bar or low > bar)


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
        n_samples = int(c["n_samples"].sum()) if "n_samples" in c else 0
        out[model] = {
            "level": top, "n_documents": int(c["doc_id"].nunique()), "p_mean_p_exact": p_exact,
            "mean_p_exact": float(c["p_exact"].mean()), "factor": factor, "log2_factor": log2_factor,
            "p_sampled_exact_rate": p_rate, "sampled_exact_rate": rate, "n_samples": n_samples,
            "rate_interval": wilson_interval(round(rate * n_samples), n_samples),
            "p_near_exact_rate": float(p["sampled_near_exact_rate"].mean()),
            "near_exact_rate": float(c["sampled_near_exact_rate"].mean()),
            "p_visible": bool(max(p_exact, p_rate) >= VISIBLE),
            "rate_far_less": bool(rate <= p_rate / FAR_LESS) if p_rate > 0 else False,
        }
    return out


def perplexity_numbers(perplexity: pd.DataFrame) -> dict[str, dict]:
    """Per combination: held-out perplexity, its relative cost over p and over the shard models."""
    table = perplexity.set_index("model")
    p = float(table.loc["p", "perplexity"])
    shards = float(table.loc[["q1", "q2"], "perplexity"].mean())
    return {m: {"perplexity": float(table.loc[m, "perplexity"]), "p_perplexity": p, "shard_perplexity": shards,
                "cost_vs_p": float(table.loc[m, "perplexity"]) / p - 1.0,
                "cost_vs_shards": float(table.loc[m, "perplexity"]) / shards - 1.0}
            for m in ("cp_delta", "cp_kl") if m in table.index}


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


def _fmt(x: float) -> str:
    return "inf" if x == math.inf else "nan" if not math.isfinite(x) else f"{x:.3g}"


def corpus_post_hoc(n_public: int | None, available: int | None) -> str:
    """The post-hoc cut of the unprotected corpus (the demo's 500 documents), or "" when p trains on all."""
    if n_public is None:
        return ""
    of = f" of the {available}" if available else ""
    return (f"public corpus cut to {n_public}{of} unprotected training documents (every protected copy kept), chosen "
            "after seeing results so that p memorises the protected copies within the demo's CPU budget; the paper "
            "trains on the full corpus (not run here)")


def scale_note(summary: pd.DataFrame, reg: pd.DataFrame, p_record: dict, profile: str) -> str:
    """One line on the scale the findings were measured at: documents, duplication levels, samples, model."""
    levels = sorted(summary["duplicate_count"].unique().tolist())
    return (f"{profile} profile: {reg['doc_id'].nunique()} protected documents at {levels} copies, "
            f"{int(reg['n_samples'].max())} samples each, {p_record['parameters']:,}-parameter models, "
            f"{p_record['max_steps']} steps")


def build_findings(summary: pd.DataFrame, reg: pd.DataFrame, k_values: pd.DataFrame, perplexity: pd.DataFrame,
                   scale: str, post_hoc: str = "", study: str = "naf") -> list[Finding]:
    """The study's findings: the premise (p regurgitates), how much less the combinations do, what that costs
    in held-out perplexity, and how large k_x gets; every one with its rule."""
    r, ppl, k = regurgitation_numbers(reg), perplexity_numbers(perplexity), k_numbers(k_values, reg)
    levels = sorted(summary["duplicate_count"].unique().tolist())
    p_rows = summary[summary["model"] == "p"].set_index("duplicate_count")
    p_by_level = "; ".join(f"{lvl} copies: P(exact) {p_rows.loc[lvl, 'mean_p_exact']:.3g}, sampled "
                           f"{p_rows.loc[lvl, 'sampled_exact_rate']:.3f}" for lvl in levels)
    top = r["cp_delta"]
    p_exact = top["p_mean_p_exact"]
    premise = p_exact >= VISIBLE
    review = "; ".join(x for x in (post_hoc, REVIEW) if x)

    def p_visible() -> Condition:
        """The premise every comparison with p needs: below VISIBLE a ratio of two near-zero probabilities says
        nothing, so the premise withholds the verdict (not comparable)."""
        return Condition("p_exact_of_p", p_exact, Rule.at_least(VISIBLE), withholds=not premise)

    unmet = "" if premise else (f" The premise fails (p's P(exact) {_fmt(p_exact)} < {VISIBLE}): not comparable.")

    out = [Finding(
        study, "p_exact_extraction_probability_top", p_exact, rule=Rule.at_least(VISIBLE), scale=scale,
        post_hoc=post_hoc,
        note=f"the premise: p, trained on every copy, regurgitates the most-copied protected documents. p by level: "
             f"{p_by_level}; near-exact (edit distance <= threshold) at {top['level']} copies "
             f"{top['p_near_exact_rate']:.3f}.")]
    for model in ("cp_delta", "cp_kl"):
        n = r[model]
        out.append(Finding(
            study, f"regurgitation_factor_{model}", n["factor"], rule=Rule.at_least(FAR_LESS, partial=SOMEWHAT_LESS),
            scale=scale, post_hoc=review, conditions=[p_visible()],
            note=f"at {n['level']} copies ({n['n_documents']} documents): mean P(exact continuation) p "
                 f"{_fmt(n['p_mean_p_exact'])} vs {model} {_fmt(n['mean_p_exact'])}, factor {_fmt(n['factor'])} "
                 f"(2^{n['log2_factor']:.1f}); sampled exact rate p {n['p_sampled_exact_rate']:.3f} vs "
                 f"{n['sampled_exact_rate']:.3f}, near-exact {n['p_near_exact_rate']:.3f} vs {n['near_exact_rate']:.3f}. "
                 f"Paper: far less than p, shown qualitatively.{unmet}"))
    n = r["cp_k"]
    p_rate = n["p_sampled_exact_rate"]
    bar = p_rate / FAR_LESS
    low95, high95 = n["rate_interval"]
    undecided = p_rate > 0 and not separates(n["rate_interval"], bar)
    count = round(n["sampled_exact_rate"] * n["n_samples"])
    separated = "" if not undecided else (
        f" Not comparable: {count} exact of {n['n_samples']} samples (95% interval {_fmt(low95)}-{_fmt(high95)}) "
        f"cannot separate CP-k's rate from the bar {bar:.3g}.")
    samples = f"{count} of {n['n_samples']} samples, 95% Wilson interval {_fmt(low95)}-{_fmt(high95)}"
    cp_k_review = "; ".join(x for x in (review, SAMPLE_REVIEW) if x)
    # no bar when p never sampled the exact text (1/10 of 0 is no bar): descriptive, not comparable
    out.append(Finding(
        study, "exact_rate_top_cp_k", n["sampled_exact_rate"], rule=Rule.at_most(bar) if p_rate > 0
        else None, scale=scale, post_hoc=cp_k_review,
        conditions=[p_visible(), Condition("cp_k_exact_rate_high95", high95, Rule.at_most(bar), withholds=undecided)]
        if p_rate > 0
        else [p_visible()],
        note=f"CP-k (p's samples kept only if k_x <= k) at {n['level']} copies: sampled exact rate "
             f"{n['sampled_exact_rate']:.3f} ({samples}) vs p's {p_rate:.3f} (the bar: 1/{FAR_LESS:g} of p's; none "
             f"when p never sampled it; the interval must lie on one side of it), near-exact "
             f"{n['near_exact_rate']:.3f} vs {n['p_near_exact_rate']:.3f}; estimated P(exact) {_fmt(n['mean_p_exact'])} "
             f"(p's probability over the acceptance rate when the truth itself passes k, else 0), factor "
             f"{_fmt(n['factor'])}. {k['cp_k']['within_k_share']:.0%} of CP-k's outputs passed k within its tries; "
             "the others are its lowest-k proposal, counted as output (an abstention in the paper's algorithm, which "
             f"retries without limit). Paper: CP-k rarely outputs protected content.{unmet}{separated}"))
    ratio = n["sampled_exact_rate"] / p_rate if p_rate > 0 else math.nan
    never = " (nan: p never sampled it)" if p_rate <= 0 else f" ({samples})"
    conditions = [p_visible(), Condition("cp_k_exact_rate_over_p", ratio, Rule.at_most(1 / FAR_LESS))]
    # CP-k's interval straddling the bar withholds only a pass (an evidence gate): if CP-Δ's part already fails,
    # it counts (CP-k's own ratio is the uncertain number itself, so it does not count as "the rest")
    rest = combine(Rule.at_least(FAR_LESS).grade(top["factor"]), conditions[:1])
    out.append(Finding(
        study, "combined_far_less_top", top["factor"], rule=Rule.at_least(FAR_LESS), scale=scale,
        post_hoc=cp_k_review,
        conditions=[*conditions, gate("cp_k_exact_rate_high95_over_p", high95 / p_rate if p_rate > 0 else math.nan,
                                      Rule.at_most(1 / FAR_LESS), rest, passes=not undecided)],
        note=f"the compound claim at {top['level']} copies: CP-Δ's factor {_fmt(top['factor'])}, p's P(exact) "
             f"{_fmt(p_exact)}, CP-k's sampled exact rate {ratio:.3g} of p's{never}.{unmet}{separated}"))
    for model, n in ppl.items():
        out.append(Finding(
            study, f"perplexity_cost_{model}", n["cost_vs_p"], rule=Rule.at_most(SMALL_COST, partial=MODERATE_COST),
            scale=scale, post_hoc=post_hoc,
            note=f"held-out perplexity {n['perplexity']:.3f} vs p {n['p_perplexity']:.3f} (+{n['cost_vs_p']:.1%}); vs "
                 f"the shard models' mean {n['shard_perplexity']:.3f} ({n['cost_vs_shards']:+.1%}: the combination's "
                 "own cost, the rest is each shard model seeing half the data). Paper: minimal degradation."))
    for model in COMBINED:
        n = k[model]
        info = n["information_bits"]
        # without the yardstick (no q_safe rows) the finding is descriptive; CP-k's is always (CP_K_DESCRIPTIVE)
        judged = math.isfinite(info) and model != "cp_k"
        by_construction = CP_K_DESCRIPTIVE.format(share=n["within_k_share"]) if model == "cp_k" else ""
        out.append(Finding(
            study, f"median_k_bits_{model}", n["median_k_bits"], rule=Rule.at_most(info) if judged else None,
            scale=scale, post_hoc=post_hoc,
            conditions=[Condition("p95_k_bits", n["p95_k_bits"], Rule.at_most(info)),
                        Condition("median_k_bits_top_minus_p", n["median_k_bits_top"] - k["p"]["median_k_bits_top"],
                                  Rule.at_most(0.0, partial=info))] if judged else [],
            note=f"{by_construction}k_x of sampled continuations: median {n['median_k_bits']:.2f} bits "
                 f"({n['median_k_bits_per_token']:.3f}/token), 95th percentile {n['p95_k_bits']:.2f}, median at the "
                 f"top level {n['median_k_bits_top']:.2f} vs p's {k['p']['median_k_bits_top']:.2f}; p's 95th "
                 f"percentile {k['p']['p95_k_bits']:.2f}. Yardstick (the bar): protected continuations carry "
                 f"{info:.1f} bits under the safe model (median), so 2^k·q_safe(C) bounds P(C) non-vacuously only "
                 f"below it. {n['within_k_share']:.0%} within k. Paper: small k, qualitatively."))
    return out
