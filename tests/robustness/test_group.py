"""The robustness group end to end on the tiny profile, against the session backbone and the chat models."""

import json
import math

import dagster as dg
import pytest

from tests.lm.dataset_inputs import assert_trained_on

CHAT_MODELS = ("safety_items", "safety_vocabulary", "chat_tokenizer", "chat_base", "chat_sft", "chat_rl",
               "chat_arithmetic_tasks", "chat_facts_tasks", "chat_instruction_tasks")


def _definitions():
    from pipelines.definitions import defs

    return list(defs.assets) + list(defs.asset_checks)


@pytest.fixture(scope="module")
def robustness_run(backbone):
    selection = dg.AssetSelection.assets(*CHAT_MODELS) | dg.AssetSelection.groups("robustness")
    result = dg.materialize(_definitions(), selection=selection, instance=backbone.instance,
                            resources=backbone.resources)
    assert result.success
    backbone.check_reads(result)
    return result


def test_robustness_group_materializes_with_consistent_numbers(robustness_run, backbone):
    from assets.findings import check_findings_frame
    from assets.robustness.grid import ATTACKS
    from resources.catalog import query

    items = robustness_run.asset_value("robustness_items")
    assert set(items["task"]) == {"arithmetic", "facts", "ambiguous"} and items["problem_id"].nunique() == 6
    defender = robustness_run.asset_value("robustness_defender")
    assert defender["registered_model"] == "robustness-defender" and defender["model_uri"].startswith("models:/")
    # the defender says whether RL moved its chat-rl base at all (chat_rl's own sentence)
    assert defender["base_rl_movement"] == robustness_run.asset_value("chat_rl")["rl_movement"]
    tracking = backbone.resources["tracking"]  # both runs list the task problems they trained on
    assert_trained_on(tracking, defender["model_uri"], "chat_instruction_tasks")
    assert_trained_on(tracking, robustness_run.asset_value("chat_rl")["model_uri"], "chat_facts_tasks", ("train",))
    runs = robustness_run.asset_value("robustness_runs")
    assert set(runs["defender"]) == {"robustness-defender", "planted"}
    assert set(runs["compute_level"]) == {0, 2, 4} and (runs["reasoning_tokens"] <= runs["compute_level"]).all()
    ours = runs[runs["defender"] == "robustness-defender"]
    assert set(ours["attack"]) == {"none", *ATTACKS}
    soft = ours[ours["attack"] == "soft_tokens"]
    assert len(soft) and (soft["soft_norm"] <= soft["soft_cap"] * (1 + 1e-5)).all()
    assert (ours["model_uri"] == defender["model_uri"]).all()
    assert not runs["attacker_sees_reasoning"].any()  # the default black box: answers only

    grid = robustness_run.asset_value("robustness_attack_success")
    rated = grid.dropna(subset=["success_rate"])
    assert rated["success_rate"].between(0, 1).all() and (rated["ci_low"] <= rated["success_rate"]).all()
    assert set(grid["adversary_budget"][grid["attack"] == "injection"]) == {0, 1, 2}
    # items_lost is each cell's shortfall against the lowest level of its row of the grid, and the findings
    # flag a lost item exactly when the grid records one for the attack they judge
    keys = ["defender", "attack", "goal", "task", "adversary_budget"]
    lowest_n = grid.sort_values("compute_level").groupby(keys)["n"].transform("first")
    assert (grid["items_lost"] == (lowest_n - grid["n"]).clip(lower=0)).all()
    accuracy = robustness_run.asset_value("robustness_clean_accuracy")
    assert set(accuracy["task"]) == {"arithmetic", "facts", "ambiguous"} and (accuracy["n"] == 2).all()
    assert len(robustness_run.asset_value("robustness_think_less")) == 9  # 3 tasks x 3 levels

    findings = robustness_run.asset_value(dg.AssetKey(["robustness", "findings"]))
    assert check_findings_frame(findings) == []
    verdicts = dict(zip(findings["metric"], findings["verdict"], strict=True))
    rows = findings.set_index("metric")
    top_budget = grid[grid["defender"] == defender["registered_model"]].groupby("attack")["adversary_budget"].max()
    for attack in ("many_shot", "injection", "soft_tokens", "adaptive"):
        drop = rows.loc[f"{attack}:success_drop"]
        assert "success_drop_ci95_low" in drop["conditions"]
        high = rows.loc[f"{attack}:success_at_highest_compute"]
        # the attack-worked gate withholds both verdicts when the attack never worked (below 0.10 at the lowest
        # compute), its measured success kept; the measured numbers stay in `ours`
        gates = [c for row in (drop, high) for c in json.loads(row["conditions"]) if c["name"] == "success_at_lowest_compute"]
        never = [c["withholds"] for c in gates]
        assert len(never) == 2 and never[0] == never[1], never  # the same gate on both
        assert all(c["withholds"] == (not c["value"] >= 0.10) for c in gates), gates
        assert math.isfinite(drop["ours"]) == math.isfinite(high["ours"])
        if never[0]:
            assert drop["verdict"] == high["verdict"] == "not comparable"
        cells = grid[(grid["attack"] == attack) & ~grid["ambiguous"] & (grid["adversary_budget"] == top_budget[attack])
                     & (grid["defender"] == defender["registered_model"])
                     & (grid["compute_level"] == grid["compute_level"].max())]
        assert ("FLAG" in drop["note"]) == bool(cells["items_lost"].sum() > 0), attack
    assert "adaptive attacker reads answers only" in rows.loc["adaptive:success_drop", "scale"]
    assert rows.loc["clean_accuracy_gain:arithmetic", "post_hoc"]
    assert verdicts["planted:injection_success_lowest_compute"] == "verified"
    assert verdicts["soft_tokens:max_norm_over_cap"] == "verified"
    checks = {e.check_name: e for e in robustness_run.get_asset_check_evaluations()}
    for name in ("items_valid", "runs_valid", "success_valid", "planted_defender_recovered", "soft_tokens_norm_capped"):
        assert checks[name].passed, name
    meta = next(e.materialization.metadata for e in robustness_run.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey("robustness_attack_success"))
    assert "data:image/png;base64" in meta["heatmaps"].value
    runs_meta = next(e.materialization.metadata for e in robustness_run.get_asset_materialization_events()
                     if e.asset_key == dg.AssetKey("robustness_runs"))
    assert runs_meta["oov_words"].value == "none"  # every attack word is a word of the chat tokenizer

    catalog = query(str(backbone.root), "SELECT attack, count(*) AS n FROM robustness.robustness_attack_success "
                                        "GROUP BY attack")
    assert set(catalog["attack"]) == set(ATTACKS)
