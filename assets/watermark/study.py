"""The study end to end on plain tensors: prompts, watermarked and unwatermarked generations, calibration of
every detector at a fixed false-positive rate, the random-walk attack, and quality before and after.

Models: ``generator`` writes (and, as the "resample" perturbation oracle, re-samples spans; the "infill"
oracle is the FIM in-filler of `assets.watermark.infill`), ``oracle`` is the larger
model whose mean log-probability of the response is the quality oracle, and ``judge`` (a byte n-gram model,
`assets.watermark.ngram`) measures quality independently of both.

Detection is always judged against a threshold calibrated on unwatermarked text: the (1 − fpr) quantile of
the detector's scores on a seeded half of the ``n_null`` unwatermarked generations (`null_split`); the other half
is held out, and its false-positive rate at that threshold tests the 1% out of sample (`assets.watermark.validity`
judges it). p-values: the normal tail for the z-tests;
for EXP / EXP-edit the authors' permutation test before and after the attack, and along the walk (where a
permutation test per step would cost ``runs`` times more) the empirical p-value against the calibration half's
scores, (1 + #{null ≥ score}) / (N + 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from assets.corpora.tokenization import encode_texts
from assets.watermark.attack import WalkSettings, checkpoints, first_undetected_step, random_walk, success_at
from assets.watermark.schemes import Scheme

Log = Callable[[str], None]


@dataclass(frozen=True)
class StudySettings:
    prompt_tokens: int = 16
    response_tokens: int = 40
    n_texts: int = 24
    n_null: int = 200
    fpr: float = 0.01
    z_threshold: float = 4.0
    permutation_runs: int = 29
    batch_size: int = 64
    seed: int = 0

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> StudySettings:
        """The settings named in ``values`` (e.g. a Config's ``model_dump()``); others keep their defaults."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1 or self.response_tokens < 2 or self.n_texts < 1:
            raise ValueError(f"need prompt_tokens >= 1, response_tokens >= 2, n_texts >= 1; got {self}")
        if not 0 < self.fpr < 1 or self.n_null < math.ceil(1 / self.fpr):
            raise ValueError(f"fpr must be in (0, 1) and n_null >= 1/fpr to calibrate it; got fpr={self.fpr}, "
                             f"n_null={self.n_null}")


def sample_prompts(tokenizer: Any, texts: Sequence[str], n: int, length: int, seed: int):
    """n prompts [n, length]: windows of ``length`` tokens starting at a random line of a random text."""
    import torch

    rng = np.random.default_rng(seed)
    encoded = [ids for ids in encode_texts(tokenizer, texts) if len(ids) > length]
    if not encoded:
        raise ValueError(f"no text is longer than prompt_tokens={length} tokens")
    newline = set(tokenizer.backend_tokenizer.encode("\n", add_special_tokens=False).ids)
    prompts = []
    for _ in range(n):
        ids = encoded[rng.integers(len(encoded))]
        starts = [i + 1 for i, t in enumerate(ids[:-length - 1]) if t in newline] or [0]
        start = starts[rng.integers(len(starts))]
        prompts.append(ids[start:start + length])
    return torch.tensor(prompts, dtype=torch.long)


def mean_logprob(model: Any, prompts, responses, batch_size: int = 64) -> np.ndarray:
    """Quality oracle: mean log p(response token | prompt, earlier tokens) per text, in nats."""
    import torch

    from assets.lm.inference import token_statistics

    ids = torch.cat([prompts, responses], dim=1)
    stats = token_statistics(model, ids, batch_size=batch_size, return_hidden=False)
    p = prompts.size(1)
    return stats["logprob"][:, p - 1:ids.size(1) - 1].double().mean(1).numpy()


def decode(tokenizer: Any, rows) -> list[str]:
    return [tokenizer.decode(r.tolist(), skip_special_tokens=True) for r in rows]


SPLIT_SEED_OFFSET = 17  # the null split's seed is the study's seed + this (recorded as ``split_seed``)


def null_split(n_null: int, seed: int) -> np.ndarray:
    """Which unwatermarked texts are held out from calibration [n_null] (True: held out): a seeded random half
    (when n_null is odd, the extra text calibrates)."""
    held_out = np.zeros(n_null, dtype=bool)
    held_out[np.random.default_rng(seed).permutation(n_null)[:n_null // 2]] = True
    return held_out


def calibrated_threshold(null_scores: np.ndarray, fpr: float) -> float:
    """The score a text must exceed: the (1 − fpr) quantile of the unwatermarked texts' scores."""
    return float(np.quantile(np.asarray(null_scores, dtype=float), 1 - fpr, method="higher"))


def empirical_pvalue(scores: np.ndarray, null_scores: np.ndarray) -> np.ndarray:
    """(1 + #{null ≥ score}) / (N + 1): the p-value of a score against the unwatermarked texts."""
    null = np.sort(np.asarray(null_scores, dtype=float))
    above = len(null) - np.searchsorted(null, np.asarray(scores, dtype=float), side="left")
    return (1.0 + above) / (len(null) + 1.0)


def generate_texts(generator: Any, tokenizer: Any, texts: Sequence[str], schemes: dict[str, Scheme],
                   s: StudySettings, log: Log = print) -> dict[str, Any]:
    """Prompts, one watermarked generation per scheme that generates, and the unwatermarked null texts (the
    first n_texts of them on the watermarked texts' own prompts)."""
    import torch

    from assets.lm.inference import generate

    prompts = sample_prompts(tokenizer, texts, s.n_texts, s.prompt_tokens, s.seed)
    # the first unwatermarked texts answer the watermarked texts' prompts: a same-prompt quality baseline
    others = sample_prompts(tokenizer, texts, max(s.n_null - s.n_texts, 0), s.prompt_tokens, s.seed + 1) \
        if s.n_null > s.n_texts else prompts[:0]
    null_prompts = torch.cat([prompts, others])[:s.n_null]
    tokens = {}
    for name, scheme in schemes.items():
        if scheme.texts_from == name:
            tokens[name] = scheme.generate(generator, prompts, s.response_tokens, seed=s.seed + 7)
            log(f"generated {len(prompts)} {name}-watermarked texts")
    null = generate(generator, null_prompts, s.response_tokens, seed=s.seed + 11)[:, s.prompt_tokens:].cpu()
    return {"prompts": prompts, "tokens": tokens, "null_prompts": null_prompts, "null_tokens": null}


def detection_tables(gen: dict, schemes: dict[str, Scheme], s: StudySettings, quality: dict[str, np.ndarray],
                     texts: dict[str, list[str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per text (watermarked and unwatermarked, under every detector; with its token ids) and per scheme
    (the threshold calibrated on the calibration half of the null texts, the false-positive rate on that half and
    on the held-out half, the null p-values, detection before any attack). ``quality`` and ``texts`` are keyed by
    generation name and "null"."""
    from scipy.stats import kstest

    from assets.watermark.schemes import scheme_params

    tokens = {**gen["tokens"], "null": gen["null_tokens"]}
    prompts = {**{k: gen["prompts"] for k in gen["tokens"]}, "null": gen["null_prompts"]}

    rows, calibration = [], []
    n_perm = min(s.n_texts, len(gen["null_tokens"]))
    split_seed = s.seed + SPLIT_SEED_OFFSET
    held_out = null_split(len(gen["null_tokens"]), split_seed)
    for name, scheme in schemes.items():
        null = scheme.detect(gen["null_tokens"])
        threshold = calibrated_threshold(null["score"][~held_out], s.fpr)
        flagged = null["score"] > threshold
        wm = scheme.detect(gen["tokens"][scheme.texts_from], runs=s.permutation_runs, seed=s.seed)
        if scheme.kind in ("exp", "exp_edit"):  # the authors' permutation p-values on part of the null texts
            null_p = scheme.detect(gen["null_tokens"][:n_perm], runs=s.permutation_runs, seed=s.seed + 1)["p_value"]
            null["p_value"][:n_perm] = null_p
        for role, res, key in (("watermarked", wm, scheme.texts_from), ("unwatermarked", null, "null")):
            frame = pd.DataFrame({
                "scheme": name, "role": role, "text_id": np.arange(len(res["score"])), "score": res["score"],
                "statistic": res["statistic"], "p_value": res["p_value"], "detected": res["score"] > threshold,
                "p_below_fpr": res["p_value"] <= s.fpr, "oracle_logprob": quality[key], "text": texts[key],
                "prompt_ids": list(prompts[key].numpy()), "response_ids": list(tokens[key].numpy()),
                "held_out": held_out if role == "unwatermarked" else False})
            rows.append(frame)
        null_p = null["p_value"][~np.isnan(null["p_value"])]
        calibration.append({
            **scheme_params(scheme), "fpr": s.fpr, "permutation_runs": s.permutation_runs, "threshold": threshold,
            "n_null": len(null["score"]), "split_seed": split_seed, "n_calibration": int((~held_out).sum()),
            "n_held_out": int(held_out.sum()),
            "calibration_false_positive_rate": float(np.mean(flagged[~held_out])),  # <= fpr by construction
            "held_out_false_positives": int(flagged[held_out].sum()),
            "held_out_false_positive_rate": float(np.mean(flagged[held_out])) if held_out.any() else np.nan,
            "null_score_mean": float(np.mean(null["score"])), "null_score_std": float(np.std(null["score"])),
            "null_p_mean": float(null_p.mean()), "null_p_ks_pvalue": float(kstest(null_p, "uniform").pvalue),
            "detection_rate": float(np.mean(wm["score"] > threshold)),
            "p_below_fpr_rate": float(np.mean(wm["p_value"] <= s.fpr)),
            "z_threshold_rate": float(np.mean(wm["score"] > s.z_threshold)) if scheme.kind in ("kgw", "unigram")
            else np.nan,
            "watermarked_score_mean": float(np.mean(wm["score"]))})
    return pd.concat(rows, ignore_index=True), pd.DataFrame(calibration)


# the calibration's columns a reader needs first
CALIBRATION_SHOWN = ("scheme", "threshold", "n_calibration", "n_held_out", "held_out_false_positives",
                     "held_out_false_positive_rate", "null_p_ks_pvalue", "detection_rate", "p_below_fpr_rate",
                     "z_threshold_rate")


def generate_and_detect(generator: Any, oracle: Any, tokenizer: Any, texts: Sequence[str], schemes: dict[str, Scheme],
                        s: StudySettings, log: Log = print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`generate_texts`, the quality oracle's mean log-probability of every generation, and the
    `detection_tables` of them all (per text, per scheme)."""
    gen = generate_texts(generator, tokenizer, texts, schemes, s, log=log)
    groups = {**{k: (gen["prompts"], v) for k, v in gen["tokens"].items()},
              "null": (gen["null_prompts"], gen["null_tokens"])}
    quality = {k: mean_logprob(oracle, p, t, s.batch_size) for k, (p, t) in groups.items()}
    decoded = {k: decode(tokenizer, t) for k, (_, t) in groups.items()}
    return detection_tables(gen, schemes, s, quality, decoded)


@dataclass
class AttackInputs:
    """The generation step's tables back as what `run_attack` takes: the schemes, the generations (``gen`` of
    `generate_texts`: prompts and the watermarked tokens of every generating scheme), the calibration half's
    unwatermarked scores per scheme (for empirical p-values), the settings they were made with, and the first
    scheme's unwatermarked texts (both halves)."""

    schemes: dict[str, Scheme]
    gen: dict[str, Any]
    null_scores: dict[str, np.ndarray]
    settings: StudySettings
    null_texts: pd.DataFrame


def attack_inputs(texts: pd.DataFrame, calibration: pd.DataFrame, seed: int = 0, device: str = "cpu") -> AttackInputs:
    """Rebuild the schemes (from the calibration's parameters) and the generation tensors (from the token ids
    of ``texts``) in the order the generation step made them."""
    import torch

    from assets.watermark.schemes import scheme_from_params

    schemes = {r["scheme"]: scheme_from_params(r, device) for r in calibration.to_dict("records")}
    marked = texts[texts["role"] == "watermarked"]
    first = marked[marked["scheme"] == next(iter(schemes))].sort_values("text_id")
    gen = {"prompts": torch.tensor(np.stack(first["prompt_ids"].to_list()), dtype=torch.long),
           "tokens": {name: torch.tensor(np.stack(g.sort_values("text_id")["response_ids"].to_list()),
                                         dtype=torch.long)
                      for name, g in marked.groupby("scheme") if schemes[name].texts_from == name}}
    null = texts[texts["role"] == "unwatermarked"]
    calibrating = null[~null["held_out"].astype(bool)] if "held_out" in null else null
    null_scores = {name: g["score"].to_numpy() for name, g in calibrating.groupby("scheme")}
    s = StudySettings(prompt_tokens=gen["prompts"].size(1), response_tokens=len(first["response_ids"].iloc[0]),
                      n_texts=len(first), n_null=int((null["scheme"] == first["scheme"].iloc[0]).sum()),
                      fpr=float(calibration["fpr"].iloc[0]),
                      permutation_runs=int(calibration["permutation_runs"].iloc[0]), seed=seed)
    return AttackInputs(schemes, gen, null_scores, s, null[null["scheme"] == first["scheme"].iloc[0]])


def unwatermarked_quality(judge: Any, tokenizer: Any, null_texts: pd.DataFrame, n_texts: int) -> tuple[float, float]:
    """The judge's mean bits per byte of unwatermarked text: over all of it, and over the answers to the
    watermarked texts' own prompts (the first ``n_texts``)."""
    contexts = [tokenizer.decode(list(ids), skip_special_tokens=True) for ids in null_texts["prompt_ids"]]
    each = judge.bits_per_byte(null_texts["text"].tolist(), contexts)
    same = null_texts["text_id"].to_numpy() < n_texts
    return float(np.nanmean(each)), float(np.nanmean(each[same])) if same.any() else float("nan")


def run_attack(generator: Any, oracle: Any, judge: Any, tokenizer: Any, gen: dict, schemes: dict[str, Scheme],
               calibration: pd.DataFrame, null_scores: dict[str, np.ndarray], s: StudySettings,
               walk: WalkSettings, log: Log = print, infiller: tuple[Any, Any] | None = None
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Attack every scheme's watermarked texts at once; returns (per-step walk records, per-text results).
    ``infiller`` (model, `FimIds`) is the perturbation oracle when ``walk.perturbation == "infill"``."""
    import torch

    from assets.watermark.attack import resampler
    from assets.watermark.infill import propose_infill

    if walk.perturbation == "infill":
        if infiller is None:
            raise ValueError("walk.perturbation='infill' needs infiller=(model, FimIds)")
        fim_model, fim_ids = infiller

        def propose(p, r, spans, rng, seed):
            return propose_infill(fim_model, fim_ids, p, r, spans, rng, seed=seed, temperature=walk.temperature)
    else:
        propose = resampler(generator, walk.temperature)

    names = list(schemes)
    n = s.n_texts
    scheme_of = np.repeat(np.arange(len(names)), n)
    prompts = gen["prompts"].repeat(len(names), 1)
    responses = torch.cat([gen["tokens"][schemes[name].texts_from] for name in names])
    thresholds = calibration.set_index("scheme").loc[names, "threshold"].to_numpy()

    def detect(rows_tokens, rows):
        score, pval = np.zeros(len(rows)), np.zeros(len(rows))
        for i, name in enumerate(names):
            pick = np.flatnonzero(scheme_of[rows] == i)
            if len(pick):
                res = schemes[name].detect(rows_tokens[pick])
                score[pick] = res["score"]
                p = res["p_value"]
                pval[pick] = empirical_pvalue(res["score"], null_scores[name]) if np.isnan(p).all() else p
        return {"score": score, "p_value": pval, "detected": score > thresholds[scheme_of[rows]]}

    def quality(p, r):
        return mean_logprob(oracle, p, r, s.batch_size)

    final, steps, q_before, info = random_walk(generator, prompts, responses, quality, detect, walk, log, propose)
    steps.insert(0, "scheme", np.array(names)[scheme_of[steps["row"].to_numpy()]])
    steps["perturbation"] = walk.perturbation
    steps.insert(2, "text_id", steps["row"].to_numpy() % n)
    q_after = quality(prompts, final)
    before, after = steps[steps["step"] == 0].set_index("row"), detect(final, np.arange(len(final)))
    runs = s.permutation_runs
    p_before, p_after = np.array(before["p_value"]), np.array(after["p_value"])
    for i, name in enumerate(names):  # the authors' permutation p-values before and after for EXP / EXP-edit
        rows = np.flatnonzero(scheme_of == i)
        if schemes[name].kind in ("exp", "exp_edit"):
            p_before[rows] = schemes[name].detect(responses[rows], runs=runs, seed=s.seed)["p_value"]
            p_after[rows] = schemes[name].detect(final[rows], runs=runs, seed=s.seed)["p_value"]
    contexts = decode(tokenizer, prompts)
    judge_before = judge.bits_per_byte(decode(tokenizer, responses), contexts)
    judge_after = judge.bits_per_byte(decode(tokenizer, final), contexts)
    detected_before = before["detected"].to_numpy(bool)
    results = pd.DataFrame({
        "scheme": np.array(names)[scheme_of], "text_id": np.arange(len(final)) % n, "perturbation": walk.perturbation,
        "score_before": before["score"].to_numpy(), "score_after": after["score"], "p_value_before": p_before,
        "p_value_after": p_after, "detected_before": detected_before, "detected_after": after["detected"],
        "steps": info["steps_taken"], "accepted_steps": info["accepted"],
        "tokens_changed": (final != responses).float().mean(1).numpy(),
        "oracle_logprob_before": q_before, "oracle_logprob_after": q_after,
        "oracle_perplexity_before": np.exp(-q_before), "oracle_perplexity_after": np.exp(-q_after),
        "judge_bits_per_byte_before": judge_before, "judge_bits_per_byte_after": judge_after,
        "quality_kept": q_after >= q_before - walk.quality_tolerance - 1e-9,
        "text_before": decode(tokenizer, responses), "text_after": decode(tokenizer, final)})
    results["attack_success"] = results["detected_before"] & ~results["detected_after"] & results["quality_kept"]
    results["first_undetected_step"] = first_undetected_step(steps, len(final), walk.steps)
    results["protocol"] = "detector in the loop" if walk.detector_in_the_loop else "fixed budget"
    return steps, results


CHECKPOINT_COLUMNS = ("success_rate_quarter", "success_rate_half", "success_rate_three_quarters")


def summarise(results: pd.DataFrame, calibration: pd.DataFrame, null_judge_bpb: float,
              same_prompt_judge_bpb: float = float("nan"), walk: pd.DataFrame | None = None,
              steps: int | None = None, earlier_budget: int | None = None) -> pd.DataFrame:
    """Per scheme: detection before and after, attack success after the full budget of ``steps`` and (from the
    per-step ``walk``) after T/4, T/2, 3T/4 and ``earlier_budget`` steps, and quality before and after (with the
    judge's bits/byte of unwatermarked text overall and on the watermarked texts' own prompts)."""
    at: dict[str, int] = {}
    if walk is not None and steps is not None:
        at = dict(zip(CHECKPOINT_COLUMNS, checkpoints(steps)[1:-1], strict=False))
        if earlier_budget is not None:
            at["success_rate_earlier_budget"] = min(earlier_budget, steps)
        freed = success_at(walk, len(results), steps, sorted(set(at.values())))
    out = []
    for name, g in results.groupby("scheme", sort=False):
        hit = g[g["detected_before"]]
        rows = np.flatnonzero((results["scheme"] == name).to_numpy() & results["detected_before"].to_numpy(bool))
        by_step = {c: float(freed[t][rows].mean()) if len(rows) else float("nan") for c, t in at.items()}
        cal = calibration.set_index("scheme").loc[name]
        # geometric mean over texts of the judge's per-byte perplexity after / before, with a 95% normal interval
        diff = (g["judge_bits_per_byte_after"] - g["judge_bits_per_byte_before"]).to_numpy()
        judge_ratio = float(2.0 ** diff.mean())
        half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
        out.append({
            "scheme": name, "perturbation": g["perturbation"].iloc[0], "n_texts": len(g), "threshold": cal["threshold"],
            "detection_rate_before": float(g["detected_before"].mean()),
            "detection_rate_after": float(g["detected_after"].mean()),
            "protocol": g["protocol"].iloc[0] if "protocol" in g else "fixed budget",
            "steps_budget": steps if steps is not None else int(g["steps"].max()),
            **{c: by_step.get(c, float("nan")) for c in CHECKPOINT_COLUMNS},
            "attack_success_rate": float(hit["attack_success"].mean()) if len(hit) else float("nan"),
            "earlier_budget_steps": at.get("success_rate_earlier_budget", np.nan),
            "success_rate_earlier_budget": by_step.get("success_rate_earlier_budget", float("nan")),
            "n_detected_before": len(hit),
            # steps until the detector first let go, among texts freed after the full budget
            "median_steps_to_success": float(hit.loc[hit["attack_success"], "first_undetected_step"].median())
            if len(hit) and "first_undetected_step" in hit else np.nan,
            "mean_accepted_steps": float(g["accepted_steps"].mean()),
            "acceptance_rate": float(g["accepted_steps"].sum() / max(int(g["steps"].sum()), 1)),
            "mean_tokens_changed": float(g["tokens_changed"].mean()),
            "judge_bits_per_byte_before": float(g["judge_bits_per_byte_before"].mean()),
            "judge_bits_per_byte_after": float(g["judge_bits_per_byte_after"].mean()),
            "judge_bits_per_byte_unwatermarked": null_judge_bpb,
            "judge_bits_per_byte_unwatermarked_same_prompts": same_prompt_judge_bpb,
            "judge_perplexity_ratio": judge_ratio, "judge_perplexity_ratio_low": float(2.0 ** (diff.mean() - half)),
            "judge_perplexity_ratio_high": float(2.0 ** (diff.mean() + half)),
            "oracle_perplexity_ratio": float(np.exp(np.mean(g["oracle_logprob_before"] - g["oracle_logprob_after"]))),
            "quality_kept_rate": float(g["quality_kept"].mean())})
    return pd.DataFrame(out)
