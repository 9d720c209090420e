"""The study's headline results as `assets.findings.Finding`s: our number, the reference and its source, the
rule that turns them into a verdict.

The references come from the paper's constants (PAPER_C4) and its own C4 runs (the packaged CSV): 4 epochs
are worth ~3.7x the unique data (derived from R_D* = 15.39) and cost +0.6% held-out loss for its 2.8B-8.7B
models (derived from its runs); the 16th epoch is worth 0.39 of a fresh one (derived from R_D*: repeated data
decays with constant R_D*, so by the 16th epoch a repetition has lost about 1 - 1/e of its worth, not all
of it). The refit of the paper's runs checks our fitter on known data: a code check, not a reproduction.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from assets.findings import Condition, Finding, Rule
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
# of 19.7-9,850; it can only make a finding not comparable.
PINNED_SPREAD = RD_STAR.partial ** 2
PINNED_REVIEW = ("rule made stricter after review (30 Nov 2026), not tuned to pass: the findings read from the fitted "
                 f"R_D* now need its 95% bootstrap interval to span at most a factor {PINNED_SPREAD:g} (hi/lo), else "
                 "not comparable")

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


def headline(runs: pd.DataFrame, constants: pd.DataFrame, reference_fit: pd.DataFrame, scale: str) -> list[Finding]:
    """The findings, from the grid's runs, our fitted constants and the refit of the paper's runs."""
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
    bound = (f" R_D* sits at the fit's upper bound {DECAY_BOUNDS[1]:g}: these runs show no measurable cost of "
             "repetition." if law.rd_star >= 0.99 * DECAY_BOUNDS[1] else "")
    max_epochs = float(runs["epochs"].max())
    extrapolated = (f" Our grid stops at {max_epochs:.3g} epochs, so ours is the fitted law extrapolated."
                    if max_epochs < 16 else "")
    worth4_note = f"4 epochs of fresh data = 4x; D'/U_D from fitted R_D* = {law.rd_star:.3g} (95% bootstrap " \
                  f"{rd_lo:.3g}-{rd_hi:.3g}); the reference is the paper's R_D* put into the same formula.{bound}"
    spread = rd_hi / rd_lo if rd_lo > 0 and math.isfinite(rd_hi) else math.inf
    pinned = (Condition("R_D* bootstrap spread (hi/lo)", spread if spread <= PINNED_SPREAD else math.nan,
                        Rule.at_most(PINNED_SPREAD)),)  # NaN (not comparable) when the fit leaves R_D* loose
    loose = ("" if spread <= PINNED_SPREAD else
             f" Not comparable: the bootstrap interval spans a factor {spread:.3g}, more than {PINNED_SPREAD:g}.")
    return [
        Finding(STUDY, "effective data of 4 epochs (x U_D)", worth4, paper_worth4, "paper (derived)", FOUR_EPOCH_WORTH,
                scale, note=worth4_note + loose, conditions=pinned, post_hoc=PINNED_REVIEW),
        Finding(STUDY, "held-out loss excess of 4 epochs vs unique data (%)", excess4, paper_excess4,
                "paper (derived)", FOUR_EPOCH_EXCESS, scale,
                conditions=(Condition("effective data of 4 epochs (x U_D)", worth4, FOUR_EPOCH_WORTH), *pinned),
                post_hoc=PINNED_REVIEW,
                note=f"measured at equal N and D; ours: {'; '.join(pairs) or 'no pair in the grid'}; reference: the "
                     f"paper's C4 runs at 4 epochs vs unique data ({'; '.join(paper_pairs)}). The claim also needs "
                     "4 epochs to be worth nearly 4x U_D (the condition)."),
        Finding(STUDY, "worth of the 16th epoch (x a fresh epoch)", last16, paper_last16, "paper (derived)",
                SIXTEENTH_EPOCH_WORTH, scale,
                post_hoc="rule replaced after review (issue 16): it was 'ours <= 0.5' (any faded value passed, even "
                         "1e-6 against the paper's 0.39); it now compares with the paper's value, which is stricter; "
                         + PINNED_REVIEW, conditions=pinned,
                note=f"D'(16) - D'(15) in units of U_D from the fitted law (a fresh epoch is worth 1); the paper's "
                     f"R_D* = {PAPER_C4.rd_star:.4g} gives {paper_last16:.3g}: faded by about 1 - 1/e, not gone. "
                     f"Ours from R_D* = {law.rd_star:.3g} (limit D'/U_D = 1 + R_D* = {1 + law.rd_star:.3g}, paper "
                     f"{1 + PAPER_C4.rd_star:.3g}).{extrapolated}{bound}{loose}"),
        Finding(STUDY, "R_D* (fitted)", float(law.rd_star), PAPER_C4.rd_star, "paper", RD_STAR, scale,
                conditions=pinned, post_hoc=PINNED_REVIEW,
                note=f"ours is {ratio:.3g}x the paper's (95% bootstrap {rd_lo:.3g}-{rd_hi:.3g}); R_N* = "
                     f"{law.rn_star:.3g} vs {PAPER_C4.rn_star:.3g}. The same method on the paper's runs gives "
                     f"R_D* = {ref_rd:.4g}.{bound}{loose}"),
        Finding(STUDY, "R_D* refitted on the paper's 182 C4 runs", ref_rd, PAPER_C4.rd_star, "code check", REFIT,
                "paper scale: 7M-8.7B params, 100M-178B unique tokens (the paper's runs, packaged CSV)",
                note=f"verifies our fitter on the paper's own runs (not a reproduction of the paper's result). R_N* = "
                     f"{ref_rn:.4g} (paper {PAPER_C4.rn_star:.4g}), from the notebook's grid of starts. From wider "
                     f"starts the Huber objective has another basin at R_D* = {wide.rd_star:.3g}, R_N* = "
                     f"{wide.rn_star:.3g} ({100 * (wide.huber / ref.loc['notebook grid', 'huber'] - 1):+.2f}% "
                     "objective): the runs pin R_D* down only weakly, trading it against R_N*"),
    ]
