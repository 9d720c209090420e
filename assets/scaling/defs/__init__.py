"""Dagster side of the data-constrained scaling study (Muennighoff et al. 2023).

``scaling_tokens`` encodes the code corpus (or any corpus, by config) once. One asset per grid cell,
``scaling_run_<size>_u<U>_e<E>``, trains a model with the LM family's trainer and logs it to MLflow; the
cells are independent steps in the ``gpu`` pool, so with its limit raised (several GPUs) or a multi-worker
executor they run in parallel. ``scaling_runs`` gathers them; ``scaling_law_fit`` fits the law in two stages
with bootstrap intervals; ``scaling_r2``, ``scaling_effective_data`` and ``scaling_allocation`` derive from
it; ``scaling_reference_fit`` refits the paper's own 182 C4 runs; ``scaling/findings`` sets the headline
numbers next to the paper's, with WARN checks.
"""

import tempfile
import time
from typing import Any, Literal

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from assets.lm.model import ModelSize
from assets.scaling.defs.checks import CHECKS
from assets.scaling.grid import GridCell, grid_cells
from assets.scaling.headline import CHECK_CLAIMS
from resources.compute import Compute
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import current_profile, pick
from resources.stages import stage
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "scaling"
FINDINGS_KEY = dg.AssetKey([GROUP, "findings"])
PAPER_UNIQUE_TOKENS = 25e9  # the paper's Figure 1 / allocation example: 25B unique tokens

# The grid, per profile: every (size, U_D, epochs), plus unique-data runs (epochs = 1) at the listed D.
_S = ModelSize
SIZES: list[ModelSize] = pick(
    tiny=[_S("xs", 16, 1, 2, 32, 32), _S("s", 32, 1, 2, 64, 32)],
    demo=[_S("s", 32, 1, 2, 64, 64), _S("m", 48, 2, 4, 96, 64)],
    gpu=[_S("8m", 256, 4, 4, 1024, 256), _S("20m", 384, 6, 6, 1536, 256), _S("42m", 512, 8, 8, 2048, 256),
         _S("76m", 640, 10, 10, 2560, 256)],
)
UNIQUE_BUDGETS: list[int] = pick(tiny=[1024], demo=[4096, 8192], gpu=[2**17, 2**19])
EPOCHS: list[int] = pick(tiny=[1, 2, 4], demo=[1, 2, 4, 8, 16], gpu=[1, 2, 4, 8, 16, 32])
UNIQUE_BASELINES: list[int] = pick(tiny=[2048, 4096], demo=[16384, 32768, 65536], gpu=[2**18, 2**20])
CELLS: list[GridCell] = grid_cells(SIZES, UNIQUE_BUDGETS, EPOCHS, UNIQUE_BASELINES)

# ------------------------------------------------------------------------------------------------- corpus
class ScalingTokensConfig(dg.Config):
    """How the corpus becomes token pools. By default the code corpus; ``corpus_path`` reads any local corpus
    (a .txt, .jsonl or .parquet file, or a folder of .txt files) and encodes it with the code tokenizer
    (byte-level BPE: lossless on any text)."""

    chunk_tokens: int = Field(default=pick(tiny=128, demo=512, gpu=4096),
                              description="unique pools are drawn from the corpus in chunks of this many tokens")
    seed: int = 0
    corpus_path: str | None = Field(default=None, description="a local corpus to use instead of the code corpus")
    text_column: str = "text"
    validation_fraction: float = 0.1


@dg.asset(group_name=GROUP, code_version="1", tags=stage("data"), ins={"documents": dg.AssetIn("code_corpus"),
                                                    "tokenizer_record": dg.AssetIn("code_tokenizer")})
def scaling_tokens(context: dg.AssetExecutionContext, config: ScalingTokensConfig, tracking: Tracking,
                   documents: pd.DataFrame, tokenizer_record: dict) -> pd.DataFrame:
    """The corpus encoded once: train chunks in a seeded draw order (unique pools are prefixes of it) and the
    held-out validation stream that no grid run trains on."""
    from assets.corpora.tokenization import encode_documents, load_tokenizer
    from assets.scaling.grid import token_chunks

    source = "code_corpus"
    if config.corpus_path:
        from assets.corpora.user_corpus import read_user_corpus

        documents = read_user_corpus(config.corpus_path, config.text_column, None, config.validation_fraction,
                                     config.seed)
        source = config.corpus_path
    tokenizer = load_tokenizer(tracking.download_model(tokenizer_record["tokenizer_uri"]))
    train = encode_documents(tokenizer, documents.loc[documents["split"] == "train", "text"].tolist())
    val = encode_documents(tokenizer, documents.loc[documents["split"] == "validation", "text"].tolist())
    chunks = token_chunks(train, val, config.chunk_tokens, config.seed).assign(source=source)
    context.add_output_metadata({"source": source, "train_tokens": len(train), "validation_tokens": len(val),
                                 "chunks": int((chunks["split"] == "train").sum()),
                                 "largest_unique_budget": max(c.unique_tokens for c in CELLS)})
    return chunks


# -------------------------------------------------------------------------------------------------- grid
class ScalingRunConfig(dg.Config):
    """Optimisation of one grid run (the cell fixes the model size, U_D and epochs)."""

    batch_size: int = pick(tiny=4, demo=8, gpu=32)
    learning_rate: float = pick(tiny=3e-3, demo=3e-3, gpu=1e-3)
    min_lr_ratio: float = 0.1
    warmup_fraction: float = 0.05
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_windows: int = Field(default=pick(tiny=32, demo=128, gpu=512), description="held-out windows scored")
    evaluations: int = Field(default=pick(tiny=1, demo=1, gpu=4), description="held-out evaluations per run")
    seed: int = 0
    compile: bool = Field(default=False, description="torch.compile each run (off: short runs would mostly compile)")
    sampling: str = Field(default="epochs", description="'epochs': each window once per epoch, as the paper's "
                          "repeated data; 'random': windows drawn with replacement (Poisson(e) repeats)")
    register_model: bool = Field(default=True, description="log the checkpoint and register it in MLflow")


def _progress(context, name: str, steps: int, start: float):
    every = max(1, steps // 10)

    def on_log(row: dict) -> None:
        step = int(row["step"])
        if step % every and step != steps:
            return
        elapsed = time.time() - start
        context.log.info(f"{name} step {step}/{steps} train_loss {row['train_loss']:.3f}, "
                         f"ETA {elapsed / max(step, 1) * (steps - step):.0f}s")

    return on_log


def grid_run_asset(cell: GridCell) -> dg.AssetsDefinition:
    """The asset of one grid cell: train, score held-out data, log to MLflow, return the run's record."""

    @dg.asset(name=cell.name, group_name=GROUP, code_version="1", pool="gpu", tags=stage("training"),
              ins={"chunks": dg.AssetIn("scaling_tokens"), "tokenizer_record": dg.AssetIn("code_tokenizer")},
              description=f"Grid run: model {cell.size.name} trained {cell.epochs} epoch(s) over "
                          f"{cell.unique_tokens:,} unique tokens (D = {cell.tokens:,}); its held-out loss and MLflow run.")
    def _run(context: dg.AssetExecutionContext, config: ScalingRunConfig, tracking: Tracking, compute: Compute,
             chunks: pd.DataFrame, tokenizer_record: dict) -> dict:
        import dataclasses

        from assets.corpora.tokenization import load_tokenizer
        from assets.scaling.grid import RunSettings, steps_for, train_cell

        compute.seed_everything(config.seed)
        settings = RunSettings(**{k: v for k, v in config.model_dump().items() if k != "register_model"},
                               device=compute.torch_device(), bf16=compute.use_bf16())
        tokenizer = load_tokenizer(tracking.download_model(tokenizer_record["tokenizer_uri"]))
        source = str(chunks["source"].iloc[0])
        params = {"cell": cell.name, "size": cell.size.name, **dataclasses.asdict(cell.size),
                  "unique_tokens": cell.unique_tokens, "epochs": cell.epochs, "corpus": source,
                  **dataclasses.asdict(settings), "tokenizer_uri": tokenizer_record["tokenizer_uri"]}
        hardware = compute.hardware()
        with tracking.start_run(cell.name, dagster_run_id=context.run.run_id, asset_key=cell.name,
                                params=params, tags={"study": GROUP}) as run_id, \
                tempfile.TemporaryDirectory() as tmp:
            result = train_cell(cell, chunks, tokenizer, settings,
                                checkpoint_dir=tmp + "/model" if config.register_model else None,
                                on_log=_progress(context, cell.name, steps_for(cell, settings), time.time()))
            tracking.log_metric_history(run_id, result.curve.to_dict("records"))
            tracking.log_metrics(run_id, {"held_out_loss": result.held_out_loss, "parameters": result.parameters,
                                          "tokens": result.tokens, "epochs": result.epochs})
            model = {"model_uri": None, "mlflow_link": tracking.run_link(run_id)}
            if config.register_model:
                registered = f"scaling-{cell.size.name}-u{cell.unique_tokens}-e{cell.epochs}"
                model = tracking.log_model(run_id, result.checkpoint_dir, registered)
        record = {**result.record(), "sampling": settings.sampling, "mlflow_run_id": run_id, "model_uri": model["model_uri"],
                  "mlflow_link": model["mlflow_link"], "corpus": source, "hardware": hardware}
        context.add_output_metadata({"held_out_loss": result.held_out_loss, "parameters": result.parameters,
                                     "tokens": result.tokens, "epochs": result.epochs,
                                     "seconds": round(result.seconds, 1),
                                     "mlflow": dg.MetadataValue.url(model["mlflow_link"])})
        return record

    return _run


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"), ins={c.name: dg.AssetIn(c.name) for c in CELLS})
def scaling_runs(context: dg.AssetExecutionContext, warehouse: WarehousePaths, **records: Any) -> pd.DataFrame:
    """The grid's runs: N, D, U_D, epochs, final held-out loss and the MLflow run of each (one row per run)."""
    from assets.scaling.plots import loss_vs_epochs_figure

    columns = ["run", "size", "parameters", "non_embedding_parameters", "unique_tokens", "epochs",
               "nominal_epochs", "tokens", "steps", "held_out_loss", "final_train_loss", "train_seconds",
               "mlflow_run_id", "model_uri", "corpus", "sampling"]
    # records written before the sampling option existed drew windows with replacement
    table = pd.DataFrame([{k: records[c.name].get(k, "random") if k == "sampling" else records[c.name][k] for k in columns}
                          for c in CELLS], columns=columns)
    table = table.sort_values(["parameters", "unique_tokens", "epochs"], ignore_index=True)
    fig = loss_vs_epochs_figure(table, None, "measured held-out loss (hollow: unique data at the same D)")
    context.add_output_metadata({"runs": markdown_table(table.drop(columns=["mlflow_run_id", "model_uri"]), 40),
                                 "plot": figure_metadata(fig, "scaling/runs", warehouse.root, context.run.run_id)})
    return table


# ------------------------------------------------------------------------------------------------------ fit
class ScalingFitConfig(dg.Config):
    """The two-stage fit: Chinchilla form on single-epoch runs, then R_D*, R_N* on all runs."""

    tie_exponents: bool = Field(default=True, description="alpha = beta, as the paper's C4 constants")
    chinchilla_max_epochs: float = Field(default=1.0, description="stage 1 uses runs with at most this many epochs")
    parameter_count: Literal["parameters", "non_embedding_parameters"] = "parameters"
    chinchilla_grid: Literal["paper", "coarse"] = Field(
        default=pick(tiny="coarse", demo="paper", gpu="paper"),
        description="stage 1 starts: the notebook's grid (400 tied / 1600 untied) or a coarse one over the same ranges")
    n_bootstrap: int = pick(tiny=8, demo=40, gpu=500)
    seed: int = 0


def _runs(table: pd.DataFrame, parameter_count: str = "parameters"):
    from assets.scaling.fitting import Runs

    return Runs.from_frame(table, parameters=parameter_count, loss="held_out_loss")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def scaling_law_fit(context: dg.AssetExecutionContext, config: ScalingFitConfig, warehouse: WarehousePaths,
                    scaling_runs: pd.DataFrame) -> pd.DataFrame:
    """Fitted constants of the data-constrained law (a, b, e, α, β, A, B, E, R_D*, R_N*) with bootstrap
    percentile intervals, next to the paper's; the plot shows the fitted curves over the measured losses."""
    from assets.scaling import fitting
    from assets.scaling.law import PAPER_C4
    from assets.scaling.plots import loss_vs_epochs_figure

    runs = _runs(scaling_runs, config.parameter_count)
    grids = {("paper", True): fitting.PAPER_CHINCHILLA_GRID_TIED, ("paper", False): fitting.PAPER_CHINCHILLA_GRID,
             ("coarse", True): fitting.COARSE_CHINCHILLA_GRID_TIED, ("coarse", False): fitting.COARSE_CHINCHILLA_GRID}
    started = time.time()
    full = fitting.fit_law(runs, tie=config.tie_exponents, chinchilla_max_epochs=config.chinchilla_max_epochs,
                           chinchilla_starts=grids[(config.chinchilla_grid, config.tie_exponents)])
    context.log.info(f"fit in {time.time() - started:.1f}s: R_D* = {full.law.rd_star:.4g}, R_N* = {full.law.rn_star:.4g}")
    boot = fitting.bootstrap_law(runs, full, n_resamples=config.n_bootstrap, seed=config.seed,
                                 tie=config.tie_exponents, chinchilla_max_epochs=config.chinchilla_max_epochs)
    context.log.info(f"bootstrap: {len(boot)}/{config.n_bootstrap} resamples refitted in {time.time() - started:.1f}s")
    table = fitting.constants_table(full, boot, PAPER_C4)
    table["objective"] = np.where(table["stage"] == "decay", full.decay.objective, full.chinchilla.objective)
    table["n_runs"] = np.where(table["stage"] == "decay", len(runs), len(full.stage1_index))
    table["parameter_count"] = config.parameter_count  # which N the constants are for (downstream reads it)
    plot_table = scaling_runs.assign(parameters=scaling_runs[config.parameter_count])
    fig = loss_vs_epochs_figure(plot_table, full.law, f"fitted law: R_D* = {full.law.rd_star:.3g}, "
                                                      f"R_N* = {full.law.rn_star:.3g} (dotted: all-unique data)")
    context.add_output_metadata({
        "constants": markdown_table(table), "rd_star": float(full.law.rd_star), "rn_star": float(full.law.rn_star),
        "stage1_starts": full.chinchilla.n_starts, "stage1_runs": len(full.stage1_index),
        "bootstrap_resamples": len(boot),
        "plot": figure_metadata(fig, "scaling/law_fit", warehouse.root, context.run.run_id)})
    return table


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def scaling_reference_fit(context: dg.AssetExecutionContext, warehouse: WarehousePaths) -> pd.DataFrame:
    """The paper's 182 C4 runs refitted: R_D*, R_N* with the paper's Chinchilla constants frozen, from the
    notebook's grid of starts and from a wider grid (a second, shallower-looking basin)."""
    from assets.scaling.fitting import Runs, objective_value
    from assets.scaling.law import PAPER_C4
    from assets.scaling.plots import reference_fit_figure
    from assets.scaling.reference import reference_runs, refit_reference, wide_decay_starts

    runs_df = reference_runs()
    runs = Runs.from_frame(runs_df)
    paper_objective = objective_value(PAPER_C4, runs)
    rows = []
    for starts_name, starts in (("notebook grid", None), ("wide grid", wide_decay_starts())):
        fit = refit_reference(runs_df, PAPER_C4, starts)
        rows.append({"starts": starts_name, "n_starts": fit.n_starts, "rd_star": fit.law.rd_star,
                     "rn_star": fit.law.rn_star, "huber": fit.objective, "paper_rd_star": PAPER_C4.rd_star,
                     "paper_rn_star": PAPER_C4.rn_star, "paper_huber": paper_objective, "n_runs": len(runs)})
    table = pd.DataFrame(rows)
    best = table.loc[0]
    fig = reference_fit_figure(runs_df, {"Chinchilla (D = tokens)": PAPER_C4.chinchilla(),
                                         f"refit: R_D* = {best.rd_star:.3g}, R_N* = {best.rn_star:.3g}":
                                             PAPER_C4.with_decay(best.rd_star, best.rn_star)})
    context.add_output_metadata({"refit": markdown_table(table),
                                 "plot": figure_metadata(fig, "scaling/reference_fit", warehouse.root, context.run.run_id)})
    return table


# --------------------------------------------------------------------------------------------- derived tables
@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def scaling_r2(context: dg.AssetExecutionContext, scaling_runs: pd.DataFrame, scaling_law_fit: pd.DataFrame) -> pd.DataFrame:
    """R² (on loss) and Huber objective of the plain Chinchilla form vs the data-constrained forms, on our
    grid and on the paper's 182 C4 runs (with the paper's constants)."""
    from assets.scaling.fitting import Runs, compare_forms, law_from_constants
    from assets.scaling.law import PAPER_C4
    from assets.scaling.reference import reference_runs

    law = law_from_constants(scaling_law_fit)
    ours = compare_forms(_runs(scaling_runs, str(scaling_law_fit["parameter_count"].iloc[0])), law.chinchilla(),
                         law).assign(dataset="ours")
    paper = compare_forms(Runs.from_frame(reference_runs()), PAPER_C4.chinchilla(), PAPER_C4).assign(dataset="paper C4 runs")
    table = pd.concat([ours, paper], ignore_index=True)[["dataset", "form", "decay_constants", "rd_star",
                                                          "rn_star", "r2", "huber", "n_runs"]]
    context.add_output_metadata({"r2": markdown_table(table)})
    return table


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def scaling_effective_data(context: dg.AssetExecutionContext, warehouse: WarehousePaths,
                           scaling_law_fit: pd.DataFrame) -> pd.DataFrame:
    """Effective data D'/U_D vs epochs, ours and the paper's: what each further epoch over U_D is worth."""
    from assets.scaling.allocation import effective_data_table
    from assets.scaling.fitting import law_from_constants
    from assets.scaling.law import PAPER_C4
    from assets.scaling.plots import effective_data_figure

    law = law_from_constants(scaling_law_fit)
    table = effective_data_table({"ours": law.rd_star, "paper": PAPER_C4.rd_star})
    fig = effective_data_figure(table)
    context.add_output_metadata({"effective_data": markdown_table(table, 40),
                                 "plot": figure_metadata(fig, "scaling/effective_data", warehouse.root, context.run.run_id)})
    return table


class ScalingAllocationConfig(dg.Config):
    """Budgets for the compute-optimal allocation (C = 6ND) with unique data capped at U_D."""

    unique_tokens: float | None = Field(default=None, description="our U_D cap (default: the grid's largest repeated budget)")
    budgets: list[float] | None = Field(default=None, description="our budgets in FLOPs (default: the grid's span, x10)")
    paper_unique_tokens: float = PAPER_UNIQUE_TOKENS
    paper_budgets: list[float] = Field(default=[float(c) for c in np.logspace(20, 24, 9)])


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def scaling_allocation(context: dg.AssetExecutionContext, config: ScalingAllocationConfig, warehouse: WarehousePaths,
                       scaling_runs: pd.DataFrame, scaling_law_fit: pd.DataFrame) -> pd.DataFrame:
    """Compute-optimal parameters, tokens and epochs over budgets with U_D given: ours (our law, our U_D)
    and the paper's (its constants, 25B unique tokens), next to Chinchilla's unconstrained optimum."""
    from assets.scaling.allocation import allocation_table
    from assets.scaling.fitting import law_from_constants
    from assets.scaling.law import PAPER_C4
    from assets.scaling.plots import allocation_figure

    law = law_from_constants(scaling_law_fit)
    repeated = scaling_runs[scaling_runs["nominal_epochs"] > 1]
    cap = config.unique_tokens or float((repeated if len(repeated) else scaling_runs)["unique_tokens"].max())
    flops = 6.0 * scaling_runs[str(scaling_law_fit["parameter_count"].iloc[0])] * scaling_runs["tokens"]
    budgets = config.budgets or [float(c) for c in np.geomspace(flops.min(), flops.max() * 10, 8)]
    table = pd.concat([allocation_table(budgets, cap, law, "ours"),
                       allocation_table(config.paper_budgets, config.paper_unique_tokens, PAPER_C4, "paper")],
                      ignore_index=True)
    fig = allocation_figure(table)
    context.add_output_metadata({"allocation": markdown_table(table),
                                 "plot": figure_metadata(fig, "scaling/allocation", warehouse.root, context.run.run_id)})
    return table


# --------------------------------------------------------------------------------------------------- findings
@dg.asset(key_prefix=[GROUP], name="findings", group_name=GROUP, code_version="2", tags=stage("evaluation"),
          check_specs=findings_check_specs(FINDINGS_KEY, CHECK_CLAIMS))
def scaling_findings(context: dg.AssetExecutionContext, scaling_runs: pd.DataFrame, scaling_law_fit: pd.DataFrame,
                     scaling_reference_fit: pd.DataFrame):
    """The study's headline results next to the paper's: the worth of repeated data up to 4 epochs, fading
    returns by 16, and R_D* (ours at small scale; the paper's runs refitted, a check of our fitter)."""
    from assets.scaling.headline import CHECKS, headline

    n = scaling_runs["parameters"]
    scale = (f"{current_profile()} profile: N {n.min():,.0f}-{n.max():,.0f} params, U_D "
             f"{scaling_runs['unique_tokens'].min():,.0f}-{scaling_runs['unique_tokens'].max():,.0f} tokens, "
             f"{scaling_runs['epochs'].min():.3g}-{scaling_runs['epochs'].max():.3g} epochs, "
             f"corpus {scaling_runs['corpus'].iloc[0]}, "
             + ("epochs are exact passes over fixed windows" if set(scaling_runs.get("sampling", ["random"])) == {"epochs"}
                else "windows drawn with replacement (Poisson repeats)"))
    yield from findings_results(headline(scaling_runs, scaling_law_fit, scaling_reference_fit, scale), CHECKS)


# ----------------------------------------------------------------------------------------------- data checks
@dg.asset_check(asset=scaling_runs, description="one row per grid cell; finite positive losses; D = U_D x epochs")
def scaling_runs_valid(scaling_runs: pd.DataFrame) -> dg.AssetCheckResult:
    gxe = expectations()
    runs = scaling_runs.assign(d_over_ud_epochs=scaling_runs["tokens"] / (scaling_runs["unique_tokens"] * scaling_runs["epochs"]))
    return gx_check(runs, [
        gxe.ExpectTableRowCountToEqual(value=len(CELLS)),
        gxe.ExpectColumnValuesToBeUnique(column="run"),
        gxe.ExpectColumnValuesToBeUnique(column="mlflow_run_id"),
        gxe.ExpectColumnValuesToNotBeNull(column="held_out_loss"),
        gxe.ExpectColumnValuesToBeBetween(column="held_out_loss", min_value=0, max_value=50),
        gxe.ExpectColumnValuesToBeBetween(column="parameters", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="epochs", min_value=0.5),
        gxe.ExpectColumnValuesToBeBetween(column="d_over_ud_epochs", min_value=0.999, max_value=1.001),
    ], name="scaling_runs")


defs = dg.Definitions(
    assets=[scaling_tokens, *[grid_run_asset(c) for c in CELLS], scaling_runs, scaling_law_fit, scaling_reference_fit,
            scaling_r2, scaling_effective_data, scaling_allocation, scaling_findings],
    asset_checks=[*CHECKS, scaling_runs_valid],
)
