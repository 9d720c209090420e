"""Dagster side of the SGD-noise study (Vyas, Morwani, Zhao, Kaplun, Kakade & Barak 2023, "Beyond Implicit
Bias: The Insignificance of SGD Noise in Online Learning").

``sgd_noise_synthetic_*``: batch size x learning rate x seeds on a random-teacher task, online and offline,
with noise-reduction branches. ``sgd_noise_lm_*``: the LM family on the facts world (and, on tiny and gpu, the
code corpus); online reads fresh text, offline a fixed set. Both give functional distances at equal held-out
loss; four assets summarise them and ``sgd_noise/findings`` puts the paper's claims next to our numbers.
"""

import time

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.lm.config import ModelShape
from assets.lm.registration import ProgressLog, load_tokenizer_of
from assets.lm.threads import torch_threads
from assets.sgd_noise import analysis, plots, tables, validity
from assets.sgd_noise.findings import CHECKS
from resources.compute import Compute
from resources.config import StudyConfig
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import current_profile, pick, step_threads
from resources.stages import stage
from resources.subsetting import yields_selected
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "sgd_noise"
CODE_VERSION = "1"
LM_CODE_VERSION = "2"  # 2: the noise-cut branch gets its own copy of the parent's Adam state


class SyntheticSweepConfig(StudyConfig):
    """Random teacher (tanh, softmax labels) -> 2-layer ReLU students by plain SGD, online and offline."""

    input_dim: int = Field(default=pick(tiny=16, demo=32, gpu=64), description="input dimension d; x ~ N(0, I_d)")
    teacher_width: int = Field(default=pick(tiny=32, demo=64, gpu=256), description="tanh hidden units of the teacher")
    classes: int = Field(default=10, description="classes of the teacher's softmax labels")
    logit_scale: float = Field(default=4.0, description="teacher logit scale: larger = less label noise")
    teacher_seed: int = Field(default=0, description="seed of the teacher's weights")
    student_width: int = Field(default=pick(tiny=32, demo=64, gpu=512),
                               description="hidden ReLU units of each 2-layer student")
    batch_sizes: list[int] = Field(default=pick(tiny=[4, 16], demo=[4, 16, 64], gpu=[8, 32, 128, 512]),
                                   description="SGD batch sizes B swept (noise scale η/B)")
    learning_rates: list[float] = Field(default=pick(tiny=[0.05, 0.2], demo=[0.05, 0.1, 0.2],
                                                     gpu=[0.025, 0.05, 0.1, 0.2]),
                                        description="SGD learning rates η swept (noise scale η/B)")
    seeds: int = Field(default=pick(tiny=2, demo=3, gpu=8), description="seeds per (regime, B, η); runs of one "
                       "seed share init and data, so differ only in SGD noise")
    steps: int = Field(default=pick(tiny=200, demo=1200, gpu=20_000), description="SGD steps per run")
    train_size: int = Field(default=pick(tiny=256, demo=512, gpu=4096), description="offline training-set size")
    eval_size: int = Field(default=pick(tiny=512, demo=2048, gpu=8192),
                           description="held-out inputs scored at every logged step")
    distance_samples: int = Field(default=pick(tiny=256, demo=512, gpu=2048), description="first held-out inputs "
                                  "whose predictive probabilities give the functional (TV) distance")
    log_points: int = Field(default=pick(tiny=12, demo=30, gpu=60), description="about this many logged steps "
                            "per run: half geometric early, half evenly spaced")
    loss_levels: int = Field(default=pick(tiny=5, demo=8, gpu=12), description="held-out loss levels every run "
                             "reaches; runs are compared in function space at equal loss")
    cut_fraction: float = Field(default=0.5, description="the noise-reduction branch leaves its parent here")
    cut_lr_factor: float = Field(default=0.25, description="the branch's learning rate multiplier")
    cpu_threads: int = step_threads()


class LMSweepConfig(ModelShape, StudyConfig):
    """The LM family on the facts world (and the code corpus); Adam at a constant learning rate after a short
    warmup. The demo runs the facts world only (CPU budget); tiny and gpu also run the code corpus."""

    d_model: int = pick(tiny=16, demo=32, gpu=256)
    n_layers: int = pick(tiny=1, demo=1, gpu=4)
    n_heads: int = pick(tiny=2, demo=2, gpu=4)
    d_ff: int = pick(tiny=32, demo=64, gpu=1024)
    context_length: int = pick(tiny=16, demo=32, gpu=128)
    batch_sizes: list[int] = Field(default=pick(tiny=[4, 8], demo=[4, 16], gpu=[16, 64, 256]),
                                   description="batch sizes B swept, in context windows")
    learning_rates: list[float] = Field(default=pick(tiny=[3e-3, 1e-2], demo=[3e-3, 1e-2], gpu=[3e-4, 1e-3, 3e-3]),
                                        description="Adam learning rates swept (constant after warmup)")
    seeds: int = Field(default=2, description="the lowest-noise setting runs every seed (the distance baseline)")
    steps: int = Field(default=pick(tiny=24, demo=300, gpu=4000), description="steps per run on the facts world")
    warmup_steps: int = pick(tiny=4, demo=10, gpu=200)
    offline_documents: int = Field(default=pick(tiny=40, demo=400, gpu=5000), description="offline training set")
    eval_windows: int = Field(default=pick(tiny=8, demo=64, gpu=512), description="held-out windows scored")
    distance_windows: int = Field(default=pick(tiny=4, demo=16, gpu=4), description="first held-out windows "
                                  "whose next-token probabilities give the functional (TV) distance")
    log_points: int = Field(default=pick(tiny=6, demo=16, gpu=24), description="about this many logged steps "
                            "per run: half geometric early, half evenly spaced")
    loss_levels: int = Field(default=pick(tiny=4, demo=6, gpu=12), description="held-out loss levels every run "
                             "reaches; runs are compared in function space at equal loss")
    code_steps: int = Field(default=pick(tiny=24, demo=0, gpu=1000),
                            description="steps on the code corpus (0: the facts world only)")
    code_batch_sizes: list[int] = Field(default=pick(tiny=[4, 8], demo=[], gpu=[8, 16, 32]),
                                        description="online code runs read each file once: keep steps x batch x "
                                                    "context below the corpus size")
    offline_code_tokens: int = Field(default=pick(tiny=2000, demo=20_000, gpu=200_000),
                                     description="offline code training set: the first this many train tokens")
    cut_fraction: float = Field(default=0.5, description="the noise-reduction branch leaves its parent at this "
                                "fraction of the steps")
    cut_batch_factor: int = Field(default=4, description="the noise-reduction branch's batch multiplier")
    cut_lr_factor: float = Field(default=1.0, description="the branch's learning rate multiplier")
    cpu_threads: int = step_threads()


def _plot(context, warehouse: WarehousePaths, fig, name: str):
    return figure_metadata(fig, f"{GROUP}/{name}", warehouse.root, context.run.run_id)


@dg.multi_asset(outs={n: dg.AssetOut(is_required=False, group_name=GROUP, code_version=CODE_VERSION, tags=stage("training"),
                                     description=d) for n, d in tables.SYNTHETIC_OUTS.items()},
                pool="gpu", can_subset=True)
@yields_selected
def sgd_noise_synthetic(context: dg.AssetExecutionContext, config: SyntheticSweepConfig, compute: Compute,
                        tracking: Tracking, warehouse: WarehousePaths):
    """Train the random-teacher sweep (batch x learning rate x seeds, online and offline, plus noise-cut
    branches) with every network of a batch size at once, and measure functional distances at equal loss."""
    from assets.sgd_noise.data import REGIMES, TeacherTask
    from assets.sgd_noise.synthetic import SweepSpec, final_losses, run_sweep, sweep_tables

    task = TeacherTask(config.input_dim, config.teacher_width, config.classes, config.logit_scale, config.teacher_seed)
    sweep = SweepSpec(config.student_width, config.steps, config.train_size, config.eval_size,
                      config.distance_samples, config.log_points)
    progress = ProgressLog(context.log.info, len(REGIMES) * len(config.batch_sizes), "synthetic groups")
    device = compute.torch_device()
    compute.seed_everything()
    with torch_threads(config.cpu_threads, device):
        result = run_sweep(task, REGIMES, config.batch_sizes, config.learning_rates, list(range(config.seeds)),
                           sweep, config.cut_lr_factor, config.cut_fraction, device=device,
                           on_group=lambda index, _, regime, batch, seconds: progress(
                               f"({regime}, B={batch}) took {seconds:.1f}s", done=index + 1, force=True))
    runs, distances = sweep_tables(result, config.loss_levels)
    with tracking.start_run("sgd-noise-synthetic", dagster_run_id=context.run.run_id,
                            asset_key="sgd_noise_synthetic_runs", params=config.model_dump()) as run_id:
        tracking.log_metrics(run_id, final_losses(runs) | {"seconds": result.seconds})
    yield dg.Output(runs, output_name="sgd_noise_synthetic_runs", metadata={
        **tables.synthetic_run_numbers(runs, result.seconds), "device": device,
        "mlflow": dg.MetadataValue.url(tracking.run_link(run_id))})
    yield dg.Output(result.curves, output_name="sgd_noise_synthetic_curves", metadata={"rows": len(result.curves)})
    yield dg.Output(distances, output_name="sgd_noise_synthetic_distances", metadata={"rows": len(distances)})


@dg.multi_asset(outs={n: dg.AssetOut(is_required=False, group_name=GROUP, code_version=LM_CODE_VERSION, tags=stage("training"),
                                     description=d) for n, d in tables.LM_OUTS.items()},
                ins={"world_record": dg.AssetIn("facts_world"), "facts_tokenizer": dg.AssetIn("facts_tokenizer"),
                     "code_corpus": dg.AssetIn("code_corpus"), "code_tokenizer": dg.AssetIn("code_tokenizer")},
                pool="gpu", can_subset=True)
@yields_selected
def sgd_noise_lm(context: dg.AssetExecutionContext, config: LMSweepConfig, compute: Compute, tracking: Tracking,
                 world_record: dict, facts_tokenizer: dict, code_corpus: pd.DataFrame, code_tokenizer: dict):
    """Train the LM family online (fresh text every batch) and offline (a fixed set, many epochs) over batch x
    learning rate with a noise-cut branch, on the facts world and (where the profile asks) the code corpus;
    distances between next-token distributions at equal held-out loss."""
    from assets.sgd_noise.lm_sweep import LMSweepSettings, eval_history, lm_source, sweep_corpus

    device, parts, settings = compute.torch_device(), [], LMSweepSettings.of(config.model_dump())
    plans = [("facts", config.steps, config.batch_sizes, facts_tokenizer)]
    if config.code_steps and config.code_batch_sizes:
        plans.append(("code", config.code_steps, config.code_batch_sizes, code_tokenizer))
    start, progress = time.time(), ProgressLog(context.log.info, None, "LM runs")

    def on_run(run):
        with tracking.start_run(f"sgd-noise-{run.spec.key}", dagster_run_id=context.run.run_id, asset_key=
                                "sgd_noise_lm_runs", params={**config.model_dump(), "run_key": run.spec.key}) as run_id:
            tracking.log_metric_history(run_id, eval_history(run))
        progress(f"{run.spec.key}: held-out loss {run.curves['eval_loss'].iloc[-1]:.3f}, {run.seconds:.1f}s", force=True)

    for corpus, steps, batches, tokenizer_record in plans:
        tokenizer = load_tokenizer_of(tokenizer_record, tracking)
        source = lm_source(corpus, tokenizer, world_record, code_corpus, offline_documents=config.offline_documents,
                           offline_code_tokens=config.offline_code_tokens)
        with torch_threads(config.cpu_threads, device):
            parts.append(sweep_corpus(corpus, source, len(tokenizer), config.model_size("sgd-noise"), steps, batches,
                                      settings, device=device, on_run=on_run, log=context.log.info))
    runs, curves, distances = (pd.concat([p[i] for p in parts], ignore_index=True) for i in range(3))
    yield dg.Output(runs, output_name="sgd_noise_lm_runs", metadata={
        "runs": len(runs), "seconds": round(time.time() - start, 1), "device": device,
        "corpora": ", ".join(p[0] for p in plans),
        "table": markdown_table(runs[["run_key", "final_eval_loss", "best_eval_loss", "group_seconds"]])})
    yield dg.Output(curves, output_name="sgd_noise_lm_curves", metadata={"rows": len(curves)})
    yield dg.Output(distances, output_name="sgd_noise_lm_distances", metadata={"rows": len(distances)})


_EVAL = {"tags": stage("evaluation"), "group_name": GROUP, "code_version": CODE_VERSION}
_TABLES = {"synthetic_runs": dg.AssetIn("sgd_noise_synthetic_runs"),
           "synthetic_curves": dg.AssetIn("sgd_noise_synthetic_curves"),
           "lm_runs": dg.AssetIn("sgd_noise_lm_runs"), "lm_curves": dg.AssetIn("sgd_noise_lm_curves")}


@dg.asset(ins=_TABLES, **_EVAL)
def sgd_noise_equal_steps(context: dg.AssetExecutionContext, warehouse: WarehousePaths, synthetic_runs: pd.DataFrame,
                          synthetic_curves: pd.DataFrame, lm_runs: pd.DataFrame, lm_curves: pd.DataFrame) -> pd.DataFrame:
    """At equal steps: each lower-noise setting (larger batch, or smaller learning rate) against the next
    noisier one, seed-mean held-out loss; plotted as loss vs steps by noise level, online and offline."""
    runs, curves = analysis.combined(synthetic_runs, synthetic_curves, lm_runs, lm_curves)
    table = analysis.equal_step_comparison(curves, runs)
    context.add_output_metadata({"share_less_noise_not_worse": markdown_table(tables.share_not_worse(table)),
                                 "loss_curves": _plot(context, warehouse, plots.loss_curves(
                                     analysis.mean_curves(curves, runs)), "loss_curves")})
    return table


@dg.asset(ins={"synthetic": dg.AssetIn("sgd_noise_synthetic_distances"), "lm": dg.AssetIn("sgd_noise_lm_distances")},
          **_EVAL)
def sgd_noise_distance_summary(context: dg.AssetExecutionContext, warehouse: WarehousePaths,
                               synthetic: pd.DataFrame, lm: pd.DataFrame) -> pd.DataFrame:
    """Median TV distance at equal loss and at equal steps per (task, regime, pair kind), with the ratio of
    the noisy-vs-lowest-noise (other seed) distance to the seed-to-seed baseline."""
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
    runs, curves = analysis.combined(synthetic_runs, synthetic_curves, lm_runs, lm_curves)
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
    runs, curves = analysis.combined(synthetic_runs, synthetic_curves, lm_runs, lm_curves)
    table = analysis.implicit_bias(runs, curves)
    context.add_output_metadata({"table": markdown_table(table)})
    return table


FINDINGS_KEY = dg.AssetKey([GROUP, "findings"])


@dg.asset(key=FINDINGS_KEY, **{**_EVAL, "code_version": "2"},  # 2: the findings contract
          ins={"synthetic_runs": dg.AssetIn("sgd_noise_synthetic_runs"), "lm_runs": dg.AssetIn("sgd_noise_lm_runs"),
               "distances": dg.AssetIn("sgd_noise_distance_summary"), "steps": dg.AssetIn("sgd_noise_equal_steps"),
               "reduction": dg.AssetIn("sgd_noise_noise_reduction"), "bias": dg.AssetIn("sgd_noise_implicit_bias")},
          check_specs=findings_check_specs(FINDINGS_KEY, CHECKS))
def sgd_noise_findings(synthetic_runs: pd.DataFrame, lm_runs: pd.DataFrame, distances: pd.DataFrame,
                       steps: pd.DataFrame, reduction: pd.DataFrame, bias: pd.DataFrame):
    """The paper's claims next to ours, each judged by the rule stated in ``assets.sgd_noise.findings``: online
    closeness at equal loss, less noise not worse at equal steps, the noise cut, and the offline implicit-bias
    advantage; the synthetic task first (the row each check reads), then the LM corpora."""
    from assets.sgd_noise.findings import build_findings

    found, checks = build_findings(synthetic_runs, lm_runs, distances, steps, reduction, bias, current_profile())
    yield from findings_results(found, checks=checks)  # each check reads the synthetic row; LM rows in the table


@dg.asset_check(asset="sgd_noise_synthetic_curves", description="losses >= 0 and finite, excess over the "
                "teacher's entropy >= 0 (cross-entropy bound), agreement in [0, 1]")
def sgd_noise_synthetic_curves_valid(sgd_noise_synthetic_curves: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(sgd_noise_synthetic_curves, validity.synthetic_curves(expectations()),
                    name="sgd_noise_synthetic_curves")


@dg.asset_check(asset="sgd_noise_lm_curves", description="held-out losses finite and >= 0, steps >= 0")
def sgd_noise_lm_curves_valid(sgd_noise_lm_curves: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(sgd_noise_lm_curves, validity.curves(expectations()), name="sgd_noise_lm_curves")


@dg.asset_check(asset="sgd_noise_distance_summary", description="TV distances in [0, 1], every (task, regime) "
                "has a seed baseline and noisy pairs")
def sgd_noise_distance_summary_valid(sgd_noise_distance_summary: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(sgd_noise_distance_summary, validity.distance_summary(expectations()),
                    name="sgd_noise_distance_summary")


defs = dg.Definitions(
    assets=[sgd_noise_synthetic, sgd_noise_lm, sgd_noise_equal_steps, sgd_noise_distance_summary,
            sgd_noise_noise_reduction, sgd_noise_implicit_bias, sgd_noise_findings],
    asset_checks=[sgd_noise_synthetic_curves_valid, sgd_noise_lm_curves_valid, sgd_noise_distance_summary_valid],
)
