"""The royalties study's headline results as `assets.findings.Finding`s (Wang et al. 2024 shows its claims in
figures, without one number to compare with, so the references are "none" and the rules are bars on ours).

The paper's claim: the owner whose work a generation draws on gets the largest royalty share. Prompted
pieces test it only weakly: their prompt is the owner's own template word, which only that owner's data makes
likely, so the prompted owner on top is close to true by construction. Neutral pieces start from the same
empty prompt for every owner; their source is decided afterwards by whose training data they copy most
(`pieces.attribute_source`), so the Shapley shares are tested against an attribution they never saw. A fraction
counts (even partially) only when every seed's count beats chance (1 / n_owners) by a one-sided binomial test;
the neutral fraction needs at least ENOUGH_NEUTRAL owner-sourced pieces (an evidence gate: fewer withhold only a
pass), and the prompted fraction, with two seeds or more, a top owner that agrees across seeds.
"""

from __future__ import annotations

import math

import pandas as pd

from assets.findings import Condition, Finding, Rule, combine, gate

STUDY = "royalties"
MOST = 0.51  # "most pieces": more than half
STABLE_AGREEMENT = Rule.at_least(0.8)  # top owner the same under two seeds for at least this fraction of pieces
SIGNIFICANCE = 0.05  # one-sided binomial test against chance (1 / n_owners) on every seed's pieces
ABOVE_CHANCE = Rule.at_most(SIGNIFICANCE)
REVIEW = "rule made stricter after review (30 Nov 2026), not tuned to pass"
POST_HOC_CHANCE = (f"{REVIEW}: the partial bar was chance + 0.01 (0.26 with 4 owners, indistinguishable from chance "
                   f"at 13-16 pieces); every verdict now also needs each seed's count above chance by a one-sided "
                   f"binomial test (p <= {SIGNIFICANCE})")
POST_HOC_AGREEMENT = (f"{REVIEW}: agreement counted pieces no owner was paid for under both seeds as agreeing and "
                      "included public-control pieces; it is now over owner-sourced pieces paid under some seed")
ENOUGH_NEUTRAL = Rule.at_least(5)  # owner-sourced neutral pieces needed before their fraction counts (a gate)
GATE_NEUTRAL = ("the owner-sourced piece count became an evidence gate after review (30 Nov 2026; demo has 13, "
                "its verdict unchanged): below the minimum it used to read 'not reproduced' however the pieces fell, "
                "it now withholds only a pass (not comparable; a fraction that fails anyway stays not reproduced)")
POST_HOC_NEUTRAL = ("attribution changed after the first demo run: by the longest shared run alone 10 of 14 pieces "
                    "tied (authors share sentence skeletons) and 1 was owner-sourced, so the 1- to 3-gram overlap now "
                    "decides and the run breaks ties; demo pieces raised from 16 to 32 and the minimum of "
                    f"{ENOUGH_NEUTRAL.bar:g} owner-sourced pieces added then")
POST_HOC_SENTENCES = ("generated pieces cut after {n} sentence(s) (piece_sentences={n}), chosen after seeing that "
                      "small generators drift into other owners' templates after the first sentence")

# check name -> the finding it reads (the WARN checks on royalties/findings)
CHECKS = {
    "prompted_owner_gets_largest_share": "prompted_owner_top_share_fraction_generated",
    "neutral_source_owner_gets_largest_share": "source_owner_top_share_fraction_neutral",
}
CHECK_CLAIMS = {
    "prompted_owner_gets_largest_share":
        f"the owner whose style was prompted gets the largest share in most (>= {MOST}) generated pieces, above "
        f"chance on every seed (one-sided binomial p <= {SIGNIFICANCE}), and the top owner agrees across seeds for "
        f"{STABLE_AGREEMENT.describe().removeprefix('ours ')} of owner-sourced paid pieces (close to true by "
        "construction: the prompt is the owner's own template word)",
    "neutral_source_owner_gets_largest_share":
        f"pieces sampled from one neutral prompt: the owner whose training data the piece copies most gets the "
        f"largest share in most (>= {MOST}) of them, above chance on every seed (one-sided binomial p <= "
        f"{SIGNIFICANCE})",
}


def fraction_rule(n_owners: int) -> Rule:
    """Reproduced: the source owner is on top in most pieces; partially: above chance (1 / n_owners), which
    `above_chance` must also confirm (a fraction a little over chance says nothing at a dozen pieces)."""
    chance = round(1 / n_owners, 2)
    return Rule.at_least(MOST, partial=chance if chance < MOST else None)


def above_chance_p_value(per_seed: list[dict], n_owners: int) -> float:
    """The largest over seeds (every seed must show it) of the one-sided binomial p-value of that seed's count
    of pieces with the source owner on top, against chance 1 / n_owners; NaN without pieces."""
    from scipy.stats import binomtest

    values = [binomtest(round(r["fraction"] * r["n_pieces"]), int(r["n_pieces"]), 1 / n_owners,
                        alternative="greater").pvalue for r in per_seed if r["n_pieces"] > 0]
    return float(max(values)) if values else math.nan


def above_chance(per_seed: list[dict], n_owners: int) -> Condition:
    return Condition("above_chance_binomial_p_value", above_chance_p_value(per_seed, n_owners), ABOVE_CHANCE)


def royalties_findings(h: dict, estimators: pd.DataFrame, n_owners: int, n_seeds: int, scale: str) -> list[Finding]:
    """The findings from `royalties.headline_numbers` (``h``) and the estimators table."""
    rule = fraction_rule(n_owners)
    limit = f"cut after {h['sentence_limit']} sentence(s)" if h["sentence_limit"] else "not cut into sentences"
    post_hoc = POST_HOC_SENTENCES.format(n=h["sentence_limit"]) if h["sentence_limit"] else ""

    def per_seed(rows: list[dict]) -> str:
        return ", ".join(f"seed {r['seed']}: {r['fraction']:.2f} of {r['n_pieces']}" for r in rows) or "no pieces"

    agreement = h["top_owner_agreement"]
    stability = ((Condition("top_owner_agreement_across_seeds", agreement, STABLE_AGREEMENT),)
                 if n_seeds > 1 else ())  # one seed: stability is not measured
    chance_post_hoc = "; ".join(x for x in (post_hoc, POST_HOC_CHANCE) if x)
    n_sourced, neutral_chance = h["n_neutral_owner_sourced"], above_chance(h["per_seed_neutral"], n_owners)
    few = "" if n_sourced >= ENOUGH_NEUTRAL.bar else (
        f". Only {n_sourced} owner-sourced pieces (fewer than {ENOUGH_NEUTRAL.bar:g}): too few to judge, so the "
        "verdict is withheld (not comparable) unless the fraction fails anyway")
    sources = ", ".join(f"{k} {v}" for k, v in h["neutral_sources"].items()) or "none"
    return [
        Finding(STUDY, "prompted_owner_top_share_fraction_generated", h["fraction_generated"], rule=rule, scale=scale,
                conditions=(above_chance(h["per_seed_generated"], n_owners), *stability),
                post_hoc="; ".join(x for x in (chance_post_hoc, POST_HOC_AGREEMENT if stability else "") if x),
                note=f"close to true by construction: each piece's prompt is the owner's own template word, which only "
                     f"that owner's data makes likely (see source_owner_top_share_fraction_neutral for a test "
                     f"without that give-away). Generated pieces ({limit}) where the owner whose style was prompted "
                     f"gets the largest royalty share ({per_seed(h['per_seed_generated'])}); the paper shows this "
                     f"qualitatively (artists' styles in generated artworks) without one fraction. Mean share of the "
                     f"prompted owner {h['owner_share']:.2f}; chance level for the top owner is 1/{n_owners}. "
                     f"{h['pure_pieces']:.0%} of these pieces are wholly in the prompted owner's templates (mean "
                     f"style fraction {h['mean_style_fraction']:.2f}); the prompted owner is on top in "
                     f"{h['fraction_pure']:.2f} of those and {h['fraction_impure']:.2f} of the rest. The neutral "
                     f"pieces' data attribution, applied to these pieces, names the prompted owner for "
                     f"{h['attribution_agreement']:.2f} of them (a check of the attribution)"),
        Finding(STUDY, "source_owner_top_share_fraction_neutral", h["fraction_neutral"], rule=rule, scale=scale,
                conditions=(gate("owner-sourced neutral pieces", n_sourced, ENOUGH_NEUTRAL,
                                 combine(rule.grade(h["fraction_neutral"]), (neutral_chance,))), neutral_chance),
                post_hoc="; ".join(x for x in (chance_post_hoc, POST_HOC_NEUTRAL, GATE_NEUTRAL) if x),
                note=f"{h['n_neutral']} non-empty pieces sampled from the all-owners model after the same empty prompt (<s> "
                     f"alone), {limit}; each piece's source is the author whose training documents contain the most "
                     f"of its word 1- to 3-grams (ties broken by the longest shared run of words, mean "
                     f"{h['neutral_copied_words']:.1f} words), decided from the text alone, not from the Shapley "
                     f"values. Sources: {sources}; only owner-sourced pieces count "
                     f"({per_seed(h['per_seed_neutral'])}). Chance level is 1/{n_owners}{few}"),
        Finding(STUDY, "source_owner_top_share_fraction_held_out", h["fraction_held_out"], rule=rule, scale=scale,
                conditions=(above_chance(h["per_seed_held_out"], n_owners),), post_hoc=POST_HOC_CHANCE,
                note=f"held-out real documents of each owner: the author gets the largest share "
                     f"({per_seed(h['per_seed_held_out'])})"),
        Finding(STUDY, "top_owner_agreement_across_seeds", agreement,
                rule=STABLE_AGREEMENT if math.isfinite(agreement) else None, scale=scale,
                post_hoc=POST_HOC_AGREEMENT if n_seeds > 1 else "",
                note=f"coalition models retrained with {n_seeds} seeds on the same pieces: share of the "
                     f"{h['n_agreement_pieces']} owner-sourced pieces paid under some seed whose top owner is the same "
                     f"under every pair of seeds (public-control pieces and pieces unpaid under both seeds left out); "
                     f"mean |share difference| {h['mean_abs_share_difference']:.3f}, share correlation "
                     f"{h['share_correlation']:.3f}"),
        Finding(STUDY, "public_control_mean_total_value_nats", h["control_gain"], scale=scale,
                note=f"descriptive. Pieces prompted in the public (non-owner) style: v(N) - v({{}}) = sum of Shapley "
                     f"values, i.e. how much all owners' data raised their log-likelihood, against "
                     f"{h['owner_gain']:.1f} nats for pieces prompted in an owner's style (the owners' data should "
                     "not be needed for the public style; the share rule still renormalises whatever small positive "
                     "values such pieces get)"),
        Finding(STUDY, "monte_carlo_max_abs_error_nats", float(estimators["max_abs_error_vs_exact"].max()), scale=scale,
                note=f"descriptive. Permutation Monte Carlo vs exact Shapley values; "
                     f"{int(estimators['n_permutations'].max())} permutations at most, visiting "
                     f"{int(estimators['coalitions_visited'].max())} of {int(estimators['coalitions_total'].max())} "
                     "coalitions"),
    ]
