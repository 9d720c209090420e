"""Headline numbers of the watermark study and its findings (`assets.findings`) against the paper's claims.

Zhang et al. 2023 claim, for KGW, Unigram and Kuditipudi's EXP(-edit): unattacked watermarked text is
detected reliably, and the random-walk attack removes the watermark from most texts with small quality
loss. The rules below fix "reliably", "most" and "small"; the paper's own numbers are not used as references
(different models and texts), so every reference is none. Attack success is read after the walk's full,
fixed step budget (the paper's protocol: the attacker never queries the detector). Quality is the independent
judge's per-byte perplexity after / before the attack (geometric mean over texts), with a 95% interval that is
wide on a few dozen short texts. "Small" (reproduced) needs the whole interval within the bar (x1.10): a point
estimate within it whose interval reaches past it is inconclusive (partially). A point estimate above the bar is
partially reproduced only if it is at most x1.25 and its interval still reaches the bar; above x1.25, or with the
interval's lower end above the bar (a clear loss), it is not reproduced.

The demo's perturbation oracle is the generator itself re-sampling spans without the watermark
(``perturbation="resample"`` in `assets.watermark.defs`): the attacker holds the very model that wrote the text, a
stronger position than the paper's, whose perturbation oracle is a separate, weaker model (a T5 span filler).
"""

from __future__ import annotations

import math

import pandas as pd

from assets.findings import Condition, Finding, Rule

# Post-hoc choices, recorded in the findings' post_hoc column
LENGTHENED = ("walk lengthened from {earlier} to {steps} steps after a first demo run (detector in the loop) freed "
              "only 42-67% of EXP texts; success after {earlier} steps: {rate}")
INTERVAL_RULE = ("the 95%-interval rule for quality was added after the first numbers: a judge ratio above the bar "
                 "(x1.10) is partial only up to x1.25 and while the interval's lower end still reaches the bar; above "
                 "x1.25, or with the lower end above the bar (a clear loss), it fails")
UPPER_END_RULE = ("stricter after review: a small quality loss (reproduced) also needs the interval's upper end within "
                  "the bar; a point estimate within the bar whose interval reaches past it is partial")
RESAMPLE_ORACLE = ("The perturbation oracle here is the generator itself re-sampling spans (without the watermark): "
                   "the attacker holds the model that wrote the text, stronger than the paper's weaker black-box "
                   "perturbation model (T5 span filling).")

HIGH_DETECTION = 0.9  # "detected at high rates" at 1% FPR
SOME_DETECTION = 0.5
MOST = 0.5  # "removes the watermark from most texts": at least half the detected texts freed
SOME = 0.25  # partially: at least a quarter freed
SMALL_QUALITY_LOSS = 0.10  # judge perplexity (per byte) at most 10% above the watermarked text's
MODERATE_QUALITY_LOSS = 0.25  # partially (with an interval that still reaches a small loss)
ANY_UPPER_END = 1e6  # the upper end's partial bar: any finite upper end (a wide interval alone is never a failure)
SCHEMES = ("kgw", "kgw_strong", "unigram", "exp", "exp_edit")
# check name -> (the finding it reads, what it claims)
CHECKS = {
    "watermarked_text_detected": (
        "detection_rate_before_worst",
        f"Every scheme's unattacked watermarked texts are detected at >= {HIGH_DETECTION:.0%} at 1% FPR"),
    "attack_removes_watermarks": (
        "attack_success_worst",
        f"After the fixed step budget the walk frees at least {MOST:.0%} of every scheme's detected texts while the "
        f"judge's perplexity rises at most {SMALL_QUALITY_LOSS:.0%} (its whole 95% interval)"),
}


def quality_conditions(ratio: float, ratio_low: float, ratio_high: float = math.nan) -> list[Condition]:
    """Small quality loss: the judge's ratio at most 1 + SMALL_QUALITY_LOSS (partially up to
    1 + MODERATE_QUALITY_LOSS); not a clear loss (the interval's lower end above the bar fails); and, for
    "reproduced", the interval's upper end within the bar too (past it: partially). Without an interval the point
    estimate decides."""
    bar = 1 + SMALL_QUALITY_LOSS
    out = [Condition("judge_perplexity_ratio", ratio, Rule.at_most(bar, partial=1 + MODERATE_QUALITY_LOSS))]
    if math.isfinite(ratio_low):
        out.append(Condition("judge_perplexity_ratio_low95", ratio_low, Rule.at_most(bar)))
    if math.isfinite(ratio_high):
        out.append(Condition("judge_perplexity_ratio_high95", ratio_high, Rule.at_most(bar, partial=ANY_UPPER_END)))
    return out


def oracle_caveat(r: dict) -> str:
    """The caveat of the attack findings when the generator is its own perturbation oracle ("" otherwise)."""
    return " " + RESAMPLE_ORACLE if r.get("perturbation", "resample") == "resample" else ""


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


def _worst(values, pick=min) -> float:
    values = [float(v) for v in values]
    return math.nan if not values or any(math.isnan(v) for v in values) else pick(values)


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.0%}"


def steps_post_hoc(r: dict) -> str:
    """The demo's lengthened walk (40 -> 60 steps, chosen after seeing results), with the success at 40."""
    earlier, steps = r.get("earlier_budget_steps", math.nan), r.get("steps_budget", math.nan)
    if not (math.isfinite(earlier) and (int(earlier), int(steps)) == (40, 60)):
        return ""
    return LENGTHENED.format(earlier=int(earlier), steps=int(steps), rate=_pct(r["success_rate_earlier_budget"]))


def worst_steps_post_hoc(n: dict[str, dict]) -> str:
    """The lengthened walk once, with every scheme's success at the earlier budget ("" when not lengthened)."""
    lengthened = {name: r for name, r in n.items() if steps_post_hoc(r)}
    if not lengthened:
        return ""
    r = next(iter(lengthened.values()))
    rates = ", ".join(f"{name} {_pct(x['success_rate_earlier_budget'])}" for name, x in lengthened.items())
    return LENGTHENED.format(earlier=int(r["earlier_budget_steps"]), steps=int(r["steps_budget"]), rate=rates)


def success_by_step(r: dict) -> str:
    """Attack success at the checkpoints of the fixed budget T, e.g. "15 steps 40%, 30 steps 60%, ..."."""
    steps = int(r["steps_budget"])
    parts = [(round(steps * q), r.get(c, math.nan)) for q, c in
             ((0.25, "success_rate_quarter"), (0.5, "success_rate_half"), (0.75, "success_rate_three_quarters"))]
    if math.isfinite(r.get("earlier_budget_steps", math.nan)):
        parts.append((int(r["earlier_budget_steps"]), r["success_rate_earlier_budget"]))
    parts = sorted(set(parts)) + [(steps, r["attack_success_rate"])]
    return ", ".join(f"{t} steps {_pct(v)}" for t, v in parts)


def scale_note(summary: pd.DataFrame, calibration: pd.DataFrame, profile: str) -> str:
    """The scale every finding states: texts per scheme, calibration texts, vocabulary, the walk and oracles."""
    cal = calibration.set_index("scheme")
    return (f"{profile} profile: {int(summary['n_texts'].iloc[0])} texts per scheme, "
            f"{int(cal['n_null'].iloc[0])} unwatermarked ({int(cal['n_calibration'].iloc[0])} calibrate the 1% FPR "
            f"threshold, {int(cal['n_held_out'].iloc[0])} held out test it), code LM family "
            f"(vocabulary {int(cal['vocab_size'].iloc[0])}), {int(summary['steps_budget'].iloc[0])}-step walk "
            f"({summary['protocol'].iloc[0]}); {oracle_label(summary.iloc[0])}")


def build_findings(summary: pd.DataFrame, calibration: pd.DataFrame, scale: str,
                   study: str = "watermark") -> list[Finding]:
    """Detection before the attack, attack success after the fixed budget and quality cost per scheme, and
    the worst scheme's numbers (the claims "every scheme")."""
    n = numbers(summary)
    cal = calibration.set_index("scheme")
    out = []
    for name, r in n.items():
        c = cal.loc[name]
        params = (f"γ={c['gamma']}, δ={c['delta']}" if c["kind"] in ("kgw", "unigram")
                  else f"n={int(c['key_length'])}" + (f", edit γ={c['edit_gamma']}" if c["kind"] == "exp_edit" else ""))
        z_note = (f"; z > 4: {c['z_threshold_rate']:.0%}" if c["kind"] in ("kgw", "unigram") else
                  f"; permutation p-values floor at 1/{int(c['permutation_runs']) + 1}")
        out.append(Finding(
            study, f"detection_rate_before_{name}", r["detection_rate_before"],
            rule=Rule.at_least(HIGH_DETECTION, partial=SOME_DETECTION), scale=scale,
            note=f"{name} ({params}): {r['detection_rate_before']:.0%} of unattacked watermarked texts above the "
                 f"threshold calibrated at 1% FPR on {int(c['n_calibration'])} unwatermarked texts (threshold "
                 f"{c['threshold']:.3g}; on {int(c['n_held_out'])} held-out unwatermarked texts it flags "
                 f"{int(c['held_out_false_positives'])}, {c['held_out_false_positive_rate']:.1%}; p <= 0.01: "
                 f"{c['p_below_fpr_rate']:.0%}{z_note}). The detector's "
                 f"own p-values on unwatermarked text: mean {c['null_p_mean']:.2f}, KS test vs uniform p = "
                 f"{c['null_p_ks_pvalue']:.2g}. Paper: high detection of unattacked text."))
        low, high = r["judge_perplexity_ratio_low"], r.get("judge_perplexity_ratio_high", math.nan)
        quality = (f"judge perplexity x{r['judge_perplexity_ratio']:.3f} (95% interval {low:.2f}-"
                   f"{r['judge_perplexity_ratio_high']:.2f}; bits/byte {r['judge_bits_per_byte_before']:.3f} -> "
                   f"{r['judge_bits_per_byte_after']:.3f}; unwatermarked samples on the same prompts "
                   f"{r['judge_bits_per_byte_unwatermarked_same_prompts']:.3f}, on all prompts "
                   f"{r['judge_bits_per_byte_unwatermarked']:.3f})")
        post = "; ".join(p for p in (steps_post_hoc(r), INTERVAL_RULE, UPPER_END_RULE) if p)
        out.append(Finding(
            study, f"attack_success_{name}", r["attack_success_rate"], rule=Rule.at_least(MOST, partial=SOME),
            scale=scale, post_hoc=post, conditions=quality_conditions(r["judge_perplexity_ratio"], low, high),
            note=f"{r.get('protocol', 'fixed budget')}: after {int(r['steps_budget'])} steps the walk freed "
                 f"{r['attack_success_rate']:.0%} of the {int(r['n_detected_before'])} detected texts (detection "
                 f"{r['detection_rate_before']:.0%} -> {r['detection_rate_after']:.0%}); success by step count: "
                 f"{success_by_step(r)}; median {r['median_steps_to_success']:.0f} steps until the detector first let "
                 f"a freed text go; {r['mean_tokens_changed']:.0%} of tokens changed, "
                 f"{r.get('acceptance_rate', math.nan):.0%} of {r.get('perturbation', 'resample')} proposals accepted. "
                 f"Quality: {quality}, oracle perplexity x{r['oracle_perplexity_ratio']:.3f}. Paper: removes the "
                 "watermark from most texts with small quality loss." + oracle_caveat(r)))
        out.append(Finding(
            study, f"quality_ratio_{name}", r["judge_perplexity_ratio"],
            rule=Rule.at_most(1 + SMALL_QUALITY_LOSS, partial=1 + MODERATE_QUALITY_LOSS), scale=scale,
            post_hoc=post, conditions=quality_conditions(r["judge_perplexity_ratio"], low, high)[1:],
            note=f"independent judge's per-byte perplexity after / before the attack, geometric mean over texts: "
                 f"{quality}. Paper: small quality loss."))
    rows = list(n.values())
    post = "; ".join(p for p in (worst_steps_post_hoc(n), INTERVAL_RULE, UPPER_END_RULE) if p)
    out.append(Finding(
        study, "detection_rate_before_worst", _worst(r["detection_rate_before"] for r in rows),
        rule=Rule.at_least(HIGH_DETECTION, partial=SOME_DETECTION), scale=scale,
        note="the lowest detection rate of unattacked watermarked text over the schemes."))
    out.append(Finding(
        study, "attack_success_worst", _worst(r["attack_success_rate"] for r in rows),
        rule=Rule.at_least(MOST, partial=SOME), scale=scale, post_hoc=post,
        conditions=quality_conditions(_worst((r["judge_perplexity_ratio"] for r in rows), max),
                                      _worst((r["judge_perplexity_ratio_low"] for r in rows), max),
                                      _worst((r.get("judge_perplexity_ratio_high", math.nan) for r in rows), max)),
        note="the lowest attack success after the full budget over the schemes, with the largest quality loss "
             "(point estimate and interval ends, each the worst over the schemes)."
             + (oracle_caveat(rows[0]) if rows else "")))
    return out
