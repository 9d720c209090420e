"""Dagster side of the sparse-parity study (Barak et al. 2022, hidden progress).

``parity_runs`` / ``parity_curves``: the grid of online-SGD runs (one row per run with t_c or censoring; the
training curves with the hidden-progress measures). ``parity_convergence``: median t_c per setting.
``parity_scaling``: the fit of median t_c against n per k. ``parity_hidden_progress``: per run, whether the
progress measure rose through the plateau. ``parity_finite_sample_runs`` / ``_curves``: the fixed training
set with weight decay (grokking-like). ``parity/findings``: the headline results next to their references,
each verdict computed from a rule stated in ``assets.parity.findings``.
"""

import time

import dagster as dg
import pandas as pd
from pydantic import Field

from resources.compute import Compute
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import current_profile, pick
from resources.stages import stage
from resources.subsetting import yields_selected
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "parity"
PROGRESS_MEASURE = "relevant_change_ratio"  # weight change on S vs off S since initialisation


class ParitySweepConfig(dg.Config):
    """A cartesian product of settings; every combination is trained with ``seeds`` seeds at once."""

    name: str = "grid"
    arch: list[str] = Field(default=["mlp"], description="mlp (2-layer ReLU) or polynet (degree-k polynomial neuron)")
    n: list[int]
    k: list[int]
    width: list[int] = [100]
    batch_size: list[int] = [32]
    learning_rate: list[float] = [0.1]
    loss: list[str] = Field(default=["hinge"], description="hinge, square or cross_entropy")
    init: list[str] = Field(default=["uniform"], description="uniform (nn.Linear default) or gaussian")
    seeds: int = 16


def _sweep(name: str, n: list[int], k: list[int], seeds: int, **fields) -> dict:
    return {"name": name, "n": n, "k": k, "seeds": seeds, **fields}


class ParityRunsConfig(dg.Config):
    """Online SGD on (n, k)-sparse parity. The first sweep is the headline (its MLP runs give the findings)."""

    sweeps: list[ParitySweepConfig] = pick(
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
    )
    seed_offset: int = 0
    max_steps: int = pick(tiny=3000, demo=5000, gpu=50_000)
    eval_size: int = Field(default=pick(tiny=512, demo=2048, gpu=8192),
                           description="fresh samples in the evaluation set: t_c is the first step at 100% on them")
    curve_samples: int = pick(tiny=256, demo=512, gpu=2048)
    gap_samples: int = Field(default=pick(tiny=128, demo=256, gpu=4096),
                             description="sample for the Fourier-gap estimate (0: off)")
    log_every: int = pick(tiny=50, demo=100, gpu=500)
    log_growth: float = 1.35
    init_scale: float = 1.0
    cpu_threads: int = Field(default=1, description="torch threads on CPU (0: torch's default)")


class ParityFiniteSampleConfig(dg.Config):
    """The finite-sample variant: a fixed training set per seed, weight decay, the grokking-like setting.
    Defaults follow the public anchor (n=20, k=3, width 1000, 500 samples, η=0.1, wd 0.01, B=32); wd 0 is
    the control."""

    n: int = pick(tiny=10, demo=20)
    k: int = pick(tiny=2, demo=3)
    width: int = pick(tiny=64, demo=1000)
    train_set_size: int = pick(tiny=200, demo=500)
    weight_decay: list[float] = [0.01, 0.0]
    batch_size: int = 32
    learning_rate: float = 0.1
    loss: str = "hinge"
    seeds: int = pick(tiny=2, demo=3, gpu=32)
    max_steps: int = pick(tiny=1500, demo=2500, gpu=20_000)
    eval_every: int = pick(tiny=25, demo=50, gpu=10)
    eval_size: int = pick(tiny=512, demo=1024, gpu=8192)
    accuracy_target: float = 0.99
    cpu_threads: int = 1


def _scale(runs: pd.DataFrame) -> str:
    return (f"{current_profile()} profile: {len(runs)} runs, n in {sorted(runs['n'].unique().tolist())}, "
            f"k in {sorted(runs['k'].unique().tolist())}, width {sorted(runs['width'].unique().tolist())}, "
            f"t_c at {runs['accuracy_target'].iloc[0]:.0%} of {int(runs['eval_size'].iloc[0])} fresh samples, "
            f"device {runs['device'].iloc[0]}")


def _train(context, groups, spec, compute: Compute, threads: int):
    from assets.lm.threads import torch_threads
    from assets.parity.sweep import run_groups

    start, every = time.time(), max(1, len(groups) // 10)

    def on_group(index, group, runs, seconds):
        if (index + 1) % every == 0 or index + 1 == len(groups):
            eta = (time.time() - start) / (index + 1) * (len(groups) - index - 1)
            context.log.info(f"group {index + 1}/{len(groups)} {group.run_key('*')}: {int(runs['converged'].sum())}/"
                             f"{len(runs)} converged, median t_c {runs['t_c'].median():.0f}, {seconds:.1f}s; ETA {eta:.0f}s")

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
    from assets.parity import plots
    from assets.parity.sweep import GROUP_COLUMNS, Sweep, base_spec, expand, sweep_dicts

    sweeps = [Sweep.from_mapping(s) for s in sweep_dicts(config.sweeps)]
    groups = expand(sweeps, config.seed_offset, config.init_scale)
    result = _train(context, groups, base_spec(config.model_dump()), compute, config.cpu_threads)
    runs, curves = result.runs, result.curves
    head = runs[(runs["sweep"] == sweeps[0].name) & (runs["arch"] == "mlp")]
    k = int(head["k"].max())
    n = int(head.loc[head["k"] == k, "n"].max())
    n50 = runs[(runs["n"] == 50) & (runs["k"] == 3)].groupby(list(GROUP_COLUMNS), dropna=False)["group_seconds"].first()
    yield dg.Output(runs, output_name="parity_runs", metadata={
        "runs": len(runs), "groups": len(groups), "converged_share": float(runs["converged"].mean()),
        "seconds": round(result.seconds, 1), "device": compute.torch_device(),
        "network_steps_per_second": round(float((runs["steps_trained"]).sum() / result.seconds), 1),
        **({"n50_k3_wall_seconds": round(float(n50.sum()), 1), "n50_k3_runs": int(
            ((runs["n"] == 50) & (runs["k"] == 3)).sum())} if len(n50) else {}),
        "loss_curves": figure_metadata(plots.loss_curves(curves, runs, k, n), "parity/loss_curves",
                                       warehouse.root, context.run.run_id)})
    yield dg.Output(curves, output_name="parity_curves", metadata={"rows": len(curves)})


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def parity_convergence(context: dg.AssetExecutionContext, warehouse: WarehousePaths,
                       parity_runs: pd.DataFrame) -> pd.DataFrame:
    """Median t_c (censored runs counted as never converging) and quartiles per setting, with the share of the
    run between leaving chance and 100% accuracy; plotted against n on log-log axes."""
    from assets.parity import analysis, plots

    summary = analysis.convergence_summary(parity_runs)
    fit = analysis.scaling_fit(summary)
    context.add_output_metadata({
        "settings": len(summary), "table": markdown_table(summary.drop(columns=["batch_size", "weight_decay"])),
        "tc_vs_n": figure_metadata(plots.tc_vs_n(summary, fit), "parity/tc_vs_n", warehouse.root, context.run.run_id)})
    return summary


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def parity_scaling(context: dg.AssetExecutionContext, parity_convergence: pd.DataFrame) -> pd.DataFrame:
    """Fit of median t_c = c n^exponent per (architecture, k, ...) on log-log axes (scipy linregress), with
    alpha = exponent / k as in the paper's t_c <= c n^(alpha k)."""
    from assets.parity import analysis

    fit = analysis.scaling_fit(parity_convergence)
    context.add_output_metadata({"fits": len(fit), "table": markdown_table(
        fit[["arch", "k", "width", "loss", "init", "points", "exponent", "exponent_stderr", "r_squared", "alpha"]])})
    return fit


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def parity_hidden_progress(context: dg.AssetExecutionContext, warehouse: WarehousePaths,
                           parity_runs: pd.DataFrame, parity_curves: pd.DataFrame) -> pd.DataFrame:
    """Per converged run and progress measure: does it rise through the plateau before accuracy moves
    (one-sided Spearman trend), by how much, and what share of its rise came before accuracy moved."""
    from assets.parity import analysis, plots

    measures = [PROGRESS_MEASURE, "weight_mass_ratio", "linf_change", "fourier_gap"]
    table = analysis.hidden_progress(parity_curves, parity_runs, measures)
    by = table.assign(rising=table["p_value"] < 0.05).groupby(["measure", "arch", "k"])[
        ["rising", "spearman_rho", "rise", "share_before_move"]].median().reset_index()
    panels = []
    for arch in ("mlp", "polynet"):
        cell = parity_runs[(parity_runs["arch"] == arch) & parity_runs["converged"].astype(bool)]
        if len(cell):
            k = int(cell["k"].max())
            panels.append((arch, k, int(cell.loc[cell["k"] == k, "n"].max())))
    context.add_output_metadata({
        "by_measure": markdown_table(by),
        "progress_plot": figure_metadata(plots.progress_through_plateau(parity_curves, parity_runs, panels,
                                                                        PROGRESS_MEASURE),
                                         "parity/hidden_progress", warehouse.root, context.run.run_id)})
    return table


@dg.multi_asset(
    outs={"parity_finite_sample_runs": dg.AssetOut(is_required=False, group_name=GROUP, code_version="1", tags=stage("training"),
                                                   description="Finite-sample runs: steps to memorise, steps to "
                                                               "99% test accuracy, or censored."),
          "parity_finite_sample_curves": dg.AssetOut(is_required=False, group_name=GROUP, code_version="1", tags=stage("training"),
                                                     description="Finite-sample curves: train-set and test accuracy.")},
    pool="gpu", can_subset=True)
@yields_selected
def parity_finite_sample(context: dg.AssetExecutionContext, config: ParityFiniteSampleConfig, compute: Compute,
                         warehouse: WarehousePaths):
    """A fixed training set per seed and weight decay (the grokking-like setting), with weight decay 0 as control."""
    from assets.parity import plots
    from assets.parity.sweep import Sweep, expand
    from assets.parity.trainer import TrainSpec

    sweep = Sweep(name="finite_sample", n=(config.n,), k=(config.k,), width=(config.width,),
                  batch_size=(config.batch_size,), learning_rate=(config.learning_rate,), loss=(config.loss,),
                  weight_decay=tuple(config.weight_decay), train_set_size=(config.train_set_size,),
                  seeds=config.seeds)
    spec = TrainSpec(max_steps=config.max_steps, eval_size=config.eval_size, curve_samples=config.eval_size,
                     accuracy_target=config.accuracy_target, eval_every=config.eval_every,
                     log_every=config.eval_every * 4, gap_samples=0)
    result = _train(context, expand([sweep]), spec, compute, config.cpu_threads)
    yield dg.Output(result.runs, output_name="parity_finite_sample_runs", metadata={
        "runs": len(result.runs), "seconds": round(result.seconds, 1),
        "table": markdown_table(result.runs[["weight_decay", "seed", "memorized_step", "t_c", "censored",
                                             "final_eval_accuracy"]])})
    yield dg.Output(result.curves, output_name="parity_finite_sample_curves", metadata={
        "rows": len(result.curves),
        "plot": figure_metadata(plots.finite_sample_curves(result.curves), "parity/finite_sample",
                                warehouse.root, context.run.run_id)})


FINDINGS_KEY = dg.AssetKey([GROUP, "findings"])
_FINDING_CHECKS = {
    "transition_is_abrupt": "The loss stays near chance for most of the run and falls within a small fraction of it.",
    "progress_precedes_accuracy": "The hidden-progress measure rises during the plateau, before accuracy moves.",
    "tc_exponent_grows_with_k": "t_c grows polynomially in n with an exponent proportional to k (n^(alpha k)).",
    "finite_sample_matches_anchor": "With 500 samples and weight decay, 99% test accuracy in about 832 steps "
                                    "(a public replication's number, not the paper's).",
}


@dg.asset(key=FINDINGS_KEY, group_name=GROUP, code_version="2", tags=stage("evaluation"),
          ins={"runs": dg.AssetIn("parity_runs"), "convergence": dg.AssetIn("parity_convergence"),
               "scaling": dg.AssetIn("parity_scaling"), "progress": dg.AssetIn("parity_hidden_progress"),
               "finite": dg.AssetIn("parity_finite_sample_runs")},
          check_specs=findings_check_specs(FINDINGS_KEY, _FINDING_CHECKS))
def parity_findings(runs: pd.DataFrame, convergence: pd.DataFrame, scaling: pd.DataFrame,
                    progress: pd.DataFrame, finite: pd.DataFrame):
    """The headline results next to their references, each judged by the rule stated in
    ``assets.parity.findings`` (abrupt transition, hidden progress, t_c ~ n^O(k) against the exponent ratio
    n^(alpha k) implies, finite sample against a public replication); each check reads one finding."""
    from assets.parity import analysis
    from assets.parity import findings as science

    headline = str(runs["sweep"].iloc[0])  # runs keep the config's order: the first sweep is the headline
    head = science.headline_runs(runs, headline)
    scale = _scale(head)
    summary = convergence[(convergence["sweep"] == headline) & (convergence["arch"] == "mlp")]
    k = int(head["k"].max())
    transition = science.transition_finding(head, summary, scale)
    mlp_progress = progress[(progress["measure"] == PROGRESS_MEASURE) & progress["run_key"].isin(head["run_key"])
                            & (progress["k"] == k)]
    rising = science.hidden_progress_finding(mlp_progress, scale, f"mlp, k={k}")
    found = [transition, rising]
    poly = progress[(progress["measure"] == PROGRESS_MEASURE) & (progress["arch"] == "polynet")]
    if len(poly):
        found.append(science.hidden_progress_finding(poly, _scale(runs[runs["arch"] == "polynet"]), "polynet"))
    fit = scaling[(scaling["arch"] == "mlp") & scaling["width"].isin(head["width"].unique())
                  & (scaling["loss"] == head["loss"].iloc[0]) & (scaling["init"] == head["init"].iloc[0])]
    exponents = science.scaling_findings(fit, scale)
    found += exponents
    poly_fit = scaling[scaling["arch"] == "polynet"]
    if len(poly_fit):
        found += science.scaling_findings(poly_fit, _scale(runs[runs["arch"] == "polynet"]), "polynet", per_k=False)
    finite_row = science.finite_sample_finding(analysis.finite_sample_summary(finite), _scale(finite))
    found.append(finite_row)
    # the headline architecture's ratio row, else its first exponent row
    scaling_row = next((f for f in exponents if f.metric.startswith("exponent ratio")), exponents[0])
    yield from findings_results(found, checks={
        "transition_is_abrupt": transition.metric, "progress_precedes_accuracy": rising.metric,
        "tc_exponent_grows_with_k": scaling_row.metric, "finite_sample_matches_anchor": finite_row.metric})


# ------------------------------------------------------------------------------------------ data checks
@dg.asset_check(asset="parity_runs", description="one row per run, t_c >= 1 exactly when converged, n >= k")
def parity_runs_valid(parity_runs: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    runs = parity_runs.assign(n_minus_k=parity_runs["n"] - parity_runs["k"],
                              consistent=parity_runs["converged"] == parity_runs["t_c"].notna())
    return gx_check(runs, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeUnique(column="run_key"),
        gxe.ExpectColumnValuesToBeBetween(column="t_c", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="n_minus_k", min_value=0),
        gxe.ExpectColumnValuesToBeInSet(column="consistent", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="arch", value_set=["mlp", "polynet"]),
        gxe.ExpectColumnValuesToBeBetween(column="final_eval_accuracy", min_value=0, max_value=1),
    ], name="parity_runs")


@dg.asset_check(asset="parity_curves", description="accuracies in [0, 1], losses >= 0, steps >= 0, no missing loss")
def parity_curves_valid(parity_curves: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    return gx_check(parity_curves, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="eval_loss"),
        gxe.ExpectColumnValuesToBeBetween(column="eval_loss", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="eval_accuracy", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="step", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="linf_change", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="relevant_weight_share", min_value=0, max_value=1),
    ], name="parity_curves")


@dg.asset_check(asset="parity_convergence", description="medians within [1, max steps], shares in [0, 1]")
def parity_convergence_valid(parity_convergence: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    return gx_check(parity_convergence, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="median_t_c", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="censored_share", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="median_transition_share", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="runs", min_value=1),
    ], name="parity_convergence")


@dg.asset_check(asset="parity_scaling", description="finite exponents, r^2 in [0, 1], at least 3 points per fit")
def parity_scaling_valid(parity_scaling: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    return gx_check(parity_scaling, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="exponent"),
        gxe.ExpectColumnValuesToBeBetween(column="r_squared", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="points", min_value=3),
    ], name="parity_scaling")


@dg.asset_check(asset="parity_finite_sample_runs", description="fixed training set, memorised step >= 1, t_c >= 1")
def parity_finite_sample_runs_valid(parity_finite_sample_runs: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    return gx_check(parity_finite_sample_runs, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="train_set_size"),
        gxe.ExpectColumnValuesToBeBetween(column="memorized_step", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="t_c", min_value=1),
    ], name="parity_finite_sample_runs")


defs = dg.Definitions(
    assets=[parity_training, parity_convergence, parity_scaling, parity_hidden_progress, parity_finite_sample,
            parity_findings],
    asset_checks=[parity_runs_valid, parity_curves_valid, parity_convergence_valid, parity_scaling_valid,
                  parity_finite_sample_runs_valid],
)
