"""The royalties findings on hand-made headline numbers: a fraction barely above chance is no partial
reproduction, and the seed agreement counts only owner-sourced pieces someone is paid for."""

import json

import numpy as np
import pandas as pd
import pytest

from assets.findings import check_findings_frame, findings_frame
from assets.royalties.findings import above_chance_p_value, royalties_findings
from assets.royalties.royalty_shares import seed_stability

ESTIMATORS = pd.DataFrame({"max_abs_error_vs_exact": [0.1], "n_permutations": [100], "coalitions_visited": [16],
                           "coalitions_total": [16]})


def headline(hits: int, n_pieces: int = 16, agreement: float = 0.9) -> dict:
    """Every fraction at hits / n_pieces under each of two seeds."""
    per_seed = [{"seed": s, "fraction": hits / n_pieces, "n_pieces": n_pieces} for s in (0, 1)]
    return {"fraction_generated": hits / n_pieces, "fraction_neutral": hits / n_pieces,
            "fraction_held_out": hits / n_pieces, "per_seed_generated": per_seed, "per_seed_neutral": per_seed,
            "per_seed_held_out": per_seed, "n_neutral": n_pieces, "n_neutral_owner_sourced": n_pieces,
            "neutral_sources": {"owner_1": n_pieces}, "neutral_copied_words": 3.0, "attribution_agreement": 1.0,
            "owner_share": 0.5, "sentence_limit": 1, "pure_pieces": 0.5, "mean_style_fraction": 0.8,
            "fraction_pure": 0.5, "fraction_impure": 0.5, "control_gain": 0.1, "owner_gain": 5.0, "n_seeds": 2,
            "mean_abs_share_difference": 0.05, "top_owner_agreement": agreement, "n_agreement_pieces": 30,
            "share_correlation": 0.9}


def verdicts(h: dict) -> pd.Series:
    frame = findings_frame(royalties_findings(h, ESTIMATORS, n_owners=4, n_seeds=2, scale="unit"))
    assert check_findings_frame(frame) == []
    return frame.set_index("metric")["verdict"]


FRACTIONS = ["prompted_owner_top_share_fraction_generated", "source_owner_top_share_fraction_neutral",
             "source_owner_top_share_fraction_held_out"]


def test_a_fraction_just_above_chance_is_not_partially_reproduced():
    # 5 of 16 (0.31) against chance 0.25: the old partial bar 0.26 said "partially"; the binomial p is ~0.37
    assert above_chance_p_value(headline(5)["per_seed_generated"], 4) == pytest.approx(0.3698, abs=1e-3)
    assert all(verdicts(headline(5))[m] == "not reproduced" for m in FRACTIONS)
    # 7 of 16 (0.44): p 0.08, still not distinguishable from chance; 8 of 16 (0.50): p 0.027, partially
    assert all(verdicts(headline(7))[m] == "not reproduced" for m in FRACTIONS)
    assert all(verdicts(headline(8))[m] == "partially reproduced" for m in FRACTIONS)
    assert all(verdicts(headline(12))[m] == "reproduced" for m in FRACTIONS)


def test_most_of_too_few_pieces_is_not_reproduced():
    # 2 of 3 is "most", but with 3 pieces chance gives it 16% of the time
    assert all(verdicts(headline(2, n_pieces=3))[m] == "not reproduced" for m in FRACTIONS)


def test_every_seed_must_beat_chance():
    h = headline(12)
    h["per_seed_neutral"] = [{"seed": 0, "fraction": 12 / 16, "n_pieces": 16},
                             {"seed": 1, "fraction": 5 / 16, "n_pieces": 16}]
    assert verdicts(h)["source_owner_top_share_fraction_neutral"] == "not reproduced"


def test_review_is_recorded_as_post_hoc():
    frame = findings_frame(royalties_findings(headline(12), ESTIMATORS, 4, 2, "unit")).set_index("metric")
    for metric in [*FRACTIONS, "top_owner_agreement_across_seeds"]:
        assert "rule made stricter after review (30 Nov 2026), not tuned to pass" in frame.loc[metric, "post_hoc"]


def shapley_table(tops: dict[str, tuple[str | None, str | None]], sources: dict[str, str]) -> pd.DataFrame:
    """Rows (seed, piece, owner) with a share of 1 for the given top owner per seed (None: nobody paid)."""
    rows = []
    for piece, by_seed in tops.items():
        for seed, top in enumerate(by_seed):
            for owner in ("owner_1", "owner_2"):
                rows.append({"seed": seed, "piece_id": piece, "kind": "generated", "source_owner": sources[piece],
                             "owner": owner, "royalty_share": float(owner == top), "is_top_owner": owner == top})
    return pd.DataFrame(rows)


def test_agreement_leaves_out_unpaid_pieces_and_public_controls():
    # 9 pieces unpaid under both seeds and 1 owner piece whose top owner flips: the old agreement was 0.9
    tops = {f"u{i}": (None, None) for i in range(9)} | {"flip": ("owner_1", "owner_2")}
    table = shapley_table(tops, {p: "owner_1" for p in tops})
    stable = seed_stability(table)
    assert stable["top_owner_agreement"] == 0.0 and stable["n_agreement_pieces"] == 1
    # public-control pieces do not count, whatever their top owner; paid under one seed only is a disagreement
    tops = {"a": ("owner_1", "owner_1"), "b": ("owner_2", None), "pub1": ("owner_1", "owner_1"),
            "pub2": ("owner_2", "owner_2")}
    table = shapley_table(tops, {"a": "owner_1", "b": "owner_2", "pub1": "public", "pub2": "public"})
    stable = seed_stability(table)
    assert stable["top_owner_agreement"] == 0.5 and stable["n_agreement_pieces"] == 2
    # nothing left to compare: not measured
    only_public = shapley_table({"pub": ("owner_1", "owner_1")}, {"pub": "public"})
    assert np.isnan(seed_stability(only_public)["top_owner_agreement"])


def test_too_few_owner_sourced_neutral_pieces_withhold_only_a_pass():
    # 4 of 4 owner-sourced neutral pieces on top under both seeds: binomial p 0.25^4 = 0.004 passes, but 4 pieces
    # are under the minimum of 5, so the fraction's pass is withheld (it read "not reproduced" before the review)
    h = headline(12) | {"n_neutral_owner_sourced": 4, "fraction_neutral": 1.0,
                        "per_seed_neutral": [{"seed": s, "fraction": 1.0, "n_pieces": 4} for s in (0, 1)]}
    assert above_chance_p_value(h["per_seed_neutral"], 4) == pytest.approx(0.25 ** 4)
    frame = findings_frame(royalties_findings(h, ESTIMATORS, 4, 2, "unit")).set_index("metric")
    row = frame.loc["source_owner_top_share_fraction_neutral"]
    assert row["verdict"] == "not comparable" and "Only 4 owner-sourced pieces" in row["note"]
    gate = json.loads(row["conditions"])[0]
    assert (gate["name"], gate["value"], gate["bar"], gate["withholds"]) == ("owner-sourced neutral pieces", 4, 5, True)
    assert verdicts(h)["prompted_owner_top_share_fraction_generated"] == "reproduced"  # the others unaffected
    # five pieces are enough: the same numbers pass
    five = h | {"n_neutral_owner_sourced": 5,
                "per_seed_neutral": [{"seed": s, "fraction": 1.0, "n_pieces": 5} for s in (0, 1)]}
    assert verdicts(five)["source_owner_top_share_fraction_neutral"] == "reproduced"
    # a fraction that fails anyway (1 of 4 on top, chance) stays not reproduced: the gate withholds only a pass
    failing = h | {"fraction_neutral": 0.25, "per_seed_neutral": [{"seed": s, "fraction": 0.25, "n_pieces": 4}
                                                                   for s in (0, 1)]}
    assert verdicts(failing)["source_owner_top_share_fraction_neutral"] == "not reproduced"


def test_prompted_fraction_needs_the_top_owner_to_agree_across_seeds():
    # 12 of 16 on top under both seeds passes alone, but with the top owner the same for only half the pieces the
    # shares are not stable: the prompted fraction and the agreement finding are not reproduced
    assert verdicts(headline(12, agreement=0.8))["prompted_owner_top_share_fraction_generated"] == "reproduced"
    shaky = verdicts(headline(12, agreement=0.5))
    assert shaky["prompted_owner_top_share_fraction_generated"] == "not reproduced"
    assert shaky["top_owner_agreement_across_seeds"] == "not reproduced"
    # the neutral and held-out fractions do not depend on it
    assert shaky["source_owner_top_share_fraction_neutral"] == "reproduced"
    assert shaky["source_owner_top_share_fraction_held_out"] == "reproduced"
    # one seed: stability is not measured, so it is no condition
    frame = findings_frame(royalties_findings(headline(12, agreement=0.5), ESTIMATORS, 4, 1, "unit"))
    by = frame.set_index("metric")
    assert by.loc["prompted_owner_top_share_fraction_generated", "verdict"] == "reproduced"
    assert "top_owner_agreement" not in by.loc["prompted_owner_top_share_fraction_generated", "conditions"]
