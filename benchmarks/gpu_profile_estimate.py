"""Estimate the `gpu` profile's wall time per study on one H100/H200 from its work: a planning table, not a run.

    python benchmarks/gpu_profile_estimate.py                                   # assumed rates
    python benchmarks/gpu_profile_estimate.py --gpu-check benchmarks/results/gpu_check.md   # measured where it can

Every number that drives compute is read from the code: each room's Config defaults resolved under
REPROLAB_PROFILE=gpu (in a subprocess when this process runs another profile, since `pick` resolves defaults
at import), the LM family's and the scaling grid's sizes, and counts the science builds itself (parity's run
groups, the safety battery's items, the facts world's vocabulary, the watermark schemes). From them each study
becomes a list of jobs (`benchmarks/gpu_profile_work.py`): LM training (FLOPs = `model_flops_per_token` x
tokens), generation (2 N per token, one batched forward per generated token), scoring (forward only) and small
networks (parity, teacher-student MLPs). A job's time is max(FLOPs / (utilisation x peak), kernel launches x
LAUNCH_S, bytes moved / HBM bandwidth) plus host work in series, with the rates stated in that module; they are
the only numbers typed in (plus one slower launch cost for the sensitivity line). `--gpu-check FILE` reads the table `benchmarks/gpu_check.py --out` writes and
times the jobs of a study whose gpu_check part ran ok from that part's measured throughput instead;
`--step-overhead-s S` adds S seconds per Dagster step; `--out` moves the table (default
benchmarks/results/gpu_profile_estimate.md).

The watermark's EXP / EXP-edit detectors are counted op by op: each chunk of a detection runs on meta tensors
under a dispatch counter (`gpu_profile_exp.dispatch_traffic`: kernel launches and bytes moved), and a
permutation test adds its null keys' uniforms, drawn on the CPU in series (HOST_UNIFORMS_PER_S, measured);
`--gpu-check` times the permutation tests from the `watermark.permutation` part.

Left out: CPU-side work (tokenizer training, building the facts world and its documents, DuckDB, MLflow logging
and checkpoint upload, Great Expectations, sklearn probe fits, the watermark's n-gram judge and its KGW /
Unigram detection, on the CPU's green lists; the permutation tests' CPU draws are counted), the permutation tests'
copies of their null costs to the device, model loading, torch.compile warm-up (tens of seconds per compiled
model) and Dagster's per-step overhead (the table gives the number of Dagster steps per study so a per-step cost
can be added). Runs that stop early (parity once every seed converged) are counted at their step cap: an upper
bound.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere without installing

from benchmarks.gpu_profile_work import (  # noqa: E402  (the work per study; re-exported for callers)
    HBM_BYTES_PER_S,
    HOST_UNIFORMS_PER_S,
    LARGE_MODEL_PARAMS,
    LAUNCH_S,
    LAUNCHES_PER_LAYER,
    MEASURED_MFU,
    PEAK_FLOPS,
    ROOMS,
    SLOW_LAUNCH_S,
    SMALL_MODEL_MFU,
    STUDIES,
    Job,
    parity_jobs,
)

__all__ = ["LAUNCH_S", "ROOMS", "STUDIES", "Job", "collect_settings", "estimate", "gpu_settings", "main",
           "markdown", "parity_jobs", "read_gpu_check"]

OUT = ROOT / "benchmarks" / "results" / "gpu_profile_estimate.md"

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
    from assets.watermark.exp_sampling import permutation_pvalues, statistic
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
        # the detectors with a key ξ (permutation tests) and whether each aligns by edit distance
        "watermark_exp_detectors": {s.name: s.kind == "exp_edit" for s in schemes.values() if s.kind in ("exp", "exp_edit")},
        "watermark_block": default(build_schemes, "block"),  # the Dagster side leaves it: None, the whole text
        "permutation_chunk_elements": default(permutation_pvalues, "chunk_elements"),
        "statistic_chunk": default(statistic, "chunk"),
        "effort_budgets": dict(EFFORT_BUDGETS),
        "grpo_rollout_batch": GRPOConfig.rollout_batch_size,
        "budget_accuracy_batch": default(budget_accuracy, "batch_size"),
        "defender_batch": default(model_defender, "batch_size"),
        "piece_loglik_batch": default(piece_log_likelihoods, "batch_size"),
    }


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
        f"{LAUNCHES_PER_LAYER} launches per layer x {LAUNCH_S * 1e6:.0f} us; the EXP / EXP-edit detectors' "
        f"kernels counted one by one (launches x {LAUNCH_S * 1e6:.0f} us, or bytes / {HBM_BYTES_PER_S / 1e12:.2f} "
        f"TB/s), plus their permutation tests' null keys drawn on the CPU at {HOST_UNIFORMS_PER_S:.2g} uniforms/s "
        "(measured, one thread). "
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
              "checkpoints, Great Expectations, sklearn probe fits, the watermark judge and KGW / Unigram "
              "detection; the EXP permutation tests' CPU draws of their null keys are counted), the null costs' "
              "copies to the device, model loading" + (" and torch.compile warm-up" if step_overhead_s else ", torch.compile warm-up and "
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
