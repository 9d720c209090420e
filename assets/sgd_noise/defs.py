"""Dagster side of the SGD-noise study (Vyas, Morwani, Zhao, Kaplun, Kakade & Barak 2023, "Beyond Implicit
Bias: The Insignificance of SGD Noise in Online Learning").

``sgd_noise_synthetic_*``: the main sweep on a random-teacher classification task (batch size x learning rate
x seeds, online and offline, with noise-reduction branches), all networks of a batch size trained at once.
``sgd_noise_lm_*``: a small sweep of the project's LM family on the facts world (online: fresh documents;
offline: a fixed document set) and, on the tiny and gpu profiles, on the code corpus (online: each file read
once; offline: a fixed slice). Each training asset also gives the functional distances at equal held-out
loss. ``sgd_noise_equal_steps``, ``sgd_noise_distance_summary``, ``sgd_noise_noise_reduction`` and
``sgd_noise_implicit_bias`` summarise; ``sgd_noise/findings`` puts the paper's claims next to our numbers.
"""

import functools
import time

import dagster as dg
import pandas as pd
from pydantic import Field

from resources.compute import Compute
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import current_profile, pick
from resources.stages import stage
from resources.subsetting import yields_selected
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "sgd_noise"
CODE_VERSION = "1"
LM_CODE_VERSION = "2"  # 2: the noise-cut branch gets its own copy of the parent's Adam state


class SyntheticSweepConfig(dg.Config):
    """Random teacher (tanh, softmax labels) -> 2-layer ReLU students by plain SGD, online and offline."""

    input_dim: int = pick(tiny=16, demo=32, gpu=64)
    teacher_width: int = pick(tiny=32, demo=64, gpu=256)
    classes: int = 10
    logit_scale: float = Field(default=4.0, description="teacher logit scale: larger = less label noise")
    teacher_seed: int = 0
    student_width: int = pick(tiny=32, demo=64, gpu=512)
    batch_sizes: list[int] = pick(tiny=[4, 16], demo=[4, 16, 64], gpu=[8, 32, 128, 512])
    learning_rates: list[float] = pick(tiny=[0.05, 0.2], demo=[0.05, 0.1, 0.2], gpu=[0.025, 0.05, 0.1, 0.2])
    seeds: int = pick(tiny=2, demo=3, gpu=8)
    steps: int = pick(tiny=200, demo=1200, gpu=20_000)
    train_size: int = Field(default=pick(tiny=256, demo=512, gpu=4096), description="offline training-set size")
    eval_size: int = pick(tiny=512, demo=2048, gpu=8192)
    distance_samples: int = pick(tiny=256, demo=512, gpu=2048)
    log_points: int = pick(tiny=12, demo=30, gpu=60)
    loss_levels: int = pick(tiny=5, demo=8, gpu=12)
    cut_fraction: float = Field(default=0.5, description="the noise-reduction branch leaves its parent here")
    cut_lr_factor: float = Field(default=0.25, description="the branch's learning rate multiplier")
    cpu_threads: int = 1


class LMSweepConfig(dg.Config):
    """The LM family on the facts world (and the code corpus); Adam at a constant learning rate after a short
    warmup. The demo runs the facts world only (CPU budget); tiny and gpu also run the code corpus."""

    d_model: int = pick(tiny=16, demo=32, gpu=256)
    n_layers: int = pick(tiny=1, demo=1, gpu=4)
    n_heads: int = pick(tiny=2, demo=2, gpu=4)
    d_ff: int = pick(tiny=32, demo=64, gpu=1024)
    context_length: int = pick(tiny=16, demo=32, gpu=128)
    batch_sizes: list[int] = pick(tiny=[4, 8], demo=[4, 16], gpu=[16, 64, 256])
    learning_rates: list[float] = pick(tiny=[3e-3, 1e-2], demo=[3e-3, 1e-2], gpu=[3e-4, 1e-3, 3e-3])
    seeds: int = Field(default=2, description="the lowest-noise setting runs every seed (the distance baseline)")
    steps: int = pick(tiny=24, demo=300, gpu=4000)
    warmup_steps: int = pick(tiny=4, demo=10, gpu=200)
    offline_documents: int = Field(default=pick(tiny=40, demo=400, gpu=5000), description="offline training set")
    eval_windows: int = pick(tiny=8, demo=64, gpu=512)
    distance_windows: int = pick(tiny=4, demo=16, gpu=4)
    log_points: int = pick(tiny=6, demo=16, gpu=24)
    loss_levels: int = pick(tiny=4, demo=6, gpu=12)
    code_steps: int = Field(default=pick(tiny=24, demo=0, gpu=1000),
                            description="steps on the code corpus (0: the facts world only)")
    code_batch_sizes: list[int] = Field(default=pick(tiny=[4, 8], demo=[], gpu=[8, 16, 32]),
                                        description="online code runs read each file once: keep steps x batch x "
                                                    "context below the corpus size")
    offline_code_tokens: int = pick(tiny=2000, demo=20_000, gpu=200_000)
    cut_fraction: float = 0.5
    cut_batch_factor: int = Field(default=4, description="the noise-reduction branch's batch multiplier")
    cut_lr_factor: float = 1.0
    cpu_threads: int = 1

    def model_size(self):
        from assets.lm.model import ModelSize

        return ModelSize("sgd-noise", self.d_model, self.n_layers, self.n_heads, self.d_ff, self.context_length)


def _scale(runs: pd.DataFrame, what: str) -> str:
    return (f"{current_profile()} profile: {what}; {len(runs)} runs, batch {sorted(runs['batch_size'].unique())}, "
            f"lr {sorted(runs['learning_rate'].unique())}, {runs['seed'].nunique()} seeds, "
            f"{int(runs['steps'].max())} steps")


def _plot(context, warehouse: WarehousePaths, fig, name: str):
    return figure_metadata(fig, f"{GROUP}/{name}", warehouse.root, context.run.run_id)


SYNTHETIC_OUTS = {
    "sgd_noise_synthetic_runs": "One row per synthetic run: regime, batch, learning rate, seed, branch cut.",
    "sgd_noise_synthetic_curves": "Held-out loss (cross-entropy vs the teacher), excess over the teacher's "
                                  "entropy, agreement and training loss against steps and examples seen.",
    "sgd_noise_synthetic_distances": "TV distance at equal held-out loss (and at equal steps) between noisy "
                                     "runs and the lowest-noise run, and between seeds of the lowest-noise run.",
}


@dg.multi_asset(outs={n: dg.AssetOut(is_required=False, group_name=GROUP, code_version=CODE_VERSION, tags=stage("training"),
                                     description=d) for n, d in SYNTHETIC_OUTS.items()},
                pool="gpu", can_subset=True)
@yields_selected
def sgd_noise_synthetic(context: dg.AssetExecutionContext, config: SyntheticSweepConfig, compute: Compute,
                        tracking: Tracking, warehouse: WarehousePaths):
    """Train the random-teacher sweep (batch x learning rate x seeds, online and offline, plus noise-cut
    branches) with every network of a batch size at once, and measure functional distances at equal loss."""
    from assets.lm.threads import torch_threads
    from assets.sgd_noise.analysis import functional_distances
    from assets.sgd_noise.data import REGIMES, TeacherTask
    from assets.sgd_noise.synthetic import SweepSpec, run_sweep

    task = TeacherTask(config.input_dim, config.teacher_width, config.classes, config.logit_scale, config.teacher_seed)
    sweep = SweepSpec(config.student_width, config.steps, config.train_size, config.eval_size,
                      config.distance_samples, config.log_points)
    start = time.time()

    def on_group(index, total, regime, batch, seconds):
        eta = (time.time() - start) / (index + 1) * (total - index - 1)
        context.log.info(f"group {index + 1}/{total} ({regime}, B={batch}): {seconds:.1f}s; ETA {eta:.0f}s")

    device = compute.torch_device()
    compute.seed_everything()
    with torch_threads(config.cpu_threads, device):
        result = run_sweep(task, REGIMES, config.batch_sizes, config.learning_rates, list(range(config.seeds)),
                           sweep, config.cut_lr_factor, config.cut_fraction, on_group=on_group, device=device)
    distances = functional_distances(result.runs, result.curves, lambda key, i: result.predictions[key][i],
                                     config.loss_levels)
    runs = result.runs.merge(result.curves.groupby("run_key").agg(
        final_eval_loss=("eval_loss", "last"), best_eval_loss=("eval_loss", "min"),
        final_train_loss=("train_loss", "last")).reset_index(), on="run_key")
    with tracking.start_run("sgd-noise-synthetic", dagster_run_id=context.run.run_id,
                            asset_key="sgd_noise_synthetic_runs", params=config.model_dump()) as run_id:
        finals = runs[runs["cut_step"] < 0].groupby(["regime", "batch_size", "learning_rate"])["final_eval_loss"].mean()
        tracking.log_metrics(run_id, {f"final_eval_loss/{r}/B{b}/lr{lr:g}": v for (r, b, lr), v in finals.items()}
                             | {"seconds": result.seconds})
    yield dg.Output(runs, output_name="sgd_noise_synthetic_runs", metadata={
        "runs": len(runs), "seconds": round(result.seconds, 1), "device": device,
        "teacher_entropy": float(runs["teacher_entropy"].iloc[0]),
        "mlflow": dg.MetadataValue.url(tracking.run_link(run_id)),
        "network_steps_per_second": round(float(runs["steps"].sum() / max(result.seconds, 1e-9)), 1)})
    yield dg.Output(result.curves, output_name="sgd_noise_synthetic_curves", metadata={"rows": len(result.curves)})
    yield dg.Output(distances, output_name="sgd_noise_synthetic_distances", metadata={"rows": len(distances)})


def _build_lm(size, vocab: int, device: str, seed: int):
    from assets.lm.model import build_model

    return build_model(size, vocab, seed, bos_token_id=1, eos_token_id=2, pad_token_id=0).to(device)


LM_OUTS = {
    "sgd_noise_lm_runs": "One row per LM run on the facts world (online / offline, batch, learning rate, seed, "
                         "noise-cut branch) with its final and best held-out loss.",
    "sgd_noise_lm_curves": "LM held-out loss against steps and examples (tokens / context length) seen.",
    "sgd_noise_lm_distances": "TV distance between next-token distributions on held-out text at equal loss.",
}


@dg.multi_asset(outs={n: dg.AssetOut(is_required=False, group_name=GROUP, code_version=LM_CODE_VERSION, tags=stage("training"),
                                     description=d) for n, d in LM_OUTS.items()},
                ins={"world_record": dg.AssetIn("facts_world"), "facts_tokenizer": dg.AssetIn("facts_tokenizer"),
                     "code_corpus": dg.AssetIn("code_corpus"), "code_tokenizer": dg.AssetIn("code_tokenizer")},
                pool="gpu", can_subset=True)
@yields_selected
def sgd_noise_lm(context: dg.AssetExecutionContext, config: LMSweepConfig, compute: Compute, tracking: Tracking,
                 world_record: dict, facts_tokenizer: dict, code_corpus: pd.DataFrame, code_tokenizer: dict):
    """Train the LM family online (fresh text every batch) and offline (a fixed set, many epochs) over batch x
    learning rate with a noise-cut branch, on the facts world and (where the profile asks) the code corpus;
    distances between next-token distributions at equal held-out loss."""
    from assets.corpora.facts_world import world_from_record
    from assets.corpora.tokenization import load_tokenizer
    from assets.lm.threads import torch_threads
    from assets.sgd_noise.data import REGIMES
    from assets.sgd_noise.language import FactsSource, corpus_source, sweep_source, sweep_specs
    from assets.sgd_noise.synthetic import log_steps

    device, seeds, parts = compute.torch_device(), list(range(config.seeds)), []
    plans = [("facts", config.steps, config.batch_sizes)]
    if config.code_steps and config.code_batch_sizes:
        plans.append(("code", config.code_steps, config.code_batch_sizes))
    start, done = time.time(), [0]

    def on_run(run):
        done[0] += 1
        with tracking.start_run(f"sgd-noise-{run.spec.key}", dagster_run_id=context.run.run_id,
                                asset_key="sgd_noise_lm_runs",
                                params={**config.model_dump(), "run_key": run.spec.key}) as run_id:
            for key, curve in run.curves.groupby("run_key"):
                name = "branch_eval_loss" if key != run.spec.key else "eval_loss"
                tracking.log_metric_history(run_id, [{"step": r.step, name: r.eval_loss} for r in curve.itertuples()])
        context.log.info(f"LM run {done[0]} {run.spec.key}: held-out loss {run.curves['eval_loss'].iloc[-1]:.3f}, "
                         f"{run.seconds:.1f}s, {time.time() - start:.0f}s so far")

    for corpus, steps, batches in plans:
        record = facts_tokenizer if corpus == "facts" else code_tokenizer
        tokenizer = load_tokenizer(tracking.download_model(record["tokenizer_uri"]))
        source = (FactsSource(world_from_record(world_record), tokenizer, config.offline_documents)
                  if corpus == "facts" else corpus_source(tokenizer, code_corpus, config.offline_code_tokens))
        cut = int(round(config.cut_fraction * steps))
        specs = sweep_specs(REGIMES, batches, config.learning_rates, seeds, cut, config.cut_lr_factor,
                            config.cut_batch_factor, corpus)
        context.log.info(f"{corpus}: {len(specs)} runs of {steps} steps")
        build = functools.partial(_build_lm, config.model_size(), len(tokenizer), device)

        with torch_threads(config.cpu_threads, device):
            parts.append(sweep_source(
                source, build, specs, steps, sorted(set(log_steps(steps, config.log_points)) | {cut}),
                warmup_steps=config.warmup_steps, context_length=config.context_length,
                eval_windows=config.eval_windows, distance_windows=config.distance_windows,
                loss_levels=config.loss_levels, device=device, on_run=on_run))
    runs, curves, distances = (pd.concat([p[i] for p in parts], ignore_index=True) for i in range(3))
    yield dg.Output(runs, output_name="sgd_noise_lm_runs", metadata={
        "runs": len(runs), "seconds": round(time.time() - start, 1), "device": device,
        "corpora": ", ".join(c for c, _, _ in plans),
        "table": markdown_table(runs[["run_key", "final_eval_loss", "best_eval_loss", "group_seconds"]])})
    yield dg.Output(curves, output_name="sgd_noise_lm_curves", metadata={"rows": len(curves)})
    yield dg.Output(distances, output_name="sgd_noise_lm_distances", metadata={"rows": len(distances)})


_EVAL = {"tags": stage("evaluation"), "group_name": GROUP, "code_version": CODE_VERSION}
_TABLES = {"synthetic_runs": dg.AssetIn("sgd_noise_synthetic_runs"),
           "synthetic_curves": dg.AssetIn("sgd_noise_synthetic_curves"),
           "lm_runs": dg.AssetIn("sgd_noise_lm_runs"), "lm_curves": dg.AssetIn("sgd_noise_lm_curves")}


def _both(synthetic_runs, synthetic_curves, lm_runs, lm_curves) -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = ["run_key", "task", "regime", "batch_size", "learning_rate", "seed", "cut_step", "cut_lr_factor",
            "cut_batch_factor", "parent_run", "steps"]
    curve_cols = ["run_key", "checkpoint", "step", "examples", "epochs", "eval_loss", "train_loss"]
    return (pd.concat([synthetic_runs[cols], lm_runs[cols]], ignore_index=True),
            pd.concat([synthetic_curves[curve_cols], lm_curves[curve_cols]], ignore_index=True))


@dg.asset(ins=_TABLES, **_EVAL)
def sgd_noise_equal_steps(context: dg.AssetExecutionContext, warehouse: WarehousePaths, synthetic_runs: pd.DataFrame,
                          synthetic_curves: pd.DataFrame, lm_runs: pd.DataFrame, lm_curves: pd.DataFrame) -> pd.DataFrame:
    """At equal steps: each lower-noise setting (larger batch, or smaller learning rate) against the next
    noisier one, seed-mean held-out loss; plotted as loss vs steps by noise level, online and offline."""
    from assets.sgd_noise import analysis, plots

    runs, curves = _both(synthetic_runs, synthetic_curves, lm_runs, lm_curves)
    table = analysis.equal_step_comparison(curves, runs)
    share = table.groupby(["task", "regime", "knob"])["less_noise_not_worse"].mean().reset_index()
    context.add_output_metadata({"share_less_noise_not_worse": markdown_table(share),
                                 "loss_curves": _plot(context, warehouse, plots.loss_curves(
                                     analysis.mean_curves(curves, runs)), "loss_curves")})
    return table


@dg.asset(ins={"synthetic": dg.AssetIn("sgd_noise_synthetic_distances"), "lm": dg.AssetIn("sgd_noise_lm_distances")},
          **_EVAL)
def sgd_noise_distance_summary(context: dg.AssetExecutionContext, warehouse: WarehousePaths,
                               synthetic: pd.DataFrame, lm: pd.DataFrame) -> pd.DataFrame:
    """Median TV distance at equal loss and at equal steps per (task, regime, pair kind), with the ratio of
    the noisy-vs-lowest-noise (other seed) distance to the seed-to-seed baseline."""
    from assets.sgd_noise import analysis, plots

    distances = pd.concat([synthetic, lm], ignore_index=True)
    summary = analysis.distance_summary(distances)
    context.add_output_metadata({"table": markdown_table(summary), "distance_vs_loss": _plot(
        context, warehouse, plots.distance_vs_loss(distances), "distance_vs_loss")})
    return summary


@dg.asset(ins=_TABLES, **_EVAL)
def sgd_noise_noise_reduction(context: dg.AssetExecutionContext, warehouse: WarehousePaths,
                              synthetic_runs: pd.DataFrame, synthetic_curves: pd.DataFrame, lm_runs: pd.DataFrame,
                              lm_curves: pd.DataFrame) -> pd.DataFrame:
    """Each noise-cut branch against its parent (continuing unchanged): held-out loss soon after the cut and
    at the end."""
    from assets.sgd_noise import analysis, plots

    runs, curves = _both(synthetic_runs, synthetic_curves, lm_runs, lm_curves)
    table = analysis.noise_reduction(curves, runs)
    context.add_output_metadata({"table": markdown_table(table.drop(columns=["parent_run"])), "plot": _plot(
        context, warehouse, plots.noise_reduction(curves, table), "noise_reduction")})
    return table


@dg.asset(ins=_TABLES, **_EVAL)
def sgd_noise_implicit_bias(context: dg.AssetExecutionContext, synthetic_runs: pd.DataFrame,
                            synthetic_curves: pd.DataFrame, lm_runs: pd.DataFrame,
                            lm_curves: pd.DataFrame) -> pd.DataFrame:
    """Per (task, regime): final and best held-out loss of the lowest-noise setting and of the best noisier
    one; the advantage of noise (> 0: noise generalises better)."""
    from assets.sgd_noise import analysis

    runs, curves = _both(synthetic_runs, synthetic_curves, lm_runs, lm_curves)
    table = analysis.implicit_bias(runs, curves)
    context.add_output_metadata({"table": markdown_table(table)})
    return table


FINDINGS_KEY = dg.AssetKey([GROUP, "findings"])
_FINDING_CHECKS = {
    "online_close_at_equal_loss": "Online, at equal loss, runs with different noise are close in function space.",
    "online_less_noise_not_worse": "Online, less noise never gives a worse loss at equal steps.",
    "online_noise_cut_helps": "Online, cutting the noise mid-training lowers the loss at once.",
    "offline_noise_helps": "Offline, noise gives a better held-out loss (implicit bias), unlike online.",
}


@dg.asset(key=FINDINGS_KEY, **{**_EVAL, "code_version": "2"},  # 2: the findings contract
          ins={"synthetic_runs": dg.AssetIn("sgd_noise_synthetic_runs"), "lm_runs": dg.AssetIn("sgd_noise_lm_runs"),
               "distances": dg.AssetIn("sgd_noise_distance_summary"), "steps": dg.AssetIn("sgd_noise_equal_steps"),
               "reduction": dg.AssetIn("sgd_noise_noise_reduction"), "bias": dg.AssetIn("sgd_noise_implicit_bias")},
          check_specs=findings_check_specs(FINDINGS_KEY, _FINDING_CHECKS))
def sgd_noise_findings(synthetic_runs: pd.DataFrame, lm_runs: pd.DataFrame, distances: pd.DataFrame,
                       steps: pd.DataFrame, reduction: pd.DataFrame, bias: pd.DataFrame):
    """The paper's claims next to ours, each judged by the rule stated in ``assets.sgd_noise.findings``: online
    closeness at equal loss, less noise not worse at equal steps, the noise cut, and the offline implicit-bias
    advantage; the synthetic task first (the row each check reads), then the LM corpora."""
    from assets.sgd_noise import findings as science

    scales = {"synthetic": _scale(synthetic_runs, "random-teacher MLPs, plain SGD")} | {
        task: _scale(lm_runs[lm_runs["task"] == task], f"LM family on the {task[3:]} corpus, Adam")
        for task in sorted(lm_runs["task"].unique(), key=lambda t: t != "lm_facts")}
    rows = {name: [] for name in _FINDING_CHECKS}
    for task, scale in scales.items():
        rows["online_close_at_equal_loss"].append(science.equal_loss_finding(distances, task, scale))
        rows["online_less_noise_not_worse"].append(science.never_worse_finding(steps, task, scale))
        rows["online_noise_cut_helps"].append(science.noise_reduction_finding(reduction, task, scale))
        rows["offline_noise_helps"].append(science.implicit_bias_finding(bias, task, scale))
    # the synthetic task is the headline each check reads; the LM rows are in the table
    yield from findings_results([f for group in rows.values() for f in group],
                                checks={name: group[0].metric for name, group in rows.items()})


# ------------------------------------------------------------------------------------------ data checks
def _curve_suite(gxe) -> list:
    return [gxe.ExpectTableRowCountToBeBetween(min_value=1), gxe.ExpectColumnValuesToNotBeNull(column="eval_loss"),
            gxe.ExpectColumnValuesToBeBetween(column="eval_loss", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="step", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="examples", min_value=0)]


@dg.asset_check(asset="sgd_noise_synthetic_curves", description="losses >= 0 and finite, excess over the "
                "teacher's entropy >= 0 (cross-entropy bound), agreement in [0, 1]")
def sgd_noise_synthetic_curves_valid(sgd_noise_synthetic_curves: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    return gx_check(sgd_noise_synthetic_curves, _curve_suite(gxe) + [
        gxe.ExpectColumnValuesToBeBetween(column="eval_excess", min_value=-1e-4),
        gxe.ExpectColumnValuesToBeBetween(column="eval_agreement", min_value=0, max_value=1)],
        name="sgd_noise_synthetic_curves")


@dg.asset_check(asset="sgd_noise_lm_curves", description="held-out losses finite and >= 0, steps >= 0")
def sgd_noise_lm_curves_valid(sgd_noise_lm_curves: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(sgd_noise_lm_curves, _curve_suite(expectations()), name="sgd_noise_lm_curves")


@dg.asset_check(asset="sgd_noise_distance_summary", description="TV distances in [0, 1], every (task, regime) "
                "has a seed baseline and noisy pairs")
def sgd_noise_distance_summary_valid(sgd_noise_distance_summary: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    return gx_check(sgd_noise_distance_summary, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="median_tv_equal_loss", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="median_tv_equal_step", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=["noise_same_seed", "noise_cross_seed", "seed"]),
        gxe.ExpectColumnValuesToBeBetween(column="pairs", min_value=1)], name="sgd_noise_distance_summary")


defs = dg.Definitions(
    assets=[sgd_noise_synthetic, sgd_noise_lm, sgd_noise_equal_steps, sgd_noise_distance_summary,
            sgd_noise_noise_reduction, sgd_noise_implicit_bias, sgd_noise_findings],
    asset_checks=[sgd_noise_synthetic_curves_valid, sgd_noise_lm_curves_valid, sgd_noise_distance_summary_valid],
)
