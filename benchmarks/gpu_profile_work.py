"""The `gpu` profile's work per study, as jobs: the stated rates, `Job`, the job builders and each room's jobs.

Read by `benchmarks/gpu_profile_estimate.py`, which times these jobs and writes the table. Each `<room>_jobs`
takes the plain settings `gpu_profile_estimate.collect_settings()` reads from the code under
REPROLAB_PROFILE=gpu and returns that study's GPU work: LM training (FLOPs = `model_flops_per_token` x tokens),
generation (2 N per token, one batched forward per generated token), scoring (forward only) and small networks
(parity, teacher-student MLPs), and the watermark's EXP / EXP-edit detectors (their permutation tests and
statistics: elementwise kernels, counted op by op on meta tensors: `benchmarks/gpu_profile_exp.py`). A job's time is
max(FLOPs / (utilisation x peak), kernel launches x LAUNCH_S, bytes moved / HBM_BYTES_PER_S) plus its host-side
work in series (the permutation tests' null keys, drawn on the CPU), with the rates below: the only numbers typed in.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without installing

from assets.lm.model import ModelSize, model_flops_per_token  # noqa: E402

ROOMS = ("corpora", "lm", "chat", "safety", "parity", "sgd_noise", "scaling", "royalties", "naf", "uncertainty",
         "watermark", "alignment", "robustness")

# --- the stated rates: the only numbers typed in -------------------------------------------------------------------
PEAK_FLOPS = 989e12  # H100/H200 dense bf16 FLOP/s: the denominator of issue 23's MFU
MEASURED_MFU = 0.308  # issue 23: our trainer on an H200, HF Llama d768 L12 T1024 B32, bf16 + torch.compile
LARGE_MODEL_PARAMS = 50e6  # at or above this many matmul parameters a compiled LM trains at MEASURED_MFU
SMALL_MODEL_MFU = 0.10  # assumed (not measured) for smaller or uncompiled models: small matmuls fill the GPU poorly
LAUNCHES_PER_LAYER = 30  # kernel launches per layer per step (a compiled training step, or one eager forward)
LAUNCH_S = 5e-6  # seconds per launch: the floor a small model's step cannot go below
SLOW_LAUNCH_S = 15e-6  # sensitivity only: eager PyTorch's per-op Python dispatch, often 10-20 us rather than 5
HBM_BYTES_PER_S = 3.35e12  # H100 SXM's memory bandwidth (H200: 4.8e12): elementwise kernels are bound by it
HOST_UNIFORMS_PER_S = 2.1e8  # measured on this project's CPU machine, one thread: null_cost_tensors's CPU draw
# of a permutation test's null uniforms alone (99 keys x 256 rows x 200 tokens: 2.1e8-2.8e8/s on a shared machine,
# the lower taken); their copy into pinned memory cannot be timed on a CPU-only torch and is left out. The gather
# and log1p run on the device (they took about 0.055 s more per text on the CPU before they moved there).
MEASURED = "from measured throughput"
ESTIMATED = "estimated: 30.8% MFU, issue 23's H200 measurement"
SMALL = "estimated: 10% utilisation (assumed, small/uncompiled model)"
FLOOR = "launch floor (30 launches/layer/step x 5 us)"
MEMORY = "memory bound (bytes read and written / 3.35 TB/s)"
HOST = "host: null keys' uniforms drawn on the CPU (2.1e8/s, measured on one thread)"


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
    bytes: float = 0.0  # device memory read and written by elementwise kernels (0: none counted)
    host_uniforms: float = 0.0  # uniforms drawn on the CPU in series with the device work (permutation tests)

    def seconds(self, measured: dict[str, float], small_mfu: float = SMALL_MODEL_MFU, launch_s: float = LAUNCH_S
                ) -> tuple[float, str]:
        """(seconds, basis); ``small_mfu`` and ``launch_s`` replace the stated rates (the sensitivity line).
        The device's time is the largest of compute, launches and memory traffic; host work adds to it."""
        if self.part in measured and self.units > 0:
            return self.units / measured[self.part], f"{MEASURED} ({self.part})"
        utilisation = small_mfu if self.utilisation == SMALL_MODEL_MFU else self.utilisation
        compute, floor = self.flops / (utilisation * PEAK_FLOPS), self.launches * launch_s
        memory, host = self.bytes / HBM_BYTES_PER_S, self.host_uniforms / HOST_UNIFORMS_PER_S
        device = max(compute, floor, memory)
        if host > device:
            basis = HOST
        elif memory > max(compute, floor):
            basis = MEMORY
        elif floor > compute:
            basis = FLOOR
        else:
            basis = ESTIMATED if self.utilisation == MEASURED_MFU else SMALL
        return device + host, basis


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
    answers = generate("safety", "battery answers (chat-sft, chat-rl)", size, vocab, 2 * items,
                       budget + res["max_answer_tokens"], res["batch_size"])
    answers.part, answers.units = "safety.responders", 2 * items  # gpu_check asks the battery at these settings
    return [answers,
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
        if dataset == "facts":  # gpu_check's uncertainty.iclt runs the facts pair's small model and continuation
            jobs[-1].part, jobs[-1].units = "uncertainty.iclt", iclt["max_tokens"] * iclt["top_k"]
    return jobs


def watermark_jobs(s: dict) -> list[Job]:
    c, fam, vocab = s["configs"]["watermark"], s["lm_families"]["code"], _code_vocab(s)
    gen, inf, att = c["WatermarkGenerationConfig"], c["WatermarkInfillerConfig"], c["WatermarkAttackConfig"]
    small, large = size_of(fam[0]), size_of(fam[-1])
    texts = s["watermark_generations"] * gen["n_texts"] + gen["n_null"]
    infiller = size_of(inf, "infiller")
    walked = s["watermark_generations"] * gen["n_texts"] * att["steps"]
    from benchmarks.gpu_profile_exp import exp_detections

    return [*exp_detections(s), generate("watermark", "watermarked + null texts", small, vocab, texts, gen["response_tokens"],
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
