"""The study's headline results as `assets.findings.Finding`s: our number, the reference and its source, the
rule that turns them into a verdict.

The references come from the paper's constants (PAPER_C4) and its own C4 runs (the packaged CSV): 4 epochs
are worth ~3.7x the unique data (derived from R_D* = 15.39) and cost +0.6% held-out loss for its 2.8B-8.7B
models (derived from its runs); the 16th epoch is worth 0.39 of a fresh one (derived from R_D*: repeated data
decays with constant R_D*, so by the 16th epoch a repetition has lost about 1 - 1/e of its worth, not all
of it). The refit of the paper's runs checks our fitter on known data: a code check, not a reproduction.

Not reproduced here (no finding): three of the abstract's claims, the excess-parameter law (R_N* is fitted, but
our grid has no runs with excess parameters to test it; on the demo it sits at the fit's bound), and the two
mitigations of data scarcity, augmenting the training set with code and removing common filters (not run).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from assets.findings import Condition, Finding, Rule, combine, gate
from assets.scaling.allocation import effective_data_table
from assets.scaling.fitting import DECAY_BOUNDS, law_from_constants
from assets.scaling.law import PAPER_C4
from assets.scaling.reference import reference_runs

STUDY = "scaling"
# The rules, stated before the numbers (ours against the bar; the looser bar for "partially")
FOUR_EPOCH_WORTH = Rule.at_least(3.4, partial=2.5)  # D'/U_D after 4 epochs (4 = as good as fresh data)
FOUR_EPOCH_EXCESS = Rule.at_most(1.0, partial=3.0)  # % held-out loss above unique data at equal N and D
SIXTEENTH_EPOCH_WORTH = Rule.within_factor(1.5, partial=3.0)  # worth of the 16th epoch vs the paper's 0.39
RD_STAR = Rule.within_factor(1.5, partial=3.0)  # fitted R_D* vs the paper's 15.39
REFIT = Rule.within_rel(0.01, partial=0.1)  # our fitter on the paper's runs vs the paper's R_D*
# The findings read from the fitted R_D* need the fit to pin it down: its 95% bootstrap interval may span at most
# the factor of the partial band (hi/lo <= 3 x 3 = 9), else the interval holds both a pass and a fail and those
# findings are not comparable. Added after a review of a tiny run whose R_D* read "reproduced" with a bootstrap
# of 19.7-9,850. Second review: a loose fit withholds only what its interval does not decide; a finding that fails
# with every R_D* in the interval stays "not reproduced" with the measured spread (`loose_fit_gate`).
PINNED_SPREAD = RD_STAR.partial ** 2
PINNED_REVIEW = ("rule made stricter after review (30 Nov 2026), not tuned to pass: the findings read from the fitted "
                 f"R_D* now need its 95% bootstrap interval to span at most a factor {PINNED_SPREAD:g} (hi/lo), else "
                 "not comparable; after a second review a finding that fails with every R_D* in the interval stays "
                 "not reproduced, its spread recorded")
NOT_RUN = ("not reproduced here (no finding): the excess-parameter law (R_N* fitted, not tested), code augmentation "
           "and filter removal (not run)")

# check name -> the finding it reads (the WARN checks on scaling/findings)
CHECKS = {
    "repeated_data_almost_as_good_up_to_4_epochs": "held-out loss excess of 4 epochs vs unique data (%)",
    "returns_fade_past_16_epochs": "worth of the 16th epoch (x a fresh epoch)",
    "rd_star_matches_paper": "R_D* (fitted)",
}
CHECK_CLAIMS = {
    "repeated_data_almost_as_good_up_to_4_epochs":
        f"4 epochs of repeated data cost little: held-out loss {FOUR_EPOCH_EXCESS.describe()} % above unique "
        f"data at equal N and D, and 4 epochs worth {FOUR_EPOCH_WORTH.describe()} x U_D (paper: +0.6%, 3.7x)",
    "returns_fade_past_16_epochs":
        f"the 16th epoch is worth about the paper's 0.39 of a fresh epoch ({SIXTEENTH_EPOCH_WORTH.describe()}): "
        "returns fade, but do not vanish, by 16 epochs",
    "rd_star_matches_paper": f"fitted R_D* {RD_STAR.describe()} 15.39 (the paper's C4 fit)",
}


def four_epoch_excess(runs: pd.DataFrame, loss: str) -> tuple[float, list[str]]:
    """Mean % loss excess of ~4 epochs over U_D vs a unique-data run with the same N and D, and the pairs used."""
    unique = runs[np.isclose(runs["epochs"], 1.0, rtol=0.01)]
    excess, pairs = [], []
    for row in runs[(runs["epochs"] > 3.5) & (runs["epochs"] < 4.5)].itertuples():
        match = unique[(unique["parameters"] == row.parameters) & np.isclose(unique["tokens"], row.tokens, rtol=0.02)]
        if len(match):
            base = float(match[loss].iloc[0])
            excess.append(100 * (getattr(row, loss) - base) / base)
            pairs.append(f"N={row.parameters:.3g}: {getattr(row, loss):.4f} vs {base:.4f}")
    return (float(np.mean(excess)) if excess else math.nan), pairs


def at_bound(name: str, value: float) -> str:
    """A sentence when a fitted decay constant sits at either bound of the fit ("" otherwise)."""
    low, high = DECAY_BOUNDS
    if value >= 0.99 * high:
        return f" {name} sits at the fit's upper bound {high:g}"
    if value <= 1.01 * low:
        return f" {name} sits at the fit's lower bound {low:g}"
    return ""


def loose_fit_gate(spread: float, grades: list[str]) -> tuple[Condition, ...]:
    """The loose-fit gate of a finding read from R_D*: its bootstrap spread (hi/lo) at most PINNED_SPREAD. A loose
    fit withholds a verdict the interval does not decide: ``grades`` are the finding's grades with R_D* at the
    interval's ends, the point estimate and the paper's value when inside. When every one of them fails, the
    failure holds across the interval: the spread counts as an ordinary condition and the finding stays "not
    reproduced"; otherwise (the interval holds a pass or a partial) it withholds the verdict: "not comparable".
    A tight fit lowers nothing. The measured spread is kept either way."""
    rule = Rule.at_most(PINNED_SPREAD)
    name = "R_D* bootstrap spread (hi/lo)"
    fails_everywhere = set(grades) == {"not reproduced"}
    if not math.isfinite(spread) and fails_everywhere:  # an unbounded interval (lo = 0) that fails everywhere
        return ()
    across = "not reproduced" if fails_everywhere else "passes somewhere in the interval"  # the rest, for `gate`
    return (gate(name, spread, rule, across),)


def derived_from(rd_star: float, excess4: float, paper_excess4: float, paper_worth4: float,
                 paper_last16: float) -> dict[str, str]:
    """The grade of every finding read from R_D*, had the fit given ``rd_star`` (the loose-fit gate probes the
    bootstrap interval with it)."""
    rd_star = min(max(rd_star, DECAY_BOUNDS[0]), DECAY_BOUNDS[1])
    eff = effective_data_table({"probe": rd_star}, [4, 16]).set_index("epochs")
    worth4, last16 = float(eff.loc[4.0, "effective_data_multiple"]), float(eff.loc[16.0, "last_epoch_worth"])
    return {"worth4": FOUR_EPOCH_WORTH.grade(worth4, paper_worth4),
            "excess4": combine(FOUR_EPOCH_EXCESS.grade(excess4, paper_excess4),
                               [Condition("worth4", worth4, FOUR_EPOCH_WORTH)]),
            "last16": SIXTEENTH_EPOCH_WORTH.grade(last16, paper_last16),
            "rd": RD_STAR.grade(rd_star, PAPER_C4.rd_star)}


def headline(runs: pd.DataFrame, constants: pd.DataFrame, reference_fit: pd.DataFrame, scale: str) -> list[Finding]:
    """The findings, from the grid's runs, our fitted constants and the refit of the paper's runs."""
    scale = f"{scale}; {NOT_RUN}" if scale else NOT_RUN
    law = law_from_constants(constants)
    consts = constants.set_index("constant")
    rd_lo, rd_hi = float(consts.loc["rd_star", "ci_low"]), float(consts.loc["rd_star", "ci_high"])
    eff = effective_data_table({"ours": law.rd_star, "paper": PAPER_C4.rd_star}, [4, 16]).set_index(["source", "epochs"])
    worth4, paper_worth4 = (float(eff.loc[(s, 4.0), "effective_data_multiple"]) for s in ("ours", "paper"))
    last16, paper_last16 = (float(eff.loc[(s, 16.0), "last_epoch_worth"]) for s in ("ours", "paper"))
    excess4, pairs = four_epoch_excess(runs, "held_out_loss")  # pairs match on N and D: any N count will do
    paper_excess4, paper_pairs = four_epoch_excess(reference_runs(), "loss")
    ref = reference_fit.set_index("starts")
    ref_rd, ref_rn = float(ref.loc["notebook grid", "rd_star"]), float(ref.loc["notebook grid", "rn_star"])
    wide = ref.loc["wide grid"]
    ratio = law.rd_star / PAPER_C4.rd_star
    bound = at_bound("R_D*", law.rd_star)
    bound = f"{bound}: these runs show no measurable cost of repetition." if bound else ""
    rn_bound = at_bound("R_N*", law.rn_star)
    if rn_bound:
        rn_lo, rn_hi = (float(consts.loc["rn_star", c]) for c in ("ci_low", "ci_high")) if "rn_star" in consts.index \
            else (math.nan, math.nan)
        bound += (f"{rn_bound} (95% bootstrap {rn_lo:.3g}-{rn_hi:.3g}): the grid shows no measurable cost of excess "
                  "parameters, so the excess-parameter decay is not identified, and R_D*, which the fit trades against "
                  "R_N*, is read with R_N* pinned at a bound.")
    max_epochs = float(runs["epochs"].max())
    extrapolated = (f" Our grid stops at {max_epochs:.3g} epochs, so ours is the fitted law extrapolated."
                    if max_epochs < 16 else "")
    worth4_note = f"4 epochs of fresh data = 4x; D'/U_D from fitted R_D* = {law.rd_star:.3g} (95% bootstrap " \
                  f"{rd_lo:.3g}-{rd_hi:.3g}); the reference is the paper's R_D* put into the same formula.{bound}"
    spread = rd_hi / rd_lo if rd_lo > 0 and math.isfinite(rd_hi) else math.inf
    worth_condition = Condition("effective data of 4 epochs (x U_D)", worth4, FOUR_EPOCH_WORTH)
    probes = [rd_lo, float(law.rd_star), rd_hi] + ([PAPER_C4.rd_star] if rd_lo < PAPER_C4.rd_star < rd_hi else [])
    graded = [derived_from(rd, excess4, paper_excess4, paper_worth4, paper_last16) for rd in probes]
    gates = {k: loose_fit_gate(spread, [g[k] for g in graded]) for k in ("worth4", "excess4", "last16", "rd")}

    def loose(key: str) -> str:
        if spread <= PINNED_SPREAD:
            return ""
        withheld = any(c.withholds for c in gates[key])
        return (f" The bootstrap interval spans a factor {spread:.3g}, more than {PINNED_SPREAD:g}: " + (
            "it holds R_D* values under which this finding passes (fully or partially), so not comparable."
            if withheld else "the finding fails with any R_D* in it, so not reproduced."))

    return [
        Finding(STUDY, "effective data of 4 epochs (x U_D)", worth4, paper_worth4, "paper (derived)", FOUR_EPOCH_WORTH,
                scale, note=worth4_note + loose("worth4"), conditions=gates["worth4"], post_hoc=PINNED_REVIEW),
        Finding(STUDY, "held-out loss excess of 4 epochs vs unique data (%)", excess4, paper_excess4,
                "paper (derived)", FOUR_EPOCH_EXCESS, scale,
                conditions=(worth_condition, *gates["excess4"]),
                post_hoc=PINNED_REVIEW,
                note=f"measured at equal N and D; ours: {'; '.join(pairs) or 'no pair in the grid'}; reference: the "
                     f"paper's C4 runs at 4 epochs vs unique data ({'; '.join(paper_pairs)}). The claim also needs "
                     "4 epochs to be worth nearly 4x U_D (the condition)." + loose("excess4")),
        Finding(STUDY, "worth of the 16th epoch (x a fresh epoch)", last16, paper_last16, "paper (derived)",
                SIXTEENTH_EPOCH_WORTH, scale,
                post_hoc="rule replaced after review (issue 16): it was 'ours <= 0.5' (any faded value passed, even "
                         "1e-6 against the paper's 0.39); it now compares with the paper's value, which is stricter; "
                         + PINNED_REVIEW, conditions=gates["last16"],
                note=f"D'(16) - D'(15) in units of U_D from the fitted law (a fresh epoch is worth 1); the paper's "
                     f"R_D* = {PAPER_C4.rd_star:.4g} gives {paper_last16:.3g}: faded by about 1 - 1/e, not gone. "
                     f"Ours from R_D* = {law.rd_star:.3g} (limit D'/U_D = 1 + R_D* = {1 + law.rd_star:.3g}, paper "
                     f"{1 + PAPER_C4.rd_star:.3g}).{extrapolated}{bound}{loose('last16')}"),
        Finding(STUDY, "R_D* (fitted)", float(law.rd_star), PAPER_C4.rd_star, "paper", RD_STAR, scale,
                conditions=gates["rd"], post_hoc=PINNED_REVIEW,
                note=f"ours is {ratio:.3g}x the paper's (ours' 95% bootstrap interval {rd_lo:.3g}-{rd_hi:.3g}); R_N* = "
                     f"{law.rn_star:.3g} vs {PAPER_C4.rn_star:.3g}. The same method on the paper's runs gives "
                     f"R_D* = {ref_rd:.4g}.{bound}{loose('rd')}"),
        Finding(STUDY, "R_D* refitted on the paper's 182 C4 runs", ref_rd, PAPER_C4.rd_star, "code check", REFIT,
                "paper scale: 7M-8.7B params, 100M-178B unique tokens (the paper's runs, packaged CSV)",
                note=f"verifies our fitting procedure (the paper's notebook's, grid of starting points included) on the "
                     f"paper's own runs; not a reproduction of the paper's result, nor a check that its R_D* is the "
                     f"objective's global optimum. R_N* = {ref_rn:.4g} (paper {PAPER_C4.rn_star:.4g}). From wider "
                     f"starts the Huber objective has another basin at R_D* = {wide.rd_star:.3g}, R_N* = "
                     f"{wide.rn_star:.3g} ({100 * (wide.huber / ref.loc['notebook grid', 'huber'] - 1):+.2f}% "
                     "objective): the runs pin R_D* down only weakly, trading it against R_N*"),
    ]
