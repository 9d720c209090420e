"""Dagster side of the data-constrained scaling study (Muennighoff et al. 2023).

``scaling_tokens`` encodes the code corpus (or any corpus, by config) once. One asset per grid cell,
``scaling_run_<size>_u<U>_e<E>``, trains a model with the LM family's trainer and logs it to MLflow; the
cells are independent steps in the ``gpu`` pool, so with its limit raised (several GPUs) or a multi-worker
executor they run in parallel. ``scaling_runs`` gathers them; ``scaling_law_fit`` fits the law in two stages
with bootstrap intervals; ``scaling_r2``, ``scaling_effective_data`` and ``scaling_allocation`` derive from
it; ``scaling_reference_fit`` refits the paper's own 182 C4 runs; ``scaling/findings`` sets the headline
numbers next to the paper's, with WARN checks.
"""

from functools import partial
from typing import Any, Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.lm.registration import Display, load_tokenizer_of, train_and_register
from assets.scaling import validity
from assets.scaling.grid import GRIDS, GridCell, grid_cells
from assets.scaling.headline import CHECK_CLAIMS
from assets.scaling.study import PAPER_UNIQUE_TOKENS
from assets.scaling.tables import PAPER_BUDGETS, cell_description
from resources.compute import Compute
from resources.config import StudyConfig
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import current_profile, pick
from resources.stages import stage
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "scaling"
FINDINGS_KEY = dg.AssetKey([GROUP, "findings"])
CELLS: list[GridCell] = grid_cells(**pick(**GRIDS))  # this profile's grid (assets.scaling.grid.GRIDS)


# ------------------------------------------------------------------------------------------------- corpus
class ScalingTokensConfig(StudyConfig):
    """How the corpus becomes token pools. By default the code corpus; ``corpus_path`` reads any local corpus
    (a .txt, .jsonl or .parquet file, or a folder of .txt files) and encodes it with the code tokenizer
    (byte-level BPE: lossless on any text). The code corpus stays an input in the graph (and in the rows'
    ``upstream``) but is then not read: the rows' ``source`` and every run's ``corpus`` name the file read, by
    absolute path and content hash."""

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
    from assets.scaling.grid import token_chunks
    from assets.scaling.tables import encoded_splits, study_corpus

    documents, source = study_corpus(documents, config.corpus_path, config.text_column,
                                     config.validation_fraction, config.seed)
    train, val = encoded_splits(load_tokenizer_of(tokenizer_record, tracking), documents)
    chunks = token_chunks(train, val, config.chunk_tokens, config.seed).assign(source=source)
    context.add_output_metadata({"source": source, "train_tokens": len(train), "validation_tokens": len(val),
                                 "chunks": int((chunks["split"] == "train").sum()),
                                 "largest_unique_budget": max(c.unique_tokens for c in CELLS)})
    return chunks


# -------------------------------------------------------------------------------------------------- grid
class ScalingRunConfig(StudyConfig):
    """Optimisation of one grid run (the cell fixes the model size, U_D and epochs)."""

    batch_size: int = pick(tiny=4, demo=8, gpu=32)
    learning_rate: float = pick(tiny=3e-3, demo=3e-3, gpu=1e-3)
    min_lr_ratio: float = Field(default=0.1, description="the cosine schedule decays to learning_rate x this")
    warmup_fraction: float = Field(default=0.05, description="share of a run's steps in linear warmup")
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_windows: int = Field(default=pick(tiny=32, demo=128, gpu=512), description="held-out windows scored")
    evaluations: int = Field(default=pick(tiny=1, demo=1, gpu=4), description="held-out evaluations per run")
    seed: int = 0
    compile: bool = Field(default=False, description="torch.compile each run (off: short runs would mostly compile)")
    sampling: str = Field(default="epochs", description="'epochs': each window once per epoch, as the paper's "
                          "repeated data; 'random': windows drawn with replacement (Poisson(e) repeats)")
    register_model: bool = Field(default=True, description="log the checkpoint and register it in MLflow")


def grid_run_asset(cell: GridCell) -> dg.AssetsDefinition:
    """The asset of one grid cell: train, score held-out data, log to MLflow, return the run's record."""

    @dg.asset(name=cell.name, group_name=GROUP, code_version="1", pool="gpu", tags=stage("training"),
              ins={"chunks": dg.AssetIn("scaling_tokens"), "tokenizer_record": dg.AssetIn("code_tokenizer")},
              description=cell_description(cell))
    def _run(context: dg.AssetExecutionContext, config: ScalingRunConfig, tracking: Tracking, compute: Compute,
             warehouse: WarehousePaths, chunks: pd.DataFrame, tokenizer_record: dict) -> dict:
        from assets.scaling.grid import RunSettings, cell_datasets, steps_for, train_cell
        from assets.scaling.tables import registered_name, run_params

        compute.seed_everything(config.seed)
        settings = RunSettings(**{k: v for k, v in config.model_dump().items() if k != "register_model"},
                               device=compute.torch_device(), bf16=compute.use_bf16())
        tokenizer = load_tokenizer_of(tokenizer_record, tracking)
        source = str(chunks["source"].iloc[0])
        params = run_params(cell, settings, source, tokenizer_record["tokenizer_uri"])
        registered = registered_name(cell) if config.register_model else None
        _, record, metadata = train_and_register(
            context, tracking, compute, lambda workdir, on_log: train_cell(
                cell, chunks, tokenizer, settings, checkpoint_dir=workdir / "model" if registered else None,
                on_log=on_log),
            run_name=cell.name, params=params, tags={"study": GROUP}, steps=steps_for(cell, settings),
            registered=registered, datasets=cell_datasets(cell, chunks),
            plot_name=f"scaling/{cell.name}", display=Display(dg.MetadataValue.url, partial(
                figure_metadata, warehouse_root=warehouse.root, run_id=context.run.run_id)))
        context.add_output_metadata(metadata)
        return {**record, "sampling": settings.sampling, "corpus": source}

    return _run


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"), ins={c.name: dg.AssetIn(c.name) for c in CELLS})
def scaling_runs(context: dg.AssetExecutionContext, warehouse: WarehousePaths, **records: Any) -> pd.DataFrame:
    """The grid's runs: N, D, U_D, epochs, final held-out loss and the MLflow run of each (one row per run)."""
    from assets.scaling.plots import loss_vs_epochs_figure
    from assets.scaling.study import runs_table

    table = runs_table([records[c.name] for c in CELLS])
    fig = loss_vs_epochs_figure(table, None, "measured held-out loss (hollow: unique data at the same D)")
    context.add_output_metadata({"runs": markdown_table(table.drop(columns=["mlflow_run_id", "model_uri"]), 40),
                                 "plot": figure_metadata(fig, "scaling/runs", warehouse.root, context.run.run_id)})
    return table


# ------------------------------------------------------------------------------------------------------ fit
class ScalingFitConfig(StudyConfig):
    """The two-stage fit: Chinchilla form on single-epoch runs, then R_D*, R_N* on all runs."""

    tie_exponents: bool = Field(default=True, description="alpha = beta, as the paper's C4 constants")
    chinchilla_max_epochs: float = Field(default=1.0, description="stage 1 uses runs with at most this many epochs")
    parameter_count: Literal["parameters", "non_embedding_parameters"] = Field(
        default="parameters", description="which count is the law's N (and N in C = 6ND)")
    chinchilla_grid: Literal["paper", "coarse"] = Field(
        default=pick(tiny="coarse", demo="paper", gpu="paper"),
        description="stage 1 starts: the notebook's grid (400 tied / 1600 untied) or a coarse one over the same ranges")
    n_bootstrap: int = Field(default=pick(tiny=8, demo=40, gpu=500),
                             description="bootstrap resamples of the runs, each refitted in both stages")
    seed: int = 0


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def scaling_law_fit(context: dg.AssetExecutionContext, config: ScalingFitConfig, warehouse: WarehousePaths,
                    scaling_runs: pd.DataFrame) -> pd.DataFrame:
    """Fitted constants of the data-constrained law (a, b, e, α, β, A, B, E, R_D*, R_N*) with bootstrap
    percentile intervals, next to the paper's; the plot shows the fitted curves over the measured losses."""
    from assets.scaling.study import law_fit
    from assets.scaling.tables import law_fit_figure, law_fit_numbers

    table, full, resamples = law_fit(
        scaling_runs, tie=config.tie_exponents, chinchilla_max_epochs=config.chinchilla_max_epochs,
        chinchilla_grid=config.chinchilla_grid, parameter_count=config.parameter_count,
        n_bootstrap=config.n_bootstrap, seed=config.seed, log=context.log.info)
    fig = law_fit_figure(scaling_runs, full, config.parameter_count)
    context.add_output_metadata({"constants": markdown_table(table), **law_fit_numbers(full, resamples),
                                 "plot": figure_metadata(fig, "scaling/law_fit", warehouse.root,
                                                         context.run.run_id)})
    return table


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def scaling_reference_fit(context: dg.AssetExecutionContext, warehouse: WarehousePaths) -> pd.DataFrame:
    """The paper's 182 C4 runs refitted: R_D*, R_N* with the paper's Chinchilla constants frozen, from the
    notebook's grid of starts and from a wider grid (a second, shallower-looking basin)."""
    from assets.scaling.plots import refit_figure
    from assets.scaling.study import reference_fit

    table, runs = reference_fit()
    context.add_output_metadata({"refit": markdown_table(table), "plot": figure_metadata(
        refit_figure(runs, table.loc[0]), "scaling/reference_fit", warehouse.root, context.run.run_id)})
    return table


# --------------------------------------------------------------------------------------------- derived tables
@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def scaling_r2(context: dg.AssetExecutionContext, scaling_runs: pd.DataFrame, scaling_law_fit: pd.DataFrame) -> pd.DataFrame:
    """R² (on loss) and Huber objective of the plain Chinchilla form vs the data-constrained forms, on our
    grid and on the paper's 182 C4 runs (with the paper's constants)."""
    from assets.scaling.study import r2_table

    table = r2_table(scaling_runs, scaling_law_fit)
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

    table = effective_data_table({"ours": law_from_constants(scaling_law_fit).rd_star, "paper": PAPER_C4.rd_star})
    context.add_output_metadata({"effective_data": markdown_table(table, 40), "plot": figure_metadata(
        effective_data_figure(table), "scaling/effective_data", warehouse.root, context.run.run_id)})
    return table


class ScalingAllocationConfig(StudyConfig):
    """Budgets for the compute-optimal allocation (C = 6ND) with unique data capped at U_D."""

    unique_tokens: float | None = Field(default=None, description="our U_D cap (default: the grid's largest repeated budget)")
    budgets: list[float] | None = Field(default=None, description="our budgets in FLOPs (default: the grid's span, x10)")
    paper_unique_tokens: float = Field(default=PAPER_UNIQUE_TOKENS,
                                      description="U_D of the paper's allocation (its 25B unique tokens example)")
    paper_budgets: list[float] = Field(default=PAPER_BUDGETS,
                                       description="budgets in FLOPs for the paper's allocation (its C4 law)")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"))
def scaling_allocation(context: dg.AssetExecutionContext, config: ScalingAllocationConfig, warehouse: WarehousePaths,
                       scaling_runs: pd.DataFrame, scaling_law_fit: pd.DataFrame) -> pd.DataFrame:
    """Compute-optimal parameters, tokens and epochs over budgets with U_D given: ours (our law, our U_D)
    and the paper's (its constants, 25B unique tokens), next to Chinchilla's unconstrained optimum."""
    from assets.scaling.plots import allocation_figure
    from assets.scaling.study import allocation

    table = allocation(scaling_runs, scaling_law_fit, config.unique_tokens, config.budgets,
                       config.paper_unique_tokens, config.paper_budgets)
    context.add_output_metadata({"allocation": markdown_table(table), "plot": figure_metadata(
        allocation_figure(table), "scaling/allocation", warehouse.root, context.run.run_id)})
    return table


# --------------------------------------------------------------------------------------------------- findings
@dg.asset(key_prefix=[GROUP], name="findings", group_name=GROUP, code_version="2", tags=stage("evaluation"),
          check_specs=findings_check_specs(FINDINGS_KEY, CHECK_CLAIMS))
def scaling_findings(context: dg.AssetExecutionContext, scaling_runs: pd.DataFrame, scaling_law_fit: pd.DataFrame,
                     scaling_reference_fit: pd.DataFrame):
    """The study's headline results next to the paper's: the worth of repeated data up to 4 epochs, fading
    returns by 16, and R_D* (ours at small scale; the paper's runs refitted, a check of our fitter)."""
    from assets.scaling.headline import CHECKS, headline
    from assets.scaling.study import scale_description

    scale = scale_description(scaling_runs, current_profile())
    yield from findings_results(headline(scaling_runs, scaling_law_fit, scaling_reference_fit, scale), CHECKS)


# ----------------------------------------------------------------------------------------------- data checks
@dg.asset_check(asset=scaling_runs, description="one row per grid cell; finite positive losses; D = U_D x epochs")
def scaling_runs_valid(scaling_runs: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(*validity.runs(expectations(), scaling_runs, len(CELLS)), name="scaling_runs")


@dg.asset_check(asset="scaling_tokens", description="train chunks of equal size, a validation row, ids >= 0")
def scaling_tokens_valid(scaling_tokens: pd.DataFrame) -> dg.AssetCheckResult:
    result = gx_check(*validity.tokens(expectations(), scaling_tokens), name="scaling_tokens")
    train_sizes = validity.train_chunk_sizes(scaling_tokens)
    return dg.AssetCheckResult(passed=bool(result.passed and train_sizes == 1),
                               metadata={**result.metadata, "train_chunk_sizes": train_sizes})


@dg.asset_check(asset="scaling_law_fit", description="every constant finite; R_D*, R_N* positive; intervals ordered")
def scaling_law_fit_valid(scaling_law_fit: pd.DataFrame) -> dg.AssetCheckResult:
    result = gx_check(*validity.law_fit(expectations(), scaling_law_fit), name="scaling_law_fit")
    return dg.AssetCheckResult(passed=result.passed and validity.law_constants_ordered(scaling_law_fit),
                               metadata=result.metadata)


@dg.asset_check(asset="scaling_r2", description="R² at most 1; Huber objectives non-negative; four forms per dataset")
def scaling_r2_valid(scaling_r2: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(*validity.r2(expectations(), scaling_r2), name="scaling_r2")


@dg.asset_check(asset="scaling_effective_data", description="1 <= D'/U_D <= epochs and below the limit 1 + R_D*")
def scaling_effective_data_valid(scaling_effective_data: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(*validity.effective_data(expectations(), scaling_effective_data),
                    name="scaling_effective_data")


@dg.asset_check(asset="scaling_allocation", description="positive N, D; C = 6ND; no worse than Chinchilla's split under the cap")
def scaling_allocation_valid(scaling_allocation: pd.DataFrame) -> dg.AssetCheckResult:
    return gx_check(*validity.allocation(expectations(), scaling_allocation), name="scaling_allocation")


defs = dg.Definitions(
    assets=[scaling_tokens, *[grid_run_asset(c) for c in CELLS], scaling_runs, scaling_law_fit, scaling_reference_fit,
            scaling_r2, scaling_effective_data, scaling_allocation, scaling_findings],
    asset_checks=[scaling_runs_valid, scaling_tokens_valid, scaling_law_fit_valid, scaling_r2_valid,
                  scaling_effective_data_valid, scaling_allocation_valid],
)
