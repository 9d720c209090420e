"""Estimate the `gpu` profile's wall time per study on one H100/H200 from its work: a planning table, not a run.

    python benchmarks/gpu_profile_estimate.py                                   # assumed rates
    python benchmarks/gpu_profile_estimate.py --gpu-check benchmarks/results/gpu_check.md   # measured where it can

Every number that drives compute is read from the code: each room's Config defaults resolved under
REPROLAB_PROFILE=gpu (in a subprocess when this process runs another profile, since `pick` resolves defaults
at import), the LM family's and the scaling grid's sizes, and counts the science builds itself (parity's run
groups, the safety battery's items, the facts world's vocabulary, the watermark schemes). From them each study
becomes a list of jobs: LM training (FLOPs = `model_flops_per_token` x tokens), generation (2 N per token,
one batched forward per generated token), scoring (forward only) and small networks (parity, teacher-student
MLPs). A job's time is max(FLOPs / (utilisation x peak), kernel launches x LAUNCH_S), with the rates below;
they are the only numbers typed in (plus one slower launch cost for the sensitivity line). `--gpu-check FILE`
reads the table `benchmarks/gpu_check.py --out` writes and times the jobs of a study whose gpu_check part ran ok
from that part's measured throughput instead; `--step-overhead-s S` adds S seconds per Dagster step; `--out`
moves the table (default benchmarks/results/gpu_profile_estimate.md).

Left out: CPU-side work (tokenizer training, building the facts world and its documents, DuckDB, MLflow logging
and checkpoint upload, Great Expectations, sklearn probe fits, the watermark's n-gram judge and permutation
tests), model loading, torch.compile warm-up (tens of seconds per compiled model) and Dagster's per-step
overhead (the table gives the number of Dagster steps per study so a per-step cost can be added). Runs that
stop early (parity once every seed converged) are counted at their step cap: an upper bound.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without installing

from assets.lm.model import ModelSize, model_flops_per_token  # noqa: E402

ROOMS = ("corpora", "lm", "chat", "safety", "parity", "sgd_noise", "scaling", "royalties", "naf", "uncertainty",
         "watermark", "alignment", "robustness")
OUT = ROOT / "benchmarks" / "results" / "gpu_profile_estimate.md"

# --- the stated rates: the only numbers typed in -------------------------------------------------------------------
PEAK_FLOPS = 989e12  # H100/H200 dense bf16 FLOP/s: the denominator of issue 23's MFU
MEASURED_MFU = 0.308  # issue 23: our trainer on an H200, HF Llama d768 L12 T1024 B32, bf16 + torch.compile
LARGE_MODEL_PARAMS = 50e6  # at or above this many matmul parameters a compiled LM trains at MEASURED_MFU
SMALL_MODEL_MFU = 0.10  # assumed (not measured) for smaller or uncompiled models: small matmuls fill the GPU poorly
LAUNCHES_PER_LAYER = 30  # kernel launches per layer per step (a compiled training step, or one eager forward)
LAUNCH_S = 5e-6  # seconds per launch: the floor a small model's step cannot go below
SLOW_LAUNCH_S = 15e-6  # sensitivity only: eager PyTorch's per-op Python dispatch, often 10-20 us rather than 5
MEASURED = "from measured throughput"
ESTIMATED = "estimated: 30.8% MFU, issue 23's H200 measurement"
SMALL = "estimated: 10% utilisation (assumed, small/uncompiled model)"
FLOOR = "launch floor (30 launches/layer/step x 5 us)"


@dataclass
class Job:
    """One piece of a study's GPU work. ``part``/``units``: the gpu_check part whose throughput can time it."""

    study: str
    what: str
    flops: float
    launches: float
    utilisation: float
    tokens: float = 0.0
    part: str | None = None
    units: float = 0.0
    group: str = ""  # jobs of one kind (e.g. a grid's runs) are summed under this label in "what dominates"

    def seconds(self, measured: dict[str, float], small_mfu: float = SMALL_MODEL_MFU, launch_s: float = LAUNCH_S
                ) -> tuple[float, str]:
        """(seconds, basis); ``small_mfu`` and ``launch_s`` replace the stated rates (the sensitivity line)."""
        if self.part in measured and self.units > 0:
            return self.units / measured[self.part], f"{MEASURED} ({self.part})"
        utilisation = small_mfu if self.utilisation == SMALL_MODEL_MFU else self.utilisation
        compute, floor = self.flops / (utilisation * PEAK_FLOPS), self.launches * launch_s
        if floor > compute:
            return floor, FLOOR
        return compute, ESTIMATED if self.utilisation == MEASURED_MFU else SMALL


# --- reading the gpu profile -----------------------------------------------------------------------------------------
_COLLECT = "import json, sys; sys.path.insert(0, {root!r}); from benchmarks.gpu_profile_estimate import " \
           "collect_settings; print(json.dumps(collect_settings()))"


def gpu_settings() -> dict:
    """`collect_settings()` under REPROLAB_PROFILE=gpu: here if this process runs it, else in a subprocess."""
    from resources.profiles import current_profile

    if current_profile() == "gpu":
        return collect_settings()
    env = {**os.environ, "REPROLAB_PROFILE": "gpu"}
    done = subprocess.run([sys.executable, "-c", _COLLECT.format(root=str(ROOT))], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"reading the gpu profile failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _defaults(cls) -> dict:
    fields = cls.model_fields
    values = {name: f.get_default(call_default_factory=True) for name, f in fields.items() if not f.is_required()}
    return json.loads(json.dumps(values, default=lambda v: v.model_dump() if hasattr(v, "model_dump") else str(v)))


def collect_settings() -> dict:
    """The gpu profile's compute-driving settings as plain data (run under REPROLAB_PROFILE=gpu)."""
    import importlib
    import inspect

    import dagster as dg

    from assets.chat.budget import EFFORT_BUDGETS
    from assets.chat.rl import GRPOConfig
    from assets.chat.study import budget_accuracy
    from assets.corpora.facts_world import build_world, vocabulary
    from assets.parity.sweep import Sweep, expand, finite_sample_plan, sweep_dicts
    from assets.robustness.defender import model_defender
    from assets.robustness.items import GOALS
    from assets.royalties.pieces import piece_log_likelihoods
    from assets.safety.battery import SuiteSpec, build_suite
    from assets.watermark.schemes import build_schemes
    from resources.profiles import current_profile

    if current_profile() != "gpu":
        raise RuntimeError("collect_settings() must run under REPROLAB_PROFILE=gpu")
    modules = {room: importlib.import_module(f"assets.{room}.defs") for room in ROOMS}
    configs = {room: {name: _defaults(obj) for name, obj in vars(m).items() if isinstance(obj, type)
                      and issubclass(obj, dg.Config) and obj.__module__ == m.__name__} for room, m in modules.items()}
    steps = {room: len(list(m.defs.assets or [])) for room, m in modules.items()}
    corpora, parity, safety = modules["corpora"], configs["parity"], modules["safety"]

    def default(fn, name):  # a science function's default the Dagster side leaves as it is
        return inspect.signature(fn).parameters[name].default

    def groups(plan) -> list[dict]:  # parity's run groups (one batched training each)
        return [{"arch": g.network.arch, "n": g.network.n, "k": g.network.k, "width": g.network.width,
                 "batch_size": g.batch_size, "seeds": len(g.seeds)} for g in plan]

    world = build_world(corpora.FactsWorldConfig().spec())
    items = build_suite(world, SuiteSpec(**safety.SuiteConfig().model_dump()))
    sweeps = [Sweep.from_mapping(s) for s in sweep_dicts(parity["ParityRunsConfig"]["sweeps"])]
    schemes = build_schemes(int(configs["corpora"]["BPETokenizerConfig"]["vocab_size"]))  # counted only
    return {
        "configs": configs,
        "dagster_steps": steps,
        "lm_families": {c: [dataclasses.asdict(s) for s in sizes] for c, sizes in modules["lm"].FAMILIES.items()},
        "scaling_cells": [{"size": dataclasses.asdict(c.size), "tokens": c.tokens} for c in modules["scaling"].CELLS],
        "facts_vocab": len(vocabulary(world)),
        # the battery's eval items by evaluation (regurgitation's, one per protected document, are added later)
        "safety_eval_items": {k: int(v) for k, v in items[items["split"] == "eval"].groupby("evaluation").size().items()},
        "parity_groups": groups(expand(sweeps)),
        "parity_finite_groups": groups(finite_sample_plan(parity["ParityFiniteSampleConfig"])[0]),
        "robustness_goals": {task: len(goals) for task, goals in GOALS.items()},
        "watermark_generations": len({scheme.texts_from for scheme in schemes.values()}),  # EXP-edit reads EXP's
        "effort_budgets": dict(EFFORT_BUDGETS),
        "grpo_rollout_batch": GRPOConfig.rollout_batch_size,
        "budget_accuracy_batch": default(budget_accuracy, "batch_size"),
        "defender_batch": default(model_defender, "batch_size"),
        "piece_loglik_batch": default(piece_log_likelihoods, "batch_size"),
    }


# --- jobs from sizes -------------------------------------------------------------------------------------------------
def size_of(shape: dict, name: str = "model") -> ModelSize:
    return ModelSize(name=name, **{k: int(shape[k]) for k in ("d_model", "n_layers", "n_heads", "d_ff",
                                                            "context_length")})


def matmul_params(size: ModelSize, vocab: int) -> float:
    """N_matmul of `model_flops_per_token` (its 6 N term over 6)."""
    return (model_flops_per_token(size, vocab) - 12.0 * size.n_layers * size.d_model * size.context_length) / 6


def forward_launches(size: ModelSize) -> float:
    return LAUNCHES_PER_LAYER * (size.n_layers + 2)  # + 2: embedding and head/loss/optimiser, as a layer each


def train(study: str, what: str, size: ModelSize, vocab: int, steps: float, batch: int, compiled: bool = True,
          part: str | None = None) -> Job:
    """An LM trained ``steps`` optimiser steps on ``batch`` full-context windows."""
    tokens = steps * batch * size.context_length
    large = compiled and matmul_params(size, vocab) >= LARGE_MODEL_PARAMS
    return Job(study, what, model_flops_per_token(size, vocab) * tokens, steps * forward_launches(size),
               MEASURED_MFU if large else SMALL_MODEL_MFU, tokens, part, tokens)


def generate(study: str, what: str, size: ModelSize, vocab: int, sequences: float, new_tokens: float, batch: int,
             models: int = 1, prompt_tokens: float = 0, part: str | None = None) -> Job:
    """``sequences`` continuations of ``new_tokens`` each, ``batch`` at a time: one forward of every one of
    ``models`` per generated token (KV cache), plus the prompt's forward."""
    forwards = math.ceil(sequences / batch) * (new_tokens + 1) * models
    tokens = sequences * (new_tokens + prompt_tokens)
    return Job(study, what, 2 * matmul_params(size, vocab) * tokens * models, forwards * forward_launches(size),
               SMALL_MODEL_MFU, tokens, part, sequences * new_tokens)


def score(study: str, what: str, size: ModelSize, vocab: int, tokens: float, batch: int, models: int = 1,
          part: str | None = None) -> Job:
    """Forward passes over ``tokens`` tokens in full-context windows, ``batch`` windows at a time."""
    forwards = math.ceil(tokens / (batch * size.context_length)) * models
    return Job(study, what, 2 * matmul_params(size, vocab) * tokens * models, forwards * forward_launches(size),
               SMALL_MODEL_MFU, tokens, part, tokens * models)


def mlp(study: str, what: str, networks: int, batch: int, widths: list[int], steps: float, part: str | None = None
        ) -> Job:
    """``networks`` MLPs (layer widths ``widths``) trained together for ``steps`` steps of ``batch`` examples."""
    per_example = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=False))
    return Job(study, what, 6 * per_example * batch * networks * steps, steps * LAUNCHES_PER_LAYER * (len(widths) - 1),
               SMALL_MODEL_MFU, 0.0, part, networks * steps)


# --- the studies -----------------------------------------------------------------------------------------------------
def _chat_size(s: dict) -> ModelSize:
    return size_of(s["configs"]["chat"]["ChatBaseConfig"], "chat")


def _code_vocab(s: dict) -> int:
    return int(s["configs"]["corpora"]["BPETokenizerConfig"]["vocab_size"])


def _grpo(study: str, size: ModelSize, vocab: int, c: dict, batch: int) -> list[Job]:
    """GRPO: each step samples prompts x group rollouts (``batch`` at a time), then one policy update (+ the
    frozen reference's forward for the KL term)."""
    rollouts, length = c["prompts_per_step"] * c["group_size"], c["budget"] + c["max_answer_tokens"]
    gen = generate(study, "GRPO rollouts", size, vocab, rollouts * c["steps"], length, batch, part="chat.generation")
    gen.launches = c["steps"] * math.ceil(rollouts / batch) * (length + 1) * forward_launches(size)
    update = Job(study, "GRPO updates", (6 + 2) * matmul_params(size, vocab) * rollouts * length * c["steps"],
                 c["steps"] * 2 * forward_launches(size), SMALL_MODEL_MFU, rollouts * length * c["steps"])
    return [gen, update]


def corpora_jobs(s: dict) -> list[Job]:
    return []  # world, documents, code corpus and tokenizers: CPU only


def lm_jobs(s: dict) -> list[Job]:
    c, jobs = s["configs"]["lm"], []
    for corpus, sizes in s["lm_families"].items():
        cfg = c[f"{corpus.capitalize()}LanguageModelConfig"]
        vocab = s["facts_vocab"] if corpus == "facts" else _code_vocab(s)
        for shape in sizes:
            size = size_of(shape, shape["name"])
            jobs.append(train("lm", f"lm_{corpus}_{size.name}", size, vocab, cfg["max_steps"], cfg["batch_size"]))
            evals = cfg["max_steps"] // cfg["eval_interval"] * cfg["eval_batches"] * cfg["batch_size"]
            jobs.append(score("lm", f"lm_{corpus}_{size.name} eval", size, vocab, evals * size.context_length,
                              cfg["batch_size"]))
    return jobs


def chat_jobs(s: dict) -> list[Job]:
    c, size, vocab = s["configs"]["chat"], _chat_size(s), s["facts_vocab"]
    base, sft, rl, budget = c["ChatBaseConfig"], c["ChatSFTConfig"], c["ChatRLConfig"], c["BudgetAccuracyConfig"]
    # test problems per task (instructions: every facts question again under a constraint), each task a batch run
    tests = [c["ArithmeticTasksConfig"]["n_test"], c["FactsTasksConfig"]["n_test"], c["FactsTasksConfig"]["n_test"]]
    budgets = sorted({*budget["budgets"], *budget["efforts"].values()})  # each distinct budget generated once
    batch = s["budget_accuracy_batch"]
    answers = [generate("chat", f"budget accuracy (budget {b})", size, vocab, 2 * n * budget["k"],
                        b + budget["max_answer_tokens"], batch, part="chat.generation") for b in budgets for n in tests]
    for job in answers:
        job.group = "budget accuracy (sft and rl, every budget)"
    return [train("chat", "chat_base", size, vocab, base["max_steps"], base["batch_size"], part="lm.train"),
            train("chat", "chat_sft", size, vocab, sft["max_steps"], sft["batch_size"], part="lm.train"),
            *_grpo("chat", size, vocab, rl, s["grpo_rollout_batch"]),
            *answers]


def safety_jobs(s: dict) -> list[Job]:
    c, size, vocab = s["configs"]["safety"], _chat_size(s), s["facts_vocab"]
    res, judge = c["ResultsConfig"], c["JudgeConfig"]
    budget = int(res["budget"]) if str(res["budget"]).strip().isdigit() else s["effort_budgets"][res["budget"]]
    items = sum(s["safety_eval_items"].values()) + s["configs"]["corpora"]["FactsWorldConfig"]["n_protected"]
    judged = 2 * len(judge["rubrics"]) * judge["limit"]
    return [generate("safety", "battery answers (chat-sft, chat-rl)", size, vocab, 2 * items,
                     budget + res["max_answer_tokens"], res["batch_size"], part="chat.generation"),
            generate("safety", "judge", size, vocab, judged, judge["max_answer_tokens"], res["batch_size"],
                     prompt_tokens=size.context_length, part="chat.generation")]


def parity_jobs(s: dict) -> list[Job]:
    c = s["configs"]["parity"]
    jobs = []
    for plan, cfg in (("parity_groups", c["ParityRunsConfig"]), ("parity_finite_groups", c["ParityFiniteSampleConfig"])):
        for g in s[plan]:
            widths = [g["n"], g["width"], 1] if g["arch"] == "mlp" else [g["n"], g["k"]]
            job = mlp("parity", f"{g['arch']} n={g['n']} k={g['k']} w={g['width']}", g["seeds"],
                      g["batch_size"], widths, cfg["max_steps"], part="parity.trainer")
            job.group = f"{'finite-sample' if 'finite' in plan else 'online'} run groups, {cfg['max_steps']}-step cap"
            jobs.append(job)
    return jobs


def sgd_noise_jobs(s: dict) -> list[Job]:
    c = s["configs"]["sgd_noise"]
    syn, lm = c["SyntheticSweepConfig"], c["LMSweepConfig"]
    widths = [syn["input_dim"], syn["student_width"], syn["classes"]]
    networks = len(syn["learning_rates"]) * syn["seeds"]  # + a noise-cut branch per seed in the smallest batch
    jobs = [mlp("sgd_noise", f"synthetic {regime} B={b}", networks + syn["seeds"] * (b == min(syn["batch_sizes"])),
                b, widths, syn["steps"], part="sgd_noise.synthetic")
            for regime in ("online", "offline") for b in syn["batch_sizes"]]
    size = size_of(lm, "sgd-noise")
    for corpus, steps, batches, vocab in (("facts", lm["steps"], lm["batch_sizes"], s["facts_vocab"]),
                                          ("code", lm["code_steps"], lm["code_batch_sizes"], _code_vocab(s))):
        runs = [b for b in batches for _ in lm["learning_rates"]] * 2  # online and offline, one seed each
        runs += [max(batches)] * (lm["seeds"] - 1) * 2  # the lowest-noise setting at every seed
        jobs += [train("sgd_noise", f"LM {corpus} B={b}", size, vocab, steps, b) for b in runs if steps]
        if steps and batches:  # the noisiest setting's noise-cut branch, in both regimes
            jobs += [train("sgd_noise", f"LM {corpus} noise-cut branch", size, vocab,
                           steps * (1 - lm["cut_fraction"]), min(batches) * lm["cut_batch_factor"])] * 2
    for job in jobs:
        job.group = "LM sweep runs" if job.what.startswith("LM") else "synthetic sweep groups"
    return jobs


def scaling_jobs(s: dict) -> list[Job]:
    cfg = s["configs"]["scaling"]["ScalingRunConfig"]
    jobs = []
    for cell in s["scaling_cells"]:
        size = size_of(cell["size"], cell["size"]["name"])
        steps = max(1, round(cell["tokens"] / (cfg["batch_size"] * size.context_length)))
        jobs.append(train("scaling", f"{size.name} D={cell['tokens']}", size, _code_vocab(s), steps,
                          cfg["batch_size"], compiled=cfg["compile"]))
        jobs[-1].group = "grid runs" + ("" if cfg["compile"] else " (not compiled)")
        jobs.append(score("scaling", "held-out", size, _code_vocab(s),
                          cfg["evaluations"] * cfg["eval_windows"] * size.context_length, cfg["batch_size"]))
    return jobs


def royalties_jobs(s: dict) -> list[Job]:
    c, vocab = s["configs"]["royalties"], s["facts_vocab"]
    base, game = c["RoyaltiesBaseConfig"], c["RoyaltiesGameConfig"]
    size, owners = size_of(base, "royalties"), game["n_owners"] or s["configs"]["corpora"]["FactsWorldConfig"]["n_owners"]
    exact = game["estimator"] == "exact" or (game["estimator"] == "auto" and owners <= game["exact_max_owners"])
    # the empty coalition is the base model (untrained); Monte Carlo meets at most n new coalitions per ordering
    coalitions = 2 ** owners - 1 if exact else min(2 ** owners - 1, owners * game["mc_max_permutations"])
    steps = game["finetune_steps"] if game["coalition_init"] == "finetune" else game["scratch_steps"]
    pieces = (owners + 1) * game["n_generated_per_owner"] + owners * game["n_held_out_per_owner"] + \
        game["n_neutral_pieces"]
    return [train("royalties", "base model", size, vocab, base["max_steps"], base["batch_size"]),
            train("royalties", f"{coalitions} coalition models x {game['n_seeds']} seeds", size, vocab,
                  coalitions * game["n_seeds"] * steps, game["batch_size"]),
            generate("royalties", "pieces (one batch per prompting author)", size, vocab, pieces,
                     game["max_new_tokens"], game["n_generated_per_owner"], part="royalties.pieces"),
            score("royalties", "pieces under every coalition model (at most a context each)", size, vocab,
                  pieces * size.context_length, s["piece_loglik_batch"], models=(coalitions + 1) * game["n_seeds"])]


def naf_jobs(s: dict) -> list[Job]:
    c, vocab = s["configs"]["naf"], s["facts_vocab"]
    m, e = c["NafModelsConfig"], c["NafEvaluationConfig"]
    size, docs = size_of(m, "naf"), s["configs"]["corpora"]["FactsWorldConfig"]["n_protected"]
    samples, length = docs * e["n_samples"], e["continuation_words"]
    models = [train("naf", f"naf_{role}", size, vocab, m["max_steps"], m["batch_size"]) for role in ("q1", "q2", "p")]
    for job in models:
        job.group = "training q1, q2, p"
    return [*models,
            generate("naf", "samples of p (1 model), CP-Δ and CP-KL (2 each)", size, vocab, samples, length,
                     e["batch_size"], models=5, part="naf"),
            generate("naf", "CP-k proposals (at most max_tries)", size, vocab, samples * e["cp_k_max_tries"], length,
                     e["batch_size"], models=3, part="naf"),
            score("naf", "k_x and perplexity", size, vocab, (samples * 4 * length) +
                  e["perplexity_windows"] * size.context_length, e["batch_size"], models=3, part="naf")]


def uncertainty_jobs(s: dict) -> list[Job]:
    c, fam = s["configs"]["uncertainty"], s["lm_families"]
    tok, iclt = c["UncertaintyTokensConfig"], c["UncertaintyIcltConfig"]
    pairs = {"facts": (fam["facts"][0], fam["facts"][-1], s["facts_vocab"]),
             "code": (fam["code"][0], fam["code"][-1], _code_vocab(s))}
    plan = [("facts", "facts"), ("code", "code")] + ([("code", "facts")] if tok["cross_domain"] else [])
    jobs = []
    for pair, text in plan:  # both models of a pair read the same tokens: one job, timed per token of the pair
        small, large, vocab = pairs[pair]
        both = [score("uncertainty", "", size_of(shape), vocab, tok["max_tokens"], tok["batch_size"])
                for shape in (small, large)]
        jobs.append(Job("uncertainty", f"token table ({pair} pair on {text})", sum(j.flops for j in both),
                        sum(j.launches for j in both), SMALL_MODEL_MFU, tok["max_tokens"], "uncertainty.probes",
                        tok["max_tokens"]))
    for dataset in iclt["datasets"]:
        small, _, vocab = pairs[dataset]
        cont = iclt[f"{dataset}_max_continuation"]
        jobs.append(generate("uncertainty", f"ICLT {dataset}", size_of(small), vocab,
                             iclt["max_tokens"] * iclt["top_k"], cont, iclt["batch_size"],
                             prompt_tokens=size_of(small).context_length))
    return jobs


def watermark_jobs(s: dict) -> list[Job]:
    c, fam, vocab = s["configs"]["watermark"], s["lm_families"]["code"], _code_vocab(s)
    gen, inf, att = c["WatermarkGenerationConfig"], c["WatermarkInfillerConfig"], c["WatermarkAttackConfig"]
    small, large = size_of(fam[0]), size_of(fam[-1])
    texts = s["watermark_generations"] * gen["n_texts"] + gen["n_null"]
    infiller = size_of(inf, "infiller")
    walked = s["watermark_generations"] * gen["n_texts"] * att["steps"]
    return [generate("watermark", "watermarked + null texts", small, vocab, texts, gen["response_tokens"],
                     gen["batch_size"], prompt_tokens=gen["prompt_tokens"], part="watermark"),
            score("watermark", "oracle quality of the texts", large, vocab, texts * gen["response_tokens"],
                  gen["batch_size"]),
            train("watermark", "in-filler", infiller, vocab, inf["max_steps"], inf["batch_size"]),
            generate("watermark", "attack: in-filled spans (one per step per text)", infiller, vocab, walked,
                     att["span"], gen["n_texts"], prompt_tokens=inf["window"]),
            score("watermark", "attack: quality oracle per step", large, vocab,
                  walked * (gen["prompt_tokens"] + gen["response_tokens"]), gen["n_texts"])]


def alignment_jobs(s: dict) -> list[Job]:
    c, size, vocab = s["configs"]["alignment"], _chat_size(s), s["facts_vocab"]
    sft, rl, ev = c["AlignmentSFTConfig"], c["AlignmentRLConfig"], c["AlignmentEvalConfig"]
    items = sum(s["safety_eval_items"].get(e, 0) for e in ev["evaluations"])
    models = len(sft["methods"]) + 3  # each method's SFT, deliberative RL, chat-sft alone and with the policy pasted
    return [*[train("alignment", f"SFT {m}", size, vocab, sft["max_steps"], sft["batch_size"], part="lm.train")
              for m in sft["methods"]],
            *_grpo("alignment", size, vocab, rl, s["grpo_rollout_batch"]),
            generate("alignment", f"answers of {models} models", size, vocab, models * items,
                     ev["budget"] + ev["max_answer_tokens"], ev["batch_size"], part="chat.generation")]


def robustness_jobs(s: dict) -> list[Job]:
    """As `assets.robustness.grid.run_attacks` asks: per compute level the distinct text queries (per problem:
    no attack once, think-less templates, and per goal the many-shot and injection variants), the adaptive
    attacker's rounds over the targeted items (counted as if none broke early: an upper bound), then the
    soft-token sets (Adam steps, then answers at every level)."""
    c, size, vocab = s["configs"]["robustness"], _chat_size(s), s["facts_vocab"]
    items_cfg, defender, runs = c["ItemsConfig"], c["DefenderConfig"], c["RunsConfig"]
    problems, goals, batch = items_cfg["n_per_task"], s["robustness_goals"], s["defender_batch"]
    shots = sum(1 for n in runs["many_shot"] if n > 0)
    queries = sum(problems * (1 + max(runs["think_less"]) + g * (shots + max(runs["injection"]))) for g in goals.values())
    targeted = problems * sum(goals.values())
    soft_sets = sum(1 for n in runs["soft_tokens"] if n)
    jobs = [train("robustness", "defender SFT", size, vocab, defender["max_steps"], defender["batch_size"],
                  part="lm.train")]
    for level in runs["compute_levels"]:
        length = level + runs["max_answer_tokens"]
        jobs.append(generate("robustness", f"text attacks at compute {level}", size, vocab, queries * runs["k"],
                             length, batch, part="chat.generation"))
        adaptive = generate("robustness", f"adaptive attacker at compute {level}", size, vocab,
                            targeted * max(runs["adaptive"]) * runs["k"], length, batch, part="chat.generation")
        rounds = max(runs["adaptive"])  # sequential: each round waits for the last round's answers
        adaptive.launches = rounds * math.ceil(targeted / batch) * (length + 1) * forward_launches(size)
        jobs += [adaptive, generate("robustness", f"soft-token answers at compute {level}", size, vocab,
                                    targeted * soft_sets, length, batch, part="chat.generation")]
    for job in jobs[1:]:
        job.group = job.what.split(" at compute")[0] + " (all compute levels)"
    # every targeted item in one batch per Adam step; its length is at most the context (an upper bound)
    jobs.append(Job("robustness", "soft-token Adam steps (sequences counted at full context)",
                    6 * matmul_params(size, vocab) * size.context_length * targeted * soft_sets * runs["soft_steps"],
                    soft_sets * runs["soft_steps"] * forward_launches(size), SMALL_MODEL_MFU, 0.0,
                    "robustness.soft_tokens", targeted * soft_sets * runs["soft_steps"]))
    return jobs


STUDIES: dict[str, Callable[[dict], list[Job]]] = {room: globals()[f"{room}_jobs"] for room in ROOMS}


# --- the table -------------------------------------------------------------------------------------------------------
def read_gpu_check(path: str | os.PathLike) -> dict[str, float]:
    """{part: throughput per second} of the parts that ran ok in a `gpu_check.py --out` table. A part's rate
    is used as it was measured (gpu_check's shapes: e.g. parity's network-steps/s come from 64 networks at once,
    so a group of 32 is timed at that rate, which overstates it for launch-bound groups)."""
    rates = {}
    for line in Path(path).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[1] == "ok" and cells[3]:
            number = cells[3].split()[0].replace(",", "")
            try:
                rates[cells[0]] = float(number)
            except ValueError:
                continue
    return rates


def estimate(settings: dict, measured: dict[str, float] | None = None, step_overhead_s: float = 0.0,
             small_mfu: float = SMALL_MODEL_MFU, launch_s: float = LAUNCH_S) -> list[dict]:
    """One row per study: what dominates, the work (PFLOPs, tokens), the estimate in minutes and its basis, and
    ``breakdown``: its jobs summed by kind, longest first. ``step_overhead_s`` seconds are added per Dagster
    step (0: left out)."""
    measured, rows = measured or {}, []
    for room in ROOMS:
        jobs = STUDIES[room](settings)
        kinds: dict[str, dict] = {}  # a kind of job -> its summed minutes, PFLOPs, count and its longest job's basis
        for job in jobs:
            seconds, basis = job.seconds(measured, small_mfu, launch_s)
            kind = kinds.setdefault(job.group or job.what, {"minutes": 0.0, "pflops": 0.0, "jobs": 0, "basis": "",
                                                            "longest": -1.0})
            kind["minutes"] += seconds / 60
            kind["pflops"] += job.flops / 1e15
            kind["jobs"] += 1
            if seconds > kind["longest"]:
                kind["basis"], kind["longest"] = basis, seconds
        breakdown = sorted(({"what": label, **kind} for label, kind in kinds.items()), key=lambda k: -k["minutes"])
        top = breakdown[0] if breakdown else {"what": "CPU only", "jobs": 1, "basis": "not estimated (CPU-side)"}
        steps = settings["dagster_steps"][room]
        rows.append({"study": room, "dominates": top["what"] + (f" ({top['jobs']})" if top["jobs"] > 1 else ""),
                     "pflops": sum(j.flops for j in jobs) / 1e15, "tokens": sum(j.tokens for j in jobs),
                     "minutes": sum(k["minutes"] for k in breakdown) + step_overhead_s * steps / 60,
                     "basis": top["basis"], "dagster_steps": steps, "breakdown": breakdown})
    return rows


def sig2(x: float) -> str:
    if x == 0:
        return "0"
    return f"{float(f'{x:.2g}'):,.{max(0, 1 - math.floor(math.log10(abs(x))))}f}"


def markdown(rows: list[dict], measured: dict[str, float], step_overhead_s: float = 0.0, source: str = "",
             sensitivity: dict[str, float] | None = None) -> str:
    total = sum(r["minutes"] for r in rows)
    warning = " WARNING: that table is a CPU or quick-shape run; its rates do not describe a GPU." \
        if ("quick shapes" in source or ", cpu (" in source) else ""
    lines = [
        "# `gpu` profile: estimated wall time per study on one H100/H200 (an estimate, not a measurement)", "",
        f"Rates: LM training of compiled models with >= {LARGE_MODEL_PARAMS / 1e6:.0f}M matmul parameters at "
        f"{MEASURED_MFU:.1%} MFU of {PEAK_FLOPS / 1e12:.0f} TFLOP/s (issue 23's H200 measurement); smaller or "
        f"uncompiled models, generation and scoring at {SMALL_MODEL_MFU:.0%} (assumed); every step at least "
        f"{LAUNCHES_PER_LAYER} launches per layer x {LAUNCH_S * 1e6:.0f} us. "
        + (f"Measured gpu_check throughputs used for: {', '.join(sorted(measured))} (from: {source.strip()}).{warning}"
           if measured else "No gpu_check table given.")
        + (f" Each Dagster step adds {step_overhead_s:g} s (given)." if step_overhead_s else ""), "",
        "| study | what dominates | work (PFLOPs) | tokens | estimate (min) | basis | Dagster steps |",
        "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['study']} | {r['dominates']} | {sig2(r['pflops'])} | {sig2(r['tokens']) if r['tokens'] else '-'} "
              f"| {sig2(r['minutes'])} "
              f"| {r['basis']} | {r['dagster_steps']} |" for r in rows]
    lines += ["", f"Total: {sig2(total)} min ({sig2(total / 60)} h), studies run one after another on one GPU."]
    if sensitivity:
        lines += ["", "Sensitivity of the total: " + "; ".join(f"{what}: {sig2(m)} min" for what, m in sensitivity.items())
                  + "."]
    lines += ["", "## Breakdown (jobs of a study summed by kind)", "",
              "| study | jobs | count | PFLOPs | minutes | basis of the longest |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['study']} | {k['what']} | {k['jobs']} | {sig2(k['pflops'])} | {sig2(k['minutes'])} | {k['basis']} |"
              for r in rows for k in r["breakdown"]]
    lines += ["",
              "Left out: CPU-side work (tokenizers, the facts world's documents, DuckDB, MLflow logging and "
              "checkpoints, Great Expectations, sklearn probe fits, the watermark judge and permutation tests), "
              "model loading" + (" and torch.compile warm-up" if step_overhead_s else ", torch.compile warm-up and "
              "Dagster's per-step overhead (steps counted above; `--step-overhead-s` adds it)") + ". Parity "
              "runs are counted at their step cap (they stop once every seed converged): an upper bound. "
              "Generation is timed at the launch floor of one forward per token; Hugging Face's eager decoding "
              "with Python-side sampling is often several times slower, so rows dominated by generation are "
              "closer to lower bounds. The threshold between the two utilisations is a step: a model just "
              "under it can cost more than a larger one above it."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, settings: dict | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu-check", default=None, help="a `benchmarks/gpu_check.py --out` table: measured rates")
    parser.add_argument("--step-overhead-s", type=float, default=0.0,
                        help="seconds added per Dagster step (process start, IO, MLflow); default 0: left out")
    parser.add_argument("--out", default=str(OUT), help="where to write the markdown table")
    args = parser.parse_args(argv)
    measured = read_gpu_check(args.gpu_check) if args.gpu_check else {}
    settings = settings if settings is not None else gpu_settings()
    rows = estimate(settings, measured, args.step_overhead_s)
    sensitivity = {label: sum(r["minutes"] for r in estimate(settings, measured, args.step_overhead_s, **rates))
                   for label, rates in (
                       (f"every model at {MEASURED_MFU:.1%} MFU (optimistic)", {"small_mfu": MEASURED_MFU}),
                       (f"launches at {SLOW_LAUNCH_S * 1e6:.0f} us (eager dispatch)", {"launch_s": SLOW_LAUNCH_S}))}
    source = Path(args.gpu_check).read_text().splitlines()[0] if args.gpu_check else ""
    text = markdown(rows, measured, args.step_overhead_s, source, sensitivity)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return rows


if __name__ == "__main__":
    main()
