"""The findings: rules stated before the numbers, able to fail either way."""

import pandas as pd

from assets.alignment.findings import build_findings

CHECKS = {"judge_agreement": 1.0, "policy_in_prompts": 0.0, "safety_data": 0.0, "differ": 0.0}


def _table(da: dict, direct: dict, sft: dict | None = None) -> pd.DataFrame:
    rows = []
    for method, values in (("deliberative_rl", da), ("direct_sft", direct), ("deliberative_sft", sft or da)):
        rows += [{"method": method, "model": method, "model_uri": "", "evaluation": "", "metric": k, "value": v,
                  "n": 10} for k, v in values.items()]
    return pd.DataFrame(rows)


def _by_metric(table, checks=CHECKS):
    return {f.metric: f for f in build_findings(table, checks, "test")}


GOOD = {"goodness@0.1": 0.9, "not_overrefuse_lookalike": 0.9, "not_unsafe_held_out": 0.9,
        "not_unsafe_ood_encoding": 0.9, "refused_held_out": 0.9, "cites_right_clause": 0.95}
BAD = {k: 0.5 for k in GOOD}


def test_deliberative_alignment_that_dominates_reproduces_the_claims():
    found = _by_metric(_table(GOOD, BAD))
    for metric in ("deliberative_dominates_direct_sft", "deliberative_generalises_to_held_out_families",
                   "deliberative_generalises_to_encodings", "reasoning_cites_right_clause", "rl_stage_keeps_robustness"):
        assert found[metric].verdict == "reproduced", metric
    assert {f.verdict for f in found.values() if f.source == "code check"} == {"verified"}
    assert found["direct_sft:goodness@0.1"].verdict == "not comparable"


def test_no_gain_or_a_loss_fails():
    found = _by_metric(_table(BAD, GOOD))
    assert found["deliberative_dominates_direct_sft"].verdict == "not reproduced"
    assert found["deliberative_generalises_to_encodings"].verdict == "not reproduced"
    tie = _by_metric(_table(GOOD, GOOD))  # equal on both axes: no strict gain, so no domination
    assert tie["deliberative_dominates_direct_sft"].verdict == "not reproduced"
    assert tie["deliberative_generalises_to_held_out_families"].verdict == "partially reproduced"


def test_code_checks_fail_when_the_pipeline_breaks_its_promises():
    found = _by_metric(_table(GOOD, BAD), {**CHECKS, "judge_agreement": 0.98, "policy_in_prompts": 2.0})
    assert found["judge_agrees_with_planted_mistakes"].verdict == "not verified"
    assert found["policy_in_sft_prompts"].verdict == "not verified"
