"""Dagster side of the sparse-parity study (Barak et al. 2022, hidden progress).

``parity_runs`` / ``parity_curves``: the online-SGD grid (t_c or censoring per run; curves with the
hidden-progress measures), summarised by ``parity_convergence`` (median t_c per setting), ``parity_scaling``
(t_c against n per k) and ``parity_hidden_progress``; ``parity_finite_sample_*``: a fixed training set with
weight decay (grokking-like); ``parity/findings``: the headline results next to their references, each verdict
computed from a rule stated in ``assets.parity.findings``.
"""

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.lm.registration import ProgressLog
from assets.parity import plots, validity
from assets.parity.findings import CHECKS, PROGRESS_MEASURE, build_findings
from resources.compute import Compute
from resources.config import StudyConfig
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import current_profile, pick, step_threads
from resources.stages import stage
from resources.subsetting import yields_selected
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "parity"


class ParitySweepConfig(StudyConfig):
    """A cartesian product of settings; every combination is trained with ``seeds`` seeds at once."""

    name: str = Field(default="grid", description="the sweep's name in the runs table")
    arch: list[str] = Field(default=["mlp"], description="mlp (2-layer ReLU) or polynet (degree-k polynomial neuron)")
    n: list[int] = Field(description="input bits n")
    k: list[int] = Field(description="bits k of the sparse parity (its support size)")
    width: list[int] = Field(default=[100], description="hidden ReLU units of the MLP (polynet: 1 neuron)")
    batch_size: list[int] = Field(default=[32], description="SGD batch size B")
    learning_rate: list[float] = Field(default=[0.1], description="SGD learning rate η")
    loss: list[str] = Field(default=["hinge"], description="hinge, square or cross_entropy")
    init: list[str] = Field(default=["uniform"], description="uniform (nn.Linear default) or gaussian")
    seeds: int = Field(default=16, description="seeds per combination, trained at once")


def _sweep(name: str, n: list[int], k: list[int], seeds: int, **fields) -> dict:
    return {"name": name, "n": n, "k": k, "seeds": seeds, **fields}


class ParityRunsConfig(StudyConfig):
    """Online SGD on (n, k)-sparse parity. The first sweep is the headline (its MLP runs give the findings)."""

    sweeps: list[ParitySweepConfig] = Field(default=pick(
        tiny=[_sweep("scaling", [6, 8, 10], [2, 3], 4, width=[32]),
              _sweep("polynet", [6, 8, 10], [2], 4, arch=["polynet"])],
        demo=[_sweep("scaling", [10, 15, 20, 25, 30], [2, 3], 16),
              _sweep("polynet", [10, 15, 20, 25, 30], [2, 3], 16, arch=["polynet"]),
              _sweep("widths", [20], [3], 8, width=[10, 100]),
              _sweep("losses", [20], [3], 8, loss=["square", "cross_entropy"]),
              _sweep("inits", [20], [3], 8, init=["gaussian"])],
        gpu=[_sweep("scaling", [10, 20, 30, 40, 50], [2, 3], 64, width=[1000]),
             _sweep("polynet", [10, 20, 30, 40, 50], [2, 3, 4], 64, arch=["polynet"]),
             _sweep("widths", [20, 30], [3], 64, width=[10, 100, 1000]),
             _sweep("losses", [30], [3], 32, width=[1000], loss=["square", "cross_entropy"]),
             _sweep("inits", [30], [3], 32, width=[1000], init=["gaussian"])],
    ), description="the sweeps (grids of settings) to train; the first is the headline")
    seed_offset: int = Field(default=0, description="each setting trains seeds seed_offset, seed_offset + 1, ...")
    max_steps: int = pick(tiny=3000, demo=5000, gpu=50_000)
    eval_size: int = Field(default=pick(tiny=512, demo=2048, gpu=8192),
                           description="fresh samples in the evaluation set: t_c is the first step at 100% on them")
    curve_samples: int = Field(default=pick(tiny=256, demo=512, gpu=2048),
                               description="logged curves score the first this many evaluation samples (t_c: all)")
    gap_samples: int = Field(default=pick(tiny=128, demo=256, gpu=4096),
                             description="sample for the Fourier-gap estimate (0: off)")
    log_every: int = Field(default=pick(tiny=50, demo=100, gpu=500),
                           description="steps between logged curve points after the geometric early grid")
    log_growth: float = Field(default=1.35, description="ratio of the early geometric grid of logged steps "
                              "(1, 2, 3, 4, 5, 7, 9, 12, 16, ...)")
    init_scale: float = Field(default=1.0, description="factor on every network's initial weights (1: the "
                              "init's own scale)")
    cpu_threads: int = Field(default=step_threads(), description="torch threads on CPU (0: torch's default)")


class ParityFiniteSampleConfig(StudyConfig):
    """The finite-sample variant: a fixed training set per seed, weight decay, the grokking-like setting.
    Defaults follow the public anchor (n=20, k=3, width 1000, 500 samples, η=0.1, wd 0.01, B=32); wd 0 is
    the control."""

    n: int = Field(default=pick(tiny=10, demo=20), description="input bits n")
    k: int = Field(default=pick(tiny=2, demo=3), description="bits k of the sparse parity (its support size)")
    width: int = Field(default=pick(tiny=64, demo=1000), description="hidden ReLU units of the 2-layer MLP")
    train_set_size: int = Field(default=pick(tiny=200, demo=500),
                                description="fixed training samples per seed (batches are drawn from them)")
    weight_decay: list[float] = [0.01, 0.0]
    batch_size: int = 32
    learning_rate: float = 0.1
    loss: str = Field(default="hinge", description="hinge, square or cross_entropy")
    seeds: int = Field(default=pick(tiny=2, demo=3, gpu=32), description="seeds per weight decay, trained at once")
    max_steps: int = pick(tiny=1500, demo=2500, gpu=20_000)
    eval_every: int = Field(default=pick(tiny=25, demo=50, gpu=10),
                            description="steps between scorings of the evaluation and training sets (t_c's resolution)")
    eval_size: int = Field(default=pick(tiny=512, demo=1024, gpu=8192),
                           description="fresh samples in the evaluation set")
    accuracy_target: float = Field(default=0.99, description="t_c: the first scoring at this accuracy on the "
                                   "evaluation set")
    cpu_threads: int = step_threads()


def _figure(context: dg.AssetExecutionContext, warehouse: WarehousePaths, fig, name: str):
    return figure_metadata(fig, f"{GROUP}/{name}", warehouse.root, context.run.run_id)


def _train(context, groups, spec, compute: Compute, threads: int):
    from assets.lm.threads import torch_threads
    from assets.parity.sweep import run_groups

    progress = ProgressLog(context.log.info, len(groups), "groups")

    def on_group(index, group, runs, seconds):
        progress(f"{group.run_key('*')}: {int(runs['converged'].sum())}/{len(runs)} converged, median t_c "
                 f"{runs['t_c'].median():.0f}, {seconds:.1f}s", done=index + 1)

    compute.seed_everything()
    with torch_threads(threads):
        return run_groups(groups, spec, device=compute.torch_device(), on_group=on_group)


@dg.multi_asset(
    outs={"parity_runs": dg.AssetOut(is_required=False, group_name=GROUP, code_version="1", tags=stage("training"),
                                     description="One row per run (setting x seed): t_c or censored, the step "
                                                 "where accuracy left chance, progress measures at t_c."),
          "parity_curves": dg.AssetOut(is_required=False, group_name=GROUP, code_version="1", tags=stage("training"),
                                       description="Training curves: loss, accuracy, hidden-progress measures.")},
    pool="gpu", can_subset=True)
@yields_selected
def parity_training(context: dg.AssetExecutionContext, config: ParityRunsConfig, compute: Compute,
                    warehouse: WarehousePaths):
    """Train the grid of (n, k, architecture, width, B, η, loss, init) x seeds by online SGD, many networks at once."""
    from assets.parity.analysis import largest_setting, n50_timing
    from assets.parity.sweep import Sweep, base_spec, expand, sweep_dicts

    sweeps = [Sweep.from_mapping(s) for s in sweep_dicts(config.sweeps)]
    groups = expand(sweeps, config.seed_offset, config.init_scale)
    result = _train(context, groups, base_spec(config.model_dump()), compute, config.cpu_threads)
    runs, curves = result.runs, result.curves
    k, n = largest_setting(runs[(runs["sweep"] == sweeps[0].name) & (runs["arch"] == "mlp")])
    yield dg.Output(runs, output_name="parity_runs", metadata={
        "runs": len(runs), "groups": len(groups), "converged_share": float(runs["converged"].mean()),
        "seconds": round(result.seconds, 1), "device": compute.torch_device(),
        "network_steps_per_second": round(float((runs["steps_trained"]).sum() / result.seconds), 1),
        **n50_timing(runs),
        "loss_curves": _figure(context, warehouse, plots.loss_curves(curves, runs, k, n), "loss_curves")})
    yield dg.Output(curves, output_name="parity_curves", metadata={"rows": len(curves)})


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def parity_convergence(context: dg.AssetExecutionContext, warehouse: WarehousePaths,
                       parity_runs: pd.DataFrame) -> pd.DataFrame:
    """Median t_c (censored runs counted as never converging) and quartiles per setting, with the share of the
    run between leaving chance and 100% accuracy; plotted against n on log-log axes."""
    from assets.parity import analysis

    summary = analysis.convergence_summary(parity_runs)
    fit = analysis.scaling_fit(summary)
    context.add_output_metadata({
        "settings": len(summary), "table": markdown_table(summary.drop(columns=["batch_size", "weight_decay"])),
        "tc_vs_n": _figure(context, warehouse, plots.tc_vs_n(summary, fit), "tc_vs_n")})
    return summary


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def parity_scaling(context: dg.AssetExecutionContext, parity_convergence: pd.DataFrame) -> pd.DataFrame:
    """Fit of median t_c = c n^exponent per (architecture, k, ...) on log-log axes (scipy linregress), with
    alpha = exponent / k as in the paper's t_c <= c n^(alpha k)."""
    from assets.parity import analysis

    fit = analysis.scaling_fit(parity_convergence)
    context.add_output_metadata({"fits": len(fit), "table": markdown_table(fit[list(analysis.FIT_SHOWN)])})
    return fit


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def parity_hidden_progress(context: dg.AssetExecutionContext, warehouse: WarehousePaths,
                           parity_runs: pd.DataFrame, parity_curves: pd.DataFrame) -> pd.DataFrame:
    """Per converged run and progress measure: does it rise through the plateau before accuracy moves
    (one-sided Spearman trend), by how much, and what share of its rise came before accuracy moved."""
    from assets.parity import analysis

    measures = [PROGRESS_MEASURE, "weight_mass_ratio", "linf_change", "fourier_gap"]
    table = analysis.hidden_progress(parity_curves, parity_runs, measures)
    plot = plots.progress_through_plateau(parity_curves, parity_runs, plots.progress_panels(parity_runs),
                                          PROGRESS_MEASURE)
    context.add_output_metadata({
        "by_measure": markdown_table(analysis.progress_by_measure(table)),
        "progress_plot": _figure(context, warehouse, plot, "hidden_progress")})
    return table


@dg.multi_asset(
    outs={"parity_finite_sample_runs": dg.AssetOut(
              is_required=False, group_name=GROUP, code_version="1", tags=stage("training"),
              description="Finite-sample runs: steps to memorise, steps to 99% test accuracy, or censored."),
          "parity_finite_sample_curves": dg.AssetOut(
              is_required=False, group_name=GROUP, code_version="1", tags=stage("training"),
              description="Finite-sample curves: train-set and test accuracy.")},
    pool="gpu", can_subset=True)
@yields_selected
def parity_finite_sample(context: dg.AssetExecutionContext, config: ParityFiniteSampleConfig, compute: Compute,
                         warehouse: WarehousePaths):
    """A fixed training set per seed and weight decay (the grokking-like setting), with weight decay 0 as control."""
    from assets.parity.sweep import finite_sample_plan

    result = _train(context, *finite_sample_plan(config.model_dump()), compute, config.cpu_threads)
    yield dg.Output(result.runs, output_name="parity_finite_sample_runs", metadata={
        "runs": len(result.runs), "seconds": round(result.seconds, 1),
        "table": markdown_table(result.runs[["weight_decay", "seed", "memorized_step", "t_c", "censored",
                                             "final_eval_accuracy"]])})
    yield dg.Output(result.curves, output_name="parity_finite_sample_curves", metadata={
        "rows": len(result.curves),
        "plot": _figure(context, warehouse, plots.finite_sample_curves(result.curves), "finite_sample")})


FINDINGS_KEY = dg.AssetKey([GROUP, "findings"])


@dg.asset(key=FINDINGS_KEY, group_name=GROUP, code_version="2", tags=stage("evaluation"),
          ins={"runs": dg.AssetIn("parity_runs"), "convergence": dg.AssetIn("parity_convergence"),
               "scaling": dg.AssetIn("parity_scaling"), "progress": dg.AssetIn("parity_hidden_progress"),
               "finite": dg.AssetIn("parity_finite_sample_runs")},
          check_specs=findings_check_specs(FINDINGS_KEY, CHECKS))
def parity_findings(runs: pd.DataFrame, convergence: pd.DataFrame, scaling: pd.DataFrame,
                    progress: pd.DataFrame, finite: pd.DataFrame):
    """The headline results next to their references, each judged by the rule stated in
    ``assets.parity.findings`` (abrupt transition, hidden progress, t_c ~ n^O(k) against the exponent ratio
    n^(alpha k) implies, finite sample against a public replication); each check reads one finding."""
    found, checks = build_findings(runs, convergence, scaling, progress, finite, current_profile())
    yield from findings_results(found, checks=checks)


@dg.asset_check(asset="parity_runs", description="one row per run, t_c >= 1 exactly when converged, n >= k")
def parity_runs_valid(parity_runs: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(*validity.runs(expectations(), parity_runs), name="parity_runs")


@dg.asset_check(asset="parity_curves", description="accuracies in [0, 1], losses >= 0, steps >= 0, no missing loss")
def parity_curves_valid(parity_curves: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(*validity.curves(expectations(), parity_curves), name="parity_curves")


@dg.asset_check(asset="parity_convergence", description="medians within [1, max steps], shares in [0, 1]")
def parity_convergence_valid(parity_convergence: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(*validity.convergence(expectations(), parity_convergence), name="parity_convergence")


@dg.asset_check(asset="parity_scaling", description="finite exponents, r^2 in [0, 1], at least 3 points per fit")
def parity_scaling_valid(parity_scaling: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(*validity.scaling(expectations(), parity_scaling), name="parity_scaling")


@dg.asset_check(asset="parity_finite_sample_runs", description="fixed training set, memorised step >= 1, t_c >= 1")
def parity_finite_sample_runs_valid(parity_finite_sample_runs: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(*validity.finite_sample_runs(expectations(), parity_finite_sample_runs),
                    name="parity_finite_sample_runs")


defs = dg.Definitions(
    assets=[parity_training, parity_convergence, parity_scaling, parity_hidden_progress, parity_finite_sample,
            parity_findings],
    asset_checks=[parity_runs_valid, parity_curves_valid, parity_convergence_valid, parity_scaling_valid,
                  parity_finite_sample_runs_valid],
)
