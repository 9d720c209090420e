"""The uncertainty group end to end on the tiny profile: token table, labels, probes, ICLT, findings."""

import math

import dagster as dg
import numpy as np
import pandas as pd
import pytest


def test_uncertainty_group_materializes_with_consistent_numbers(backbone):
    from assets.findings import check_findings_frame
    from assets.uncertainty.labels import proxy_labels, quantile_thresholds
    from resources.catalog import query

    result = backbone.materialize("uncertainty")  # reads the session's corpora and lm pairs (checked there)

    tokens = result.asset_value("uncertainty_tokens")
    assert set(tokens["dataset"]) == {"facts", "code", "code_pair_on_facts"}
    facts = tokens[tokens["dataset"] == "facts"]
    assert facts["true_entropy"].notna().all() and facts["is_fact"].any()
    assert (tokens["small_entropy"] <= np.log(tokens["vocab_size"]) + 1e-4).all()
    small = backbone.value("lm_facts_small")
    assert (facts["small_model"] == small["model_uri"]).all()
    assert len(facts["hidden_l0"].iloc[0]) == small["model_size"]["d_model"]

    labels = result.asset_value("uncertainty_labels")
    assert len(labels) == len(tokens)
    stored = next(e.materialization.metadata["thresholds"].value for e in result.get_asset_materialization_events()
                  if e.asset_key == dg.AssetKey("uncertainty_labels"))
    for dataset, rows in labels.groupby("dataset"):  # the tiny profile's thresholds come from quantiles
        th = quantile_thresholds(rows["small_entropy"].to_numpy(), rows["large_entropy"].to_numpy())
        assert (proxy_labels(rows["small_entropy"], rows["large_entropy"], th) == rows["label"]).all(), dataset
        # recomputed here with np.quantile: floor = median H_s; above it, the lower quartiles of H_l and |dH|
        hs, hl = rows["small_entropy"].to_numpy(dtype=float), rows["large_entropy"].to_numpy(dtype=float)
        floor = np.quantile(hs, 0.5)
        above = hs >= floor
        zero, delta = np.quantile(hl[above], 0.25), np.quantile(np.abs(hl - hs)[above], 0.25)
        expected = {"entropy_min": floor, "zero_entropy": zero, "entropy_delta": delta}
        assert {k: stored[dataset][k] for k in expected} == pytest.approx(expected, abs=1e-8), dataset
        epistemic = above & (hl <= zero)
        aleatoric = above & ~epistemic & (np.abs(hl - hs) <= delta)
        assert (rows["label"].to_numpy() == np.where(epistemic, 1, np.where(aleatoric, 0, -1))).all(), dataset
    # tiny profile: no balancing (its models label by token id alone), so every labelled token is kept
    assert (labels["kept"] == (labels["label"] >= 0)).all()
    assert labels.loc[labels["dataset"] == "facts", "label"].value_counts().min() >= 10

    auc = result.asset_value("uncertainty_probe_auc")
    own = auc[(auc["train_dataset"] == "facts") & (auc["test_dataset"] == "facts") & (auc["target"] == "proxy")]
    assert {"entropy", "linear", "mlp"} <= set(own["method"])
    assert set(own.loc[own["method"] == "linear", "layer"]) >= {0, small["model_size"]["n_layers"]}
    finite = auc["auc"].dropna()
    assert len(finite) and finite.between(0, 1).all()

    iclt = result.asset_value("uncertainty_iclt")
    assert len(iclt) and (iclt["mi"] >= 0).all() and (iclt["mi"] <= iclt["h_y"] + 1e-9).all()
    assert (iclt["h_y"] <= math.log(4) + 1e-9).all()  # tiny profile: top_k = 4 candidates
    assert iclt["kept"].any()

    frame = result.asset_value(dg.AssetKey(["uncertainty", "findings"]))
    assert check_findings_frame(frame) == []
    assert {"reference", "source", "rule", "post_hoc"} <= set(frame.columns)
    findings = frame.set_index("metric")
    # tiny profile: both pairs label by their own quantiles, a post-hoc choice every probe finding records
    assert findings.loc["linear_probe_auc_facts", "post_hoc"].startswith("facts labels: thresholds from this run")
    assert findings.loc["linear_probe_auc_facts", "source"] == "paper"
    assert findings.loc["entropy_baseline_auc_facts", "verdict"] == "not comparable"
    assert {"linear_probe_auc_facts", "mlp_probe_auc_facts", "entropy_baseline_auc_facts",
            "proxy_truth_agreement", "iclt_auc_facts"} <= set(findings.index)
    layer = int(own.loc[own["method"] == "linear", "layer"].max())
    expected = own[(own["method"] == "linear") & (own["layer"] == layer)]["auc"].iloc[0]
    ours = findings.loc["linear_probe_auc_facts", "ours"]
    assert (math.isnan(ours) and math.isnan(expected)) or math.isclose(ours, expected)

    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["token_table_valid"] and checks["classes_balanced_per_token"]
    assert {"probes_beat_entropy_baseline", "iclt_above_chance", "probes_transfer_across_domains"} <= set(checks)
    passed = set(findings.index[findings["verdict"] == "reproduced"])
    assert checks["iclt_above_chance"] == ("iclt_auc_facts" in passed)
    catalog = query(backbone.root, "SELECT dataset, count(*) AS n FROM uncertainty.uncertainty_labels GROUP BY dataset")
    assert isinstance(catalog, pd.DataFrame) and len(catalog) == 3
