"""How many problems carry a result: the paired evidence behind the findings' gains and drops.

The unit that is independent is the problem (an item's goals share its problem, and the clean conversation is
one per problem), so every count here is of problems:

- `clean_pairs`: each problem's clean correctness at the lowest and the highest compute level (answered at
  both), and `exact_mcnemar_p`: the exact two-sided McNemar test on them (a binomial test of the problems
  right at the highest level only against those right at the lowest level only, p = 1/2);
- `problem_changes`: per task, how many problems an attack won at the lowest / the highest level, and how many
  fell (fewer of their items won at the highest level) or rose; with the exact sign test over problems;
- `no_attack_success`: how often the goal is "reached" with no attack at all (the clean conversation), per
  task and goal, at the lowest and the highest level: a baseline a drop is read against.
"""

from __future__ import annotations

import pandas as pd

from assets.robustness.items import THINK_LESS


def exact_mcnemar_p(gained: int, lost: int) -> float:
    """Exact two-sided McNemar p-value for `gained` vs `lost` discordant pairs (1.0 when there are none)."""
    from scipy.stats import binomtest

    gained, lost = int(gained), int(lost)
    if gained < 0 or lost < 0:
        raise ValueError(f"discordant counts must be >= 0, got {gained}, {lost}")
    return 1.0 if gained + lost == 0 else float(binomtest(gained, gained + lost, 0.5).pvalue)


def clean_pairs(runs: pd.DataFrame, task: str) -> pd.DataFrame:
    """One defender's clean conversations of `task`: per problem answered at both the lowest and the highest
    compute level, columns "low" and "high" (1.0 when correct there); empty without a `correct` column."""
    levels = sorted(runs["compute_level"].unique())
    if "correct" not in runs or not len(levels):
        return pd.DataFrame(columns=["low", "high"])
    clean = runs[(runs["attack"] == "none") & (runs["task"] == task) & runs["answered"].astype(bool)]
    clean = clean.drop_duplicates(["problem_id", "compute_level"]).set_index("problem_id")
    low, high = (clean.loc[clean["compute_level"] == level, "correct"].astype(float) for level in (levels[0], levels[-1]))
    return pd.concat({"low": low, "high": high}, axis=1, join="inner")


def problem_changes(paired: pd.DataFrame) -> pd.DataFrame:
    """From `summary.paired_items`: per task, "problems", "won_low" / "won_high" (problems with at least one
    item won at that level), "fell" / "rose" (fewer / more items won at the highest level than at the lowest)
    and "sign_p" (the exact two-sided sign test of fell against rose)."""
    per_problem = paired.groupby(["task", "problem_id"])[["low", "high"]].sum()
    rows = []
    for task, group in per_problem.groupby(level="task", sort=True):
        fell, rose = int((group["low"] > group["high"]).sum()), int((group["low"] < group["high"]).sum())
        rows.append({"task": task, "problems": len(group), "won_low": int((group["low"] > 0).sum()),
                     "won_high": int((group["high"] > 0).sum()), "fell": fell, "rose": rose,
                     "sign_p": exact_mcnemar_p(fell, rose)})
    return pd.DataFrame(rows, columns=["task", "problems", "won_low", "won_high", "fell", "rose", "sign_p"])


def no_attack_success(runs: pd.DataFrame) -> pd.DataFrame:
    """One defender's clean conversations on the unambiguous tasks: per task and goal, the successes and the
    problems at the lowest ("low", "n_low") and the highest ("high", "n_high") compute level."""
    columns = ["task", "goal", "low", "n_low", "high", "n_high"]
    clean = runs[(runs["attack"] == "none") & (runs["task"] != "ambiguous") & (runs["goal"] != THINK_LESS)
                 & runs["success"].notna()]
    if not len(clean):
        return pd.DataFrame(columns=columns)
    levels = sorted(runs["compute_level"].unique())
    rows = []
    for (task, goal), group in clean.groupby(["task", "goal"], sort=True):
        at = {name: group[group["compute_level"] == level]["success"] for name, level in
              (("low", levels[0]), ("high", levels[-1]))}
        rows.append({"task": task, "goal": goal, "low": int(at["low"].sum()), "n_low": len(at["low"]),
                     "high": int(at["high"].sum()), "n_high": len(at["high"])})
    return pd.DataFrame(rows, columns=columns)


def describe_changes(changes: pd.DataFrame) -> str:
    """The per-task problem counts as a sentence for a finding's note."""
    if not len(changes):
        return "no problems compared"
    parts = [f"{r.task}: won on {r.won_low} of {r.problems} problems at the lowest level, {r.won_high} at the "
             f"highest; {r.fell} fell, {r.rose} rose" for r in changes.itertuples()]
    fell, rose = int(changes["fell"].sum()), int(changes["rose"].sum())
    carrying = changes.loc[changes["won_low"] + changes["won_high"] > 0, "task"].tolist()
    return ("; ".join(parts) + f"; the drop rests on {fell + rose} problems that changed ({fell} fell, {rose} "
            f"rose; exact sign test over problems p={exact_mcnemar_p(fell, rose):.3f}); the attack won on problems "
            f"of {', '.join(carrying) if carrying else 'no task'} only")


def describe_baseline(baseline: pd.DataFrame) -> str:
    """The no-attack successes as a sentence (the goals reached without any attack, else 'none')."""
    reached = baseline[(baseline["low"] > 0) | (baseline["high"] > 0)]
    if not len(baseline):
        return "no-attack baseline: not in the table"
    if not len(reached):
        return "no-attack baseline: no goal reached without an attack at either level"
    return "no-attack baseline (the goal reached with no attack at all): " + ", ".join(
        f"{r.task} {r.goal} {r.low}/{r.n_low} at the lowest level, {r.high}/{r.n_high} at the highest"
        for r in reached.itertuples())
