"""The study's tables, one function per asset of the Dagster side: the grid's runs, the two-stage law fit with
bootstrap intervals, the paper's runs refitted, the forms compared by R², and the compute-optimal allocation."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from assets.scaling import fitting
from assets.scaling.law import PAPER_C4

PAPER_UNIQUE_TOKENS = 25e9  # the paper's Figure 1 / allocation example: 25B unique tokens
RUN_COLUMNS = ["run", "size", "parameters", "non_embedding_parameters", "unique_tokens", "epochs", "nominal_epochs",
               "tokens", "steps", "held_out_loss", "final_train_loss", "train_seconds", "mlflow_run_id", "model_uri",
               "corpus", "sampling"]
CHINCHILLA_STARTS = {  # (config's chinchilla_grid, tied exponents) -> stage-1 starts
    ("paper", True): fitting.PAPER_CHINCHILLA_GRID_TIED, ("paper", False): fitting.PAPER_CHINCHILLA_GRID,
    ("coarse", True): fitting.COARSE_CHINCHILLA_GRID_TIED, ("coarse", False): fitting.COARSE_CHINCHILLA_GRID}


def runs_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per grid run (its record), ordered by N, U_D and epochs."""
    # records written before the sampling option existed drew windows with replacement
    table = pd.DataFrame([{k: r.get(k, "random") if k == "sampling" else r[k] for k in RUN_COLUMNS} for r in records],
                         columns=RUN_COLUMNS)
    return table.sort_values(["parameters", "unique_tokens", "epochs"], ignore_index=True)


def runs_of(table: pd.DataFrame, parameter_count: str = "parameters") -> fitting.Runs:
    return fitting.Runs.from_frame(table, parameters=parameter_count, loss="held_out_loss")


def law_fit(runs_frame: pd.DataFrame, *, tie: bool, chinchilla_max_epochs: float, chinchilla_grid: str,
            parameter_count: str, n_bootstrap: int, seed: int,
            log: Callable[[str], None] = print) -> tuple[pd.DataFrame, fitting.LawFit, int]:
    """(constants table next to the paper's, the full fit, bootstrap resamples refitted): Chinchilla's form on
    the single-epoch runs from ``chinchilla_grid``'s starts, then R_D*, R_N* on every run."""
    runs = runs_of(runs_frame, parameter_count)
    started = time.time()
    full = fitting.fit_law(runs, tie=tie, chinchilla_max_epochs=chinchilla_max_epochs,
                           chinchilla_starts=CHINCHILLA_STARTS[(chinchilla_grid, tie)])
    log(f"fit in {time.time() - started:.1f}s: R_D* = {full.law.rd_star:.4g}, R_N* = {full.law.rn_star:.4g}")
    boot = fitting.bootstrap_law(runs, full, n_resamples=n_bootstrap, seed=seed, tie=tie,
                                 chinchilla_max_epochs=chinchilla_max_epochs)
    log(f"bootstrap: {len(boot)}/{n_bootstrap} resamples refitted in {time.time() - started:.1f}s")
    table = fitting.constants_table(full, boot, PAPER_C4)
    table["objective"] = np.where(table["stage"] == "decay", full.decay.objective, full.chinchilla.objective)
    table["n_runs"] = np.where(table["stage"] == "decay", len(runs), len(full.stage1_index))
    table["parameter_count"] = parameter_count  # which N the constants are for (downstream reads it)
    return table, full, len(boot)


def reference_fit() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(refit table, the paper's 182 C4 runs): R_D*, R_N* with the paper's Chinchilla constants frozen, from the
    notebook's grid of starts and from a wider one."""
    from assets.scaling.reference import reference_runs, refit_reference, wide_decay_starts

    runs_df = reference_runs()
    runs = fitting.Runs.from_frame(runs_df)
    paper_objective = fitting.objective_value(PAPER_C4, runs)
    rows = []
    for starts_name, starts in (("notebook grid", None), ("wide grid", wide_decay_starts())):
        fit = refit_reference(runs_df, PAPER_C4, starts)
        rows.append({"starts": starts_name, "n_starts": fit.n_starts, "rd_star": fit.law.rd_star,
                     "rn_star": fit.law.rn_star, "huber": fit.objective, "paper_rd_star": PAPER_C4.rd_star,
                     "paper_rn_star": PAPER_C4.rn_star, "paper_huber": paper_objective, "n_runs": len(runs)})
    return pd.DataFrame(rows), runs_df


def r2_table(runs_frame: pd.DataFrame, constants: pd.DataFrame) -> pd.DataFrame:
    """R² and Huber objective of Chinchilla's form vs the data-constrained forms, ours and on the paper's runs."""
    from assets.scaling.reference import reference_runs

    law = fitting.law_from_constants(constants)
    ours = fitting.compare_forms(runs_of(runs_frame, str(constants["parameter_count"].iloc[0])), law.chinchilla(),
                                 law).assign(dataset="ours")
    paper = fitting.compare_forms(fitting.Runs.from_frame(reference_runs()), PAPER_C4.chinchilla(),
                                  PAPER_C4).assign(dataset="paper C4 runs")
    return pd.concat([ours, paper], ignore_index=True)[["dataset", "form", "decay_constants", "rd_star", "rn_star",
                                                         "r2", "huber", "n_runs"]]


def allocation(runs_frame: pd.DataFrame, constants: pd.DataFrame, unique_tokens: float | None,
               budgets: Sequence[float] | None, paper_unique_tokens: float,
               paper_budgets: Sequence[float]) -> pd.DataFrame:
    """Compute-optimal allocations, ours (our law; U_D capped at ``unique_tokens``, default the grid's largest
    repeated budget; ``budgets`` default the grid's span x10) and the paper's."""
    from assets.scaling.allocation import allocation_table

    if budgets is not None and not len(budgets):
        raise ValueError("budgets is empty: give FLOP budgets, or leave it unset for the grid's span x10")
    law = fitting.law_from_constants(constants)
    repeated = runs_frame[runs_frame["nominal_epochs"] > 1]
    cap = unique_tokens or float((repeated if len(repeated) else runs_frame)["unique_tokens"].max())
    flops = 6.0 * runs_frame[str(constants["parameter_count"].iloc[0])] * runs_frame["tokens"]
    budgets = budgets or [float(c) for c in np.geomspace(flops.min(), flops.max() * 10, 8)]
    return pd.concat([allocation_table(budgets, cap, law, "ours"),
                      allocation_table(paper_budgets, paper_unique_tokens, PAPER_C4, "paper")], ignore_index=True)


def scale_description(runs: pd.DataFrame, profile: str) -> str:
    """The scale a finding was measured at: N, U_D and epochs spanned, the corpus and how epochs were drawn."""
    n = runs["parameters"]
    return (f"{profile} profile: N {n.min():,.0f}-{n.max():,.0f} params, U_D "
            f"{runs['unique_tokens'].min():,.0f}-{runs['unique_tokens'].max():,.0f} tokens, "
            f"{runs['epochs'].min():.3g}-{runs['epochs'].max():.3g} epochs, corpus {runs['corpus'].iloc[0]}, "
            + ("epochs are exact passes over fixed windows" if set(runs.get("sampling", ["random"])) == {"epochs"}
               else "windows drawn with replacement (Poisson repeats)"))
