"""Run every study's science on one device for a few steps, at shapes like the `gpu` profile's, and report.

    python benchmarks/gpu_check.py                          # CUDA: every part, within ~8 minutes on an H100/H200
    python benchmarks/gpu_check.py --device cpu --quick     # CPU smoke run at tiny shapes, under a minute
    python benchmarks/gpu_check.py --parts lm.train,naf     # some parts only

Each part calls a study's science modules directly (no Dagster, no MLflow: the GPU machine may lack them) on
freshly initialised models placed on the device first (as `load_registered` hands them over) and synthetic
words, so it checks that the code runs on the device and how fast, not what it learns. Defined here: LM
training (bf16 + torch.compile on CUDA; fused view, Hugging Face layers, chunked loss), compiled chat SFT,
budgeted chat generation, the parity and SGD-noise batched trainers, the uncertainty token table at layers
[0, 2, 4, -1] and probes, the watermark study's generation (`generate_texts`), every detector with permutation
p-values and an in-filler proposal, NAF scoring, sampling, CP-k and held-out perplexity, the royalties pieces,
and soft tokens optimised and then answered through `SoftPromptModel` and `model_defender`. In
`gpu_check_parts.py`: GRPO, `fine_tune` with validation and a checkpoint, the royalties game (coalition
fine-tunes, exact Shapley), the safety battery through `model_responder`, the ICLT, the SGD-noise LM sweep,
a scaling grid cell with epoch sampling and the parity finite-sample runs. In `gpu_check_parts2.py`: the
robustness defender's format tuning, SFT and many-shot at two compute levels, the alignment spec-citing data
and deliberative SFT, GRPO on the policy judge's reward, and the EXP / EXP-edit permutation tests. On CUDA,
float32 matmuls use TF32 and GRPO runs under bf16 autocast, as the `compute` resource sets them for the
`gpu` profile. Shared helpers: `gpu_check_base.py`.
A part that raises is reported as error (with the exception) and the others still run; a part is skipped once
the total budget (--budget-s) is spent. Prints one markdown table (part, status, seconds, throughput) and, with
--out, writes it there. Exit status 1 if any part failed.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the parts' modules next to this file

from gpu_check_base import PARTS, Check, part, sentences, words_tokenizer  # noqa: E402

__all__ = ["PARTS", "Check", "main", "markdown", "part", "run"]


# --- the parts --------------------------------------------------------------------------------------------------


def _lm_train(check: Check, **overrides) -> tuple[float, str]:
    from assets.lm.training import TrainConfig, train

    vocab = check.pick(64, 8192)
    model = check.model(vocab, 384, 6, 6, 1536, 256).train()  # the chat/scaling gpu shape
    tokens = np.random.default_rng(0).integers(0, vocab, check.pick(5_000, 2_000_000))
    cfg = TrainConfig(max_steps=check.pick(3, 40), batch_size=check.pick(4, 64), warmup_steps=1, eval_interval=10**6,
                      eval_batches=1, device=check.device, bf16=check.cuda, compile=check.cuda,
                      divergence_factor=None, loss_readback_steps=10, **overrides)
    result = train(model, tokens, tokens[:20_000], cfg)
    timed = result.curve[result.curve["step"] > 10] if not check.quick else result.curve
    seconds = (cfg.batch_size * model.config.max_position_embeddings / timed["tokens_per_s"]).sum()
    return len(timed) * cfg.batch_size * model.config.max_position_embeddings / seconds, "train tokens/s"


@part("lm.train", "LM training step (assets.lm.training), bf16 + compile and the fused view on CUDA")
def lm_train(check: Check) -> tuple[float, str]:
    return _lm_train(check)


@part("lm.train_hf_layers", "the same on the Hugging Face layers as they are (fused_projections=False)")
def lm_train_hf_layers(check: Check) -> tuple[float, str]:
    return _lm_train(check, fused_projections=False)


@part("lm.train_chunked", "the same with the chunked linear + cross-entropy (loss_chunk_rows)")
def lm_train_chunked(check: Check) -> tuple[float, str]:
    return _lm_train(check, loss_chunk_rows=check.pick(16, 4096))


@part("chat.sft", "SFT on conversations (assets.chat.sft: masked labels, rows of varying width; compile time included)")
def chat_sft(check: Check) -> tuple[float, str]:
    from assets.chat.arithmetic import ArithmeticSpec, arithmetic_problems
    from assets.chat.sft import fit_sft, sft_data
    from assets.chat.tasks import conversation, task_words
    from assets.lm.training import TrainConfig

    problems = arithmetic_problems(ArithmeticSpec(n_train=check.pick(8, 512), n_validation=0, n_test=0))
    tokenizer = words_tokenizer(0, [*task_words(problems), *map(str, range(100))], chat=True)
    model = check.model(len(tokenizer), 384, 6, 6, 1536, 256).train()
    data = sft_data(tokenizer, [conversation(r) for _, r in problems.iterrows()], model.config.max_position_embeddings)
    cfg = TrainConfig(max_steps=check.pick(3, 40), batch_size=check.pick(4, 64), warmup_steps=1, eval_interval=10**6,
                      device=check.device, bf16=check.cuda, compile=check.cuda, seed=0)
    result = fit_sft(model, data, cfg)
    return float(result.tokens_seen / result.seconds), "SFT tokens/s"


@part("chat.generation", "budgeted, KV-cached chat generation (assets.chat.budget), reasoning budget 256")
def chat_generation(check: Check) -> tuple[float, str]:
    from assets.chat.arithmetic import ArithmeticSpec, arithmetic_problems
    from assets.chat.budget import generate_with_budget
    from assets.chat.tasks import prompt_messages, task_words

    problems = arithmetic_problems(ArithmeticSpec(n_train=check.pick(2, 32), n_validation=0, n_test=0))
    tokenizer = words_tokenizer(0, [*task_words(problems), *map(str, range(100))], chat=True)
    model = check.model(len(tokenizer), 384, 6, 6, 1536, 512, init_std=0.5)  # wide init: runs to the budget
    conversations = [prompt_messages(r) for _, r in problems.iterrows()]
    samples = generate_with_budget(model, tokenizer, conversations, check.pick(8, 256), k=check.pick(2, 8),
                                   temperature=1.0, max_answer_tokens=4, batch_size=check.pick(4, 256), seed=0)
    return float(samples["generated_tokens"].sum()), "generated tokens"


@part("parity.trainer", "batched parity trainer (assets.parity.trainer), n=50 k=3 width 1000, 64 networks")
def parity_trainer(check: Check) -> tuple[float, str]:
    from assets.parity.architectures import Network
    from assets.parity.trainer import TrainSpec, train_batched

    steps = check.pick(20, 500)
    net = Network("mlp", check.pick(10, 50), 3, check.pick(16, 1000))
    spec = TrainSpec(max_steps=steps, eval_size=check.pick(256, 8192), curve_samples=check.pick(64, 2048),
                     gap_samples=0, log_every=steps, stop_when_converged=False)
    models = check.pick(4, 64)
    train_batched(net, spec, list(range(models)), device=check.device)
    return float(models * steps), "network-steps"


@part("sgd_noise.synthetic", "batched teacher-student SGD runs (assets.sgd_noise.synthetic), width 512, B=128")
def sgd_noise_synthetic(check: Check) -> tuple[float, str]:
    from assets.sgd_noise.data import TeacherTask
    from assets.sgd_noise.synthetic import RunSpec, SweepSpec, train_group

    task = TeacherTask(input_dim=check.pick(16, 64), teacher_width=check.pick(32, 256))
    steps = check.pick(20, 2000)
    sweep = SweepSpec(student_width=check.pick(32, 512), steps=steps, eval_size=check.pick(256, 8192),
                      distance_samples=check.pick(64, 2048), log_points=check.pick(4, 20))
    specs = [RunSpec(lr, seed) for lr in (0.05, 0.1) for seed in range(check.pick(2, 8))]
    train_group(task, "online", check.pick(8, 128), specs, sweep, device=check.device)
    return float(len(specs) * steps), "network-steps"


@part("uncertainty.probes", "token table of a small/large pair (assets.uncertainty.tokens), layers [0, 2, 4, -1] at batch 256, probes")
def uncertainty_probes(check: Check) -> tuple[float, str]:
    from assets.uncertainty.probes import fit_probe, probe_scores, roc_auc
    from assets.uncertainty.tokens import hidden_column, score_documents

    n_words = check.pick(40, 4000)
    tokenizer = words_tokenizer(n_words)
    small = check.model(len(tokenizer), 256, 4, 4, 1024, 256)
    large = check.model(len(tokenizer), 384, 6, 6, 1536, 256, seed=1)
    documents = pd.DataFrame({"doc_id": [f"d{i}" for i in range(check.pick(8, 400))],
                              "text": sentences(check.pick(8, 400), n_words, check.pick(20, 200))})
    table = score_documents(small, large, tokenizer, documents, layers=check.pick([-1], [0, 2, 4, -1]),
                            max_tokens=check.pick(200, 40_000), batch_size=check.pick(4, 256))  # the gpu Config
    layer = table.attrs["layers"][-1]
    features = np.stack(table[hidden_column(layer)].to_numpy())
    labels = (table["large_entropy"] > table["large_entropy"].median()).to_numpy()
    half = len(table) // 2
    probe = fit_probe("linear", features[:half], labels[:half])
    roc_auc(labels[half:], probe_scores(probe, features[half:]))
    return float(len(table)), "tokens scored"


@part("watermark", "the study's schemes (assets.watermark.study.generate_texts), every detector with permutation "
      "p-values, one in-filler proposal (propose_infill)")
def watermark(check: Check) -> tuple[float, str]:
    from assets.watermark.infill import fim_tokenizer, propose_infill
    from assets.watermark.schemes import build_schemes
    from assets.watermark.study import StudySettings, generate_texts

    # Half the code vocabulary and 64 of the 200 texts: each KGW scheme fills rows of its [V, V] green-list table
    # on the CPU (about 1 ms per distinct previous token at V = 16k here), and EXP-edit's permutation test runs
    # its dynamic programme one text at a time; both would dominate the part at full size.
    n_words = check.pick(60, 8000)
    tokenizer = words_tokenizer(n_words)
    generator = check.model(len(tokenizer), 384, 6, 6, 1536, 512)  # the code family's small model at gpu
    schemes = build_schemes(len(tokenizer), key_length=check.pick(32, 256), device=check.device)
    settings = StudySettings(prompt_tokens=check.pick(8, 32), response_tokens=check.pick(12, 200),
                             n_texts=check.pick(4, 64), n_null=check.pick(100, 200),
                             permutation_runs=check.pick(3, 19))  # WatermarkGenerationConfig at gpu (runs: 99)
    texts = sentences(check.pick(20, 400), n_words, check.pick(30, 300))
    gen = generate_texts(generator, tokenizer, texts, schemes, settings, log=lambda _: None)
    for name, scheme in schemes.items():
        found = scheme.detect(gen["tokens"][scheme.texts_from], runs=settings.permutation_runs, seed=0)
        if not np.isfinite(found["score"]).all():
            raise RuntimeError(f"{name} detection gave a non-finite score")
    fim_tok, ids = fim_tokenizer(tokenizer)
    infiller = check.model(len(fim_tok), 384, 6, 6, 1536, 512, seed=1)  # WatermarkInfillerConfig at gpu
    rng, spans = np.random.default_rng(0), np.full(settings.n_texts, check.pick(3, 6))
    for step in range(check.pick(1, 3)):  # the attack proposes one span per text per step
        propose_infill(infiller, ids, gen["prompts"], gen["tokens"]["kgw"], spans, rng, seed=step)
    generated = len(gen["tokens"]) * settings.n_texts + settings.n_null
    return float(generated * settings.response_tokens), "generated tokens"


@part("naf", "NAF: token scores of p, q1, q2 and CP-Δ/CP-KL, combined sampling, CP-k, held-out perplexity (assets.naf)")
def naf(check: Check) -> tuple[float, str]:
    from assets.naf.combine import cp_delta, cp_kl
    from assets.naf.perplexity import heldout_perplexity
    from assets.naf.sampling import cp_k_sample, sample, score_tokens

    vocab, batch, n = check.pick(64, 8192), check.pick(4, 128), check.pick(8, 64)
    models = {name: check.model(vocab, 384, 6, 6, 1536, 256, seed=s) for s, name in enumerate(("p", "q1", "q2"))}
    prompts = torch.randint(vocab, (batch, 8), generator=torch.Generator().manual_seed(0))
    rules = {"cp_delta": (["q1", "q2"], cp_delta), "cp_kl": (["q1", "q2"], cp_kl)}
    generator = torch.Generator().manual_seed(0)
    ids = sample([models["q1"], models["q2"]], cp_delta, prompts, n, generator=generator, batch_size=batch)
    score_tokens(models, ids, prompts.size(1), rules=rules, batch_size=batch)
    cp_k_sample(models["p"], [models["q1"], models["q2"]], prompts, n, 8.0, max_tries=2, generator=generator,
                batch_size=batch)
    windows = torch.randint(vocab, (check.pick(4, 512), models["p"].config.max_position_embeddings + 1),
                            generator=torch.Generator().manual_seed(3))  # perplexity_windows at gpu
    perplexity = heldout_perplexity(models, windows, rules, batch_size=check.pick(4, 512))
    if not np.isfinite(perplexity["perplexity"]).all():
        raise RuntimeError("a held-out perplexity is not finite")
    return float(batch * n * 4 + windows.numel() * 5), "tokens (sampled + scored)"


@part("royalties.pieces", "royalties: style-prompted pieces and their log-likelihoods (assets.royalties.pieces)")
def royalties_pieces(check: Check) -> tuple[float, str]:
    from assets.royalties.pieces import generate_pieces, piece_log_likelihoods

    n_words = check.pick(40, 4000)
    tokenizer = words_tokenizer(n_words)
    model = check.model(len(tokenizer), 384, 6, 6, 1536, 256)
    prompts = {f"owner{o}": [f"w{o * 7 + i}" for i in range(check.pick(2, 64))] for o in range(check.pick(2, 8))}
    pieces = generate_pieces(model, tokenizer, prompts, check.pick(8, 128), seed=0)
    loglik = piece_log_likelihoods(model, tokenizer, list(pieces["text"]), batch_size=check.pick(4, 64))
    if not np.isfinite(loglik).all():
        raise RuntimeError("a piece has a non-finite log-likelihood")
    return float(pieces["n_tokens"].sum() * 2), "tokens (generated + scored)"


@part("robustness.soft_tokens", "robustness: soft tokens optimised through the defender (Adam steps), then answered "
      "through SoftPromptModel and model_defender at compute 128")
def robustness_soft_tokens(check: Check) -> tuple[float, str]:
    from assets.robustness.defender import model_defender
    from assets.robustness.items import conversation
    from assets.robustness.soft_tokens import SoftPromptModel, norm_cap, optimise_soft_tokens, placeholder

    n_words = check.pick(40, 2000)
    tokenizer = words_tokenizer(n_words, chat=True)
    model = check.model(len(tokenizer), 384, 6, 6, 1536, 256)
    n_items, steps, k = check.pick(2, 32), check.pick(3, 50), check.pick(2, 16)
    rng = np.random.default_rng(0)
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)],
                          "system": [" ".join(f"w{j}" for j in rng.integers(0, n_words, 12)) for _ in range(n_items)],
                          "prompt": [" ".join(f"w{j}" for j in rng.integers(0, n_words, 24)) for _ in range(n_items)],
                          "target": [f"w{j}" for j in rng.integers(0, n_words, n_items)]})
    soft = optimise_soft_tokens(model, tokenizer, items, k, steps=steps, lr=0.1, cap=norm_cap(model, tokenizer))
    if not np.isfinite(soft.loss_end):
        raise RuntimeError("the soft-token loss is not finite")
    wrapped = SoftPromptModel(model, soft.table(list(items["item_id"])), tokenizer=tokenizer)
    defend = model_defender(wrapped, tokenizer, batch_size=check.pick(4, 64))
    answers = defend([conversation(item, placeholder(tokenizer, k)) for _, item in items.iterrows()],
                     check.pick(4, 128))  # the largest compute level at gpu
    if not answers["answered"].all():
        raise RuntimeError("a soft-token prompt was left unanswered")
    return float(n_items * steps), "item-steps"


import gpu_check_parts  # noqa: E402, F401 - registers the parts that call each study's own entry points
import gpu_check_parts2  # noqa: E402, F401 - and those of the robustness, alignment and watermark paths

# --- the run ----------------------------------------------------------------------------------------------------


def run(check: Check, names: list[str], budget_s: float) -> pd.DataFrame:
    rows, started = [], time.perf_counter()
    for name in names:
        what, fn = PARTS[name]
        if time.perf_counter() - started > budget_s:
            rows.append({"part": name, "status": "skipped (budget spent)", "seconds": 0.0, "throughput": "",
                         "what": what})
            continue
        check.sync()
        t0 = time.perf_counter()
        try:
            amount, unit = fn(check)
            check.sync()
            seconds = time.perf_counter() - t0
            rate = amount if unit.endswith("/s") else amount / seconds
            rows.append({"part": name, "status": "ok", "seconds": seconds,
                         "throughput": f"{rate:,.0f} {unit if unit.endswith('/s') else unit + '/s'}", "what": what})
        except Exception as error:  # noqa: BLE001 - every part is reported, none stops the check
            traceback.print_exc()
            rows.append({"part": name, "status": f"error: {type(error).__name__}: {error}"[:300],
                         "seconds": time.perf_counter() - t0, "throughput": "", "what": what})
        print(f"{rows[-1]['part']}: {rows[-1]['status']} ({rows[-1]['seconds']:.1f} s)", flush=True)
        if check.cuda:
            torch.cuda.empty_cache()
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, check: Check) -> str:
    name = torch.cuda.get_device_name(check.device) if check.cuda else "cpu"
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"GPU check, {date}, {name} (torch {torch.__version__}){', quick shapes' if check.quick else ''}; "
             f"total {table['seconds'].sum():.0f} s.", "", "| part | status | seconds | throughput | what |",
             "|---|---|---|---|---|"]
    lines += [f"| {r.part} | {r.status} | {r.seconds:.1f} | {r.throughput} | {r.what} |" for r in table.itertuples()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, a few steps (a CPU smoke run)")
    parser.add_argument("--parts", default=None, help=f"comma list of parts (default: all of {list(PARTS)})")
    parser.add_argument("--skip", default="", help="comma list of parts to leave out (e.g. those another "
                                                   "benchmark of the same session already times)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip the remaining parts after this long")
    parser.add_argument("--shard", default="1/1", help="K/N: run every N-th part from the K-th (two shards run "
                                                     "side by side each get a whole budget; the GPU is shared)")
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False (use --device cpu --quick)")
    skipped = [n for n in args.skip.split(",") if n]
    names = [n for n in (args.parts.split(",") if args.parts else list(PARTS)) if n not in skipped]
    unknown = [n for n in [*names, *skipped] if n not in PARTS]
    if unknown:
        parser.error(f"unknown parts {unknown}; known: {list(PARTS)}")
    shard = args.shard.split("/")
    if len(shard) != 2 or not all(x.isdigit() for x in shard) or not 1 <= int(shard[0]) <= int(shard[1]):
        parser.error(f"--shard must be K/N with 1 <= K <= N, got {args.shard!r}")
    names = names[int(shard[0]) - 1::int(shard[1])]
    check = Check(args.device, args.quick)
    if check.cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # as the compute resource's tf32 (default on) sets it
    table = run(check, names, args.budget_s)
    text = markdown(table, check)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return table


if __name__ == "__main__":
    sys.exit(0 if (main()["status"] == "ok").all() else 1)
