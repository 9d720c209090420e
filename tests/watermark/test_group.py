"""The watermark group end to end on the tiny profile: generation, calibration, the attack, findings."""

import dagster as dg
import numpy as np

from assets.watermark.study import calibrated_threshold, null_split
from tests.lm.dataset_inputs import assert_trained_on


def test_watermark_group_materializes_with_consistent_numbers(backbone):
    from assets.findings import check_findings_frame
    from resources.catalog import query

    result = backbone.materialize("watermark")  # reads the session's code corpus and lm_code pair (checked there)
    schemes = ["kgw", "kgw_strong", "unigram", "exp", "exp_edit"]

    calibration = result.asset_value("watermark_calibration").set_index("scheme")
    assert list(calibration.index) == schemes
    # threshold = the 99% quantile of the calibration half, so that half's own rate is at most 1% by construction
    assert (calibration["calibration_false_positive_rate"] <= 0.01).all()
    texts = result.asset_value("watermark_texts")
    assert len(texts) == len(schemes) * (6 + 200)  # tiny profile: 6 watermarked, 200 unwatermarked texts
    assert (calibration[["n_calibration", "n_held_out"]] == 100).all().all()
    null = texts[texts["role"] == "unwatermarked"]
    held_out = null_split(200, int(calibration["split_seed"].iloc[0]))
    assert not texts.loc[texts["role"] == "watermarked", "held_out"].any()
    for name in schemes:
        rows = null[null["scheme"] == name].sort_values("text_id")
        assert (rows["held_out"].to_numpy() == held_out).all(), name  # one split, recorded, for every scheme
        scores, threshold = rows["score"].to_numpy(), calibration.loc[name, "threshold"]
        assert threshold == calibrated_threshold(scores[~held_out], 0.01)  # set on the calibration half only
        assert np.isclose((scores[~held_out] > threshold).mean(),
                          calibration.loc[name, "calibration_false_positive_rate"])
        assert (scores[held_out] > threshold).sum() == calibration.loc[name, "held_out_false_positives"]
        assert np.isclose((scores[held_out] > threshold).mean(),
                          calibration.loc[name, "held_out_false_positive_rate"])
    marked = texts[texts["role"] == "watermarked"]
    # EXP and EXP-edit read the same texts
    assert (marked.loc[marked["scheme"] == "exp", "text"].to_numpy() ==
            marked.loc[marked["scheme"] == "exp_edit", "text"].to_numpy()).all()
    # the watermark shows: watermarked z-scores sit well above the unwatermarked ones
    for name in ("kgw", "kgw_strong", "unigram"):
        assert marked.loc[marked["scheme"] == name, "score"].mean() > null.loc[null["scheme"] == name, "score"].mean() + 1

    # the tiny profile walks with the FIM in-filler; its sentinels sit after the detectors' vocabulary
    infiller = result.asset_value("watermark_infiller")
    assert infiller["model_uri"].startswith("models:/wm-infiller/")
    assert_trained_on(backbone.resources["tracking"], infiller["model_uri"], "code_corpus")
    assert infiller["tokenizer_uri"] == backbone.value("lm_code_small")["tokenizer_uri"]  # the generator's
    vocab = int(calibration["vocab_size"].iloc[0])
    assert infiller["base_vocab"] == vocab and infiller["sentinel_ids"] == [vocab, vocab + 1, vocab + 2]
    assert np.isfinite(infiller["middle_nll"]) and np.isfinite(infiller["generator_middle_nll"])

    attack = result.asset_value("watermark_attack")
    assert len(attack) == len(schemes) * 6
    assert (attack["perturbation"] == "infill").all() and attack["accepted_steps"].sum() > 0
    assert attack["quality_kept"].all()
    assert (attack["oracle_logprob_after"] >= attack["oracle_logprob_before"] - 1e-9).all()
    freed = attack[attack["attack_success"]]
    assert (~freed["detected_after"] & freed["detected_before"]).all()
    assert (attack.loc[attack["accepted_steps"] == 0, "tokens_changed"] == 0).all()

    walk = result.asset_value("watermark_walk")
    # the paper's protocol: every text walks the whole budget (tiny profile: T = 8), detection measured after
    assert walk.groupby(["scheme", "text_id"])["step"].nunique().eq(9).all()
    assert (attack["steps"] == 8).all() and (attack["protocol"] == "fixed budget").all()
    start = walk[walk["step"] == 0].set_index(["scheme", "text_id"])["detected"]
    assert (start.to_numpy() == attack.set_index(["scheme", "text_id"]).loc[start.index, "detected_before"]).all()

    summary = result.asset_value("watermark_summary").set_index("scheme")
    for name in schemes:
        rows = attack[attack["scheme"] == name]
        assert np.isclose(summary.loc[name, "detection_rate_before"], rows["detected_before"].mean())
        assert np.isclose(summary.loc[name, "detection_rate_after"], rows["detected_after"].mean())
        # success after the full budget, read off the walk's last step, is the per-text table's
        last = walk[(walk["scheme"] == name) & (walk["step"] == 8)].set_index("text_id")["detected"]
        freed = rows.set_index("text_id")
        assert (freed["attack_success"] == (freed["detected_before"] & ~last[freed.index])).all()
        hit = freed[freed["detected_before"]]
        if len(hit):
            assert np.isclose(summary.loc[name, "attack_success_rate"], hit["attack_success"].mean())
            assert 0 <= summary.loc[name, "success_rate_quarter"] <= 1
    assert (summary["steps_budget"] == 8).all() and summary["earlier_budget_steps"].isna().all()

    assert (summary["perturbation"] == "infill").all()
    assert np.allclose(summary["infiller_middle_nll"], infiller["middle_nll"])
    findings = result.asset_value(dg.AssetKey(["watermark", "findings"]))
    assert check_findings_frame(findings) == []
    assert {"reference", "source", "rule", "post_hoc"} <= set(findings.columns)
    assert findings.loc[findings["metric"].str.startswith("quality_ratio"), "post_hoc"].str.contains("interval").all()
    assert findings["scale"].str.contains("FIM span in-filler").all()
    assert {f"attack_success_{s}" for s in schemes} <= set(findings["metric"])
    by_metric = findings.set_index("metric")["ours"]
    assert np.isclose(by_metric["detection_rate_before_kgw"], summary.loc["kgw", "detection_rate_before"])

    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    checks = {name: e.passed for name, e in evaluations.items()}
    for name in ("texts_valid", "calibration_holds", "attack_valid"):
        assert checks[name], name
    # the calibration check reads the held-out half, and says how many texts each half has
    held = {k: v.value for k, v in evaluations["calibration_holds"].metadata.items()}
    assert (held["n_calibration"], held["n_held_out"], held["fails_at_false_positives"]) == (100, 100, 5)
    assert np.isclose(held["worst_held_out_false_positive_rate"], calibration["held_out_false_positive_rate"].max())
    assert {"watermarked_text_detected", "attack_removes_watermarks"} <= set(checks)
    verdicts = findings.set_index("metric")["verdict"]
    assert checks["attack_removes_watermarks"] == (verdicts["attack_success_worst"] == "reproduced")

    catalog = query(backbone.root, "SELECT scheme, count(*) AS n FROM watermark.watermark_summary GROUP BY scheme")
    assert len(catalog) == len(schemes)
