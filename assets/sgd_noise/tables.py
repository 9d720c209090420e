"""What the SGD-noise study's Dagster side shows of its tables, as plain functions and constants: the
descriptions of the sweeps' output tables, the share of decided equal-step comparisons where less noise is
not worse, and the synthetic sweep's run numbers."""

from __future__ import annotations

import pandas as pd

SYNTHETIC_OUTS = {
    "sgd_noise_synthetic_runs": "One row per synthetic run: regime, batch, learning rate, seed, branch cut.",
    "sgd_noise_synthetic_curves": "Held-out loss (cross-entropy vs the teacher), excess over the teacher's "
                                  "entropy, agreement and training loss against steps and examples seen.",
    "sgd_noise_synthetic_distances": "TV distance at equal held-out loss (and at equal steps) between noisy "
                                     "runs and the lowest-noise run, and between seeds of the lowest-noise run.",
}

LM_OUTS = {
    "sgd_noise_lm_runs": "One row per LM run on the facts world (online / offline, batch, learning rate, seed, "
                         "noise-cut branch) with its final and best held-out loss.",
    "sgd_noise_lm_curves": "LM held-out loss against steps and examples (tokens / context length) seen.",
    "sgd_noise_lm_distances": "TV distance between next-token distributions on held-out text at equal loss.",
}


def share_not_worse(table: pd.DataFrame) -> pd.DataFrame:
    """Per (task, regime, knob) of an equal-step comparison (analysis.equal_step_comparison): its ties, the
    comparisons decided (not a tie), and the share of those where less noise is not worse."""
    decided = table.assign(not_worse=table["less_noise_not_worse"].astype(float).where(~table["tie"].astype(bool)))
    return decided.groupby(["task", "regime", "knob"]).agg(
        ties=("tie", "sum"), decided=("not_worse", "count"), share_not_worse_of_decided=("not_worse", "mean"),
    ).reset_index()


def synthetic_run_numbers(runs: pd.DataFrame, seconds: float) -> dict:
    """The synthetic sweep's numbers in its runs' metadata: runs, seconds, the teacher's entropy and network
    steps per second (every network of a batch size trains at once)."""
    return {"runs": len(runs), "seconds": round(seconds, 1),
            "teacher_entropy": float(runs["teacher_entropy"].iloc[0]),
            "network_steps_per_second": round(float(runs["steps"].sum() / max(seconds, 1e-9)), 1)}
