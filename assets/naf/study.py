"""The NAF evaluation end to end: regurgitation of protected documents, k_x of samples, held-out perplexity.

Given the baseline p (trained on everything) and the shard models q1, q2, this compares six generators on
the protected documents' prompts: p, q1, q2, CP-Δ (∝ min(q1, q2)), CP-KL (∝ √(q1·q2)) and CP-k (samples
of p kept only when k_x ≤ k). For each document, ``q_holder`` is the shard model that saw it and ``q_safe``
the one that did not (the "safe" model of the NAF definition).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from assets.naf.combine import LN2, cp_delta, cp_kl, sequence_k_bits, single
from assets.naf.perplexity import heldout_perplexity, heldout_windows
from assets.naf.regurgitation import by_duplication, match_rates, protected_prompts
from assets.naf.sampling import cp_k_sample, sample, score_tokens

BASE_MODELS = ("p", "q1", "q2")
COMBINED = ("cp_delta", "cp_kl", "cp_k")
KIND = {"p": "baseline", "q1": "shard", "q2": "shard", "q_holder": "shard (saw the document)",
        "q_safe": "shard (never saw it)", "cp_delta": "combined", "cp_kl": "combined", "cp_k": "combined"}
RULES = {"cp_delta": (["q1", "q2"], cp_delta), "cp_kl": (["q1", "q2"], cp_kl)}
K_GENERATORS = ("p", "cp_delta", "cp_kl", "cp_k")


@dataclass(frozen=True)
class EvaluationSettings:
    """How the models are probed (see the study config for each field's meaning)."""

    prompt_words: int = 8
    continuation_words: int = 16
    max_documents: int | None = None
    n_samples: int = 32
    temperature: float = 1.0
    near_exact_threshold: float = 0.1
    k_bits: float = 8.0
    cp_k_max_tries: int = 8
    perplexity_windows: int = 64
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for field in ("n_samples", "cp_k_max_tries", "perplexity_windows", "batch_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"EvaluationSettings.{field} must be a positive int, got {value!r}")
        if not self.temperature > 0:
            raise ValueError(f"EvaluationSettings.temperature must be > 0 (sampling), got {self.temperature!r}")
        if not 0 <= self.near_exact_threshold < 1:
            raise ValueError(f"EvaluationSettings.near_exact_threshold must be in [0, 1), got {self.near_exact_threshold!r}")
        if not self.k_bits >= 0:
            raise ValueError(f"EvaluationSettings.k_bits must be >= 0, got {self.k_bits!r}")


def _generators(models: Mapping[str, Any]) -> dict[str, tuple[list[Any], Any]]:
    return {"p": ([models["p"]], single(0)), "q1": ([models["q1"]], single(0)), "q2": ([models["q2"]], single(0)),
            "cp_delta": ([models["q1"], models["q2"]], cp_delta), "cp_kl": ([models["q1"], models["q2"]], cp_kl)}


def _k_of(scores, name: str):
    """k_x per sequence of generator ``name`` against the safe models q1, q2 (bits)."""
    return sequence_k_bits(scores.logprob[name], [scores.logprob["q1"], scores.logprob["q2"]])


def _group_rows(models, group: pd.DataFrame, s: EvaluationSettings, generator, log) -> tuple[list, list]:
    """Regurgitation and k rows for prompts that share one continuation length."""
    import torch

    prompts = torch.tensor(group["prompt_ids"].tolist(), dtype=torch.long)
    truth = torch.tensor(group["continuation_ids"].tolist(), dtype=torch.long)
    start, n_docs, length = prompts.size(1), len(group), truth.size(1)
    truth_scores = score_tokens(models, torch.cat([prompts, truth], 1), start, RULES, s.batch_size)
    true_logprob = {n: v.double().sum(-1) for n, v in truth_scores.logprob.items()}
    true_k = {n: _k_of(truth_scores, n) for n in [*BASE_MODELS, *RULES]}
    true_log_z = {n: -truth_scores.log_z[n].double().sum(-1) / LN2 for n in RULES}
    repeated = prompts.repeat_interleave(s.n_samples, dim=0)
    docs = group.reset_index(drop=True)
    outputs: dict[str, dict[str, Any]] = {}
    for name, (members, rule) in _generators(models).items():
        ids = sample(members, rule, repeated, length, generator=generator, temperature=s.temperature,
                     batch_size=s.batch_size)
        greedy = sample(members, rule, prompts, length, generator=generator, temperature=0.0, batch_size=s.batch_size)
        outputs[name] = {"ids": ids, "greedy": greedy[:, start:]}
    cpk = cp_k_sample(models["p"], [models["q1"], models["q2"]], repeated, length, s.k_bits,
                      max_tries=s.cp_k_max_tries, generator=generator, batch_size=s.batch_size)
    outputs["cp_k"] = {"ids": cpk.ids, "greedy": None}
    log(f"continuation length {length}: {n_docs} documents x {s.n_samples} samples from "
        f"{len(outputs)} generators; CP-k accepted {float(cpk.accepted.float().mean()):.0%}")

    reg_rows, k_rows = [], []
    for name, out in outputs.items():
        continuations = out["ids"][:, start:].view(n_docs, s.n_samples, length)
        if name in K_GENERATORS:
            if name == "cp_k":
                k, log_z, within = cpk.k_bits, torch.full_like(cpk.k_bits, math.nan), cpk.accepted
                first_ok = cpk.first_accepted.view(n_docs, s.n_samples).float().mean(-1)
            else:
                scored = score_tokens(models, out["ids"], start, RULES, s.batch_size)
                k = _k_of(scored, name)
                log_z = (-scored.log_z[name].double().sum(-1) / LN2) if name in RULES else torch.full_like(k, math.nan)
                within = k <= s.k_bits
            for i, d in enumerate(docs.itertuples()):
                for j in range(s.n_samples):
                    row = i * s.n_samples + j
                    k_rows.append({"model": name, "doc_id": d.doc_id, "duplicate_count": d.duplicate_count,
                                   "holder_shard": d.holder_shard, "sample": j, "n_tokens": length,
                                   "k_bits": float(k[row]), "k_bits_per_token": float(k[row]) / length,
                                   "log_normaliser_bits": float(log_z[row]), "within_k": bool(within[row]),
                                   "exact": bool(torch.equal(continuations[i, j], truth[i]))})
        for i, d in enumerate(docs.itertuples()):
            rates = match_rates(continuations[i].tolist(), truth[i].tolist(), s.near_exact_threshold)
            if name == "cp_k":
                # CP-k outputs p conditioned on k_x <= k: the truth keeps p's probability over P(accept)
                passes = float(true_k["p"][i]) <= s.k_bits
                acceptance = max(float(first_ok[i]), 1.0 / s.n_samples)
                p_exact = math.exp(float(true_logprob["p"][i])) / acceptance if passes else 0.0
                logprob_bits, greedy_exact, k_true = math.nan, math.nan, float(true_k["p"][i])
            else:
                logprob_bits = float(true_logprob[name][i]) / LN2
                p_exact = 2.0 ** logprob_bits
                greedy_exact = float(torch.equal(out["greedy"][i], truth[i]))
                k_true = float(true_k[name][i])
            reg_rows.append({"model": name, "doc_id": d.doc_id, "duplicate_count": d.duplicate_count,
                             "holder_shard": d.holder_shard, "n_continuation_tokens": length,
                             "logprob_bits": logprob_bits, "p_exact": min(p_exact, 1.0), **rates,
                             "greedy_exact": greedy_exact, "k_true_bits": k_true,
                             "log_normaliser_bits": float(true_log_z[name][i]) if name in RULES else math.nan,
                             "n_samples": s.n_samples})
    return reg_rows, k_rows


def _with_shard_views(regurgitation: pd.DataFrame) -> pd.DataFrame:
    """Add q_holder / q_safe rows: per document, the shard model that saw it and the one that did not."""
    views = []
    for view, same in (("q_holder", True), ("q_safe", False)):
        for shard, name in ((0, "q1"), (1, "q2")):
            rows = regurgitation[(regurgitation["model"] == name)
                                 & ((regurgitation["holder_shard"] == shard) == same)]
            views.append(rows.assign(model=view))
    return pd.concat([regurgitation, *views], ignore_index=True)


def evaluate_naf(models: Mapping[str, Any], tokenizer: Any, documents: pd.DataFrame, shards: pd.DataFrame,
                 settings: EvaluationSettings, context_length: int,
                 log: Callable[[str], None] = print) -> dict[str, pd.DataFrame]:
    """Run the whole evaluation. ``models`` maps p, q1, q2 to loaded causal LMs (eval mode).

    Returns DataFrames: ``regurgitation`` (model x protected document), ``regurgitation_by_duplication``,
    ``k_values`` (one row per sampled continuation of p, CP-Δ, CP-KL and CP-k) and ``perplexity``.
    """
    import torch

    missing = [m for m in BASE_MODELS if m not in models]
    if missing:
        raise ValueError(f"models must hold {list(BASE_MODELS)}; missing {missing}")
    s = settings
    if 1 + s.prompt_words + s.continuation_words > context_length:
        raise ValueError(f"prompt_words + continuation_words + 1 = {1 + s.prompt_words + s.continuation_words} "
                         f"exceeds the models' context_length {context_length}")
    prompts = protected_prompts(documents, shards, tokenizer, s.prompt_words, s.continuation_words, s.max_documents)
    generator = torch.Generator().manual_seed(s.seed)
    reg_rows, k_rows = [], []
    prompts = prompts.assign(_length=prompts["continuation_ids"].map(len))
    for _, group in prompts.groupby("_length", sort=True):
        r, k = _group_rows(models, group, s, generator, log)
        reg_rows += r
        k_rows += k
    regurgitation = _with_shard_views(pd.DataFrame(reg_rows))
    regurgitation.insert(1, "kind", regurgitation["model"].map(KIND))
    regurgitation = regurgitation.sort_values(["model", "duplicate_count", "doc_id"], ignore_index=True)
    summary = by_duplication(regurgitation)
    summary.insert(1, "kind", summary["model"].map(KIND))

    validation = documents.loc[(documents["split"] == "validation") & ~documents["protected"].astype(bool), "text"]
    windows = heldout_windows(tokenizer, validation.tolist(), context_length - 1, s.perplexity_windows)
    perplexity = heldout_perplexity({m: models[m] for m in BASE_MODELS}, windows, RULES, s.batch_size)
    p_ppl = float(perplexity.loc[perplexity["model"] == "p", "perplexity"].iloc[0])
    q_ppl = float(np.mean(perplexity.loc[perplexity["model"].isin(["q1", "q2"]), "perplexity"]))
    perplexity["kind"] = perplexity["model"].map(KIND)
    perplexity["perplexity_ratio_vs_p"] = perplexity["perplexity"] / p_ppl
    perplexity["perplexity_ratio_vs_shards"] = perplexity["perplexity"] / q_ppl
    top = summary[summary["duplicate_count"] == summary["duplicate_count"].max()].set_index("model")
    perplexity["top_level_mean_logprob_bits"] = perplexity["model"].map(top["mean_logprob_bits"])
    perplexity["top_level_log2_mean_p_exact"] = perplexity["model"].map(
        np.log2(top["mean_p_exact"].clip(lower=1e-300)))
    perplexity["top_level_sampled_exact_rate"] = perplexity["model"].map(top["sampled_exact_rate"])
    log("held-out perplexity: " + ", ".join(f"{r.model} {r.perplexity:.3f}" for r in perplexity.itertuples()))
    return {"regurgitation": regurgitation, "regurgitation_by_duplication": summary,
            "k_values": pd.DataFrame(k_rows), "perplexity": perplexity}
