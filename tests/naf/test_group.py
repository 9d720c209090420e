"""The naf group end to end on the tiny profile: shards, three models, evaluation, findings."""

import math

import dagster as dg
import pandas as pd

from tests.lm.dataset_inputs import dataset_inputs


def test_naf_group_materializes_with_consistent_numbers(backbone):
    from assets.findings import check_findings_frame
    from assets.naf.findings import REVIEW, SAMPLE_REVIEW
    from resources.catalog import query

    result = backbone.materialize("naf")  # reads the session's corpora (checked there)

    shards = result.asset_value("naf_shards")
    documents = backbone.value("facts_documents")
    train = documents[documents["split"] == "train"].merge(shards, on="doc_id", suffixes=("", "_shard"))
    assert len(train) == (documents["split"] == "train").sum()  # tiny profile: every train document is used
    assert (train.groupby("text")["shard"].nunique() == 1).all()
    assert set(shards.loc[shards["protected"], "shard"]) == {0, 1}

    records = {r: result.asset_value(f"naf_{r}") for r in ("q1", "q2", "p")}
    assert [records[r]["registered_model"] for r in ("q1", "q2", "p")] == ["naf-q1", "naf-q2", "naf-p"]
    assert all(rec["model_uri"].startswith("models:/naf-") for rec in records.values())
    # p trains on both shards' texts, each q on its own
    assert records["p"]["train_texts"] == records["q1"]["train_texts"] + records["q2"]["train_texts"]
    tracking = backbone.resources["tracking"]  # each run lists its shard's texts and the validation documents
    inputs = {r: dataset_inputs(tracking, rec["model_uri"]) for r, rec in records.items()}
    assert {r: i["train"] for r, i in inputs.items()} == {r: (f"naf-{r}-train", "naf_shards") for r in records}
    assert {i["validation"] for i in inputs.values()} == {("naf-validation", "facts_documents")}

    reg = result.asset_value("naf_regurgitation")
    n_protected = int(documents["protected"].sum())
    assert set(reg["model"]) == {"p", "q1", "q2", "q_holder", "q_safe", "cp_delta", "cp_kl", "cp_k"}
    assert reg.groupby("model")["doc_id"].nunique().eq(n_protected).all()
    scored = reg[reg["model"] != "cp_k"]
    assert (scored["logprob_bits"] <= 0).all() and scored["logprob_bits"].notna().all()
    assert (reg["sampled_exact_rate"] <= reg["sampled_near_exact_rate"]).all()
    # q_holder / q_safe are q1 / q2 regrouped per document: the holder is the shard that saw the document
    by = reg.set_index(["model", "doc_id"])["logprob_bits"]
    for doc_id, shard in shards.loc[shards["protected"], ["doc_id", "shard"]].itertuples(index=False):
        holder, safe = ("q1", "q2") if shard == 0 else ("q2", "q1")
        assert by[("q_holder", doc_id)] == by[(holder, doc_id)]
        assert by[("q_safe", doc_id)] == by[(safe, doc_id)]
        # CP-Δ puts at most 1/Z_t times each q's probability on each token: log2 p(y) <= log2 q_i(y) + sum -log2 Z_t
        delta = reg[(reg["model"] == "cp_delta") & (reg["doc_id"] == doc_id)].iloc[0]
        assert delta["logprob_bits"] <= min(by[("q1", doc_id)], by[("q2", doc_id)]) + delta["log_normaliser_bits"] + 1e-6
        assert delta["k_true_bits"] <= delta["log_normaliser_bits"] + 1e-6

    k_values = result.asset_value("naf_k_values")
    delta = k_values[k_values["model"] == "cp_delta"]
    assert (delta["k_bits"] <= delta["log_normaliser_bits"] + 1e-4).all()
    assert (delta["log_normaliser_bits"] >= 0).all()
    cpk = k_values[k_values["model"] == "cp_k"]
    assert (cpk["within_k"] == (cpk["k_bits"] <= 8.0)).all()  # tiny profile's k_bits

    perplexity = result.asset_value("naf_perplexity").set_index("model")
    assert set(perplexity.index) == {"p", "q1", "q2", "cp_delta", "cp_kl"}
    assert (perplexity["perplexity"] >= 1).all()
    assert math.isclose(perplexity.loc["p", "perplexity_ratio_vs_p"], 1.0)

    findings = result.asset_value(dg.AssetKey(["naf", "findings"]))
    assert check_findings_frame(findings) == []
    assert {"reference", "source", "rule", "post_hoc"} <= set(findings.columns)
    # tiny profile: p trains on the whole corpus, nothing cut; only the review's stricter rules are recorded
    assert (findings["post_hoc"].isin(["", REVIEW, f"{REVIEW}; {SAMPLE_REVIEW}"])).all()
    assert records["p"]["n_public_documents"] is None
    assert {"regurgitation_factor_cp_delta", "perplexity_cost_cp_delta", "median_k_bits_cp_delta"} <= set(findings["metric"])
    factor = findings.set_index("metric").loc["regurgitation_factor_cp_delta", "ours"]
    summary = result.asset_value("naf_regurgitation_by_duplication")
    top = summary[summary["duplicate_count"] == summary["duplicate_count"].max()].set_index("model")
    assert math.isclose(factor, top.loc["p", "mean_p_exact"] / top.loc["cp_delta", "mean_p_exact"], rel_tol=1e-9)

    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    for name in ("shards_keep_copies_together", "regurgitation_valid", "regurgitation_by_duplication_valid",
                 "k_values_valid", "perplexity_valid"):
        assert checks[name], name
    assert {"combined_models_regurgitate_far_less", "small_perplexity_cost", "k_stays_small"} <= set(checks)
    verdicts = findings.set_index("metric")["verdict"]
    assert checks["small_perplexity_cost"] == (verdicts["perplexity_cost_cp_delta"] == "reproduced")

    catalog = query(backbone.root, "SELECT model, count(*) AS n FROM naf.naf_perplexity GROUP BY model")
    assert isinstance(catalog, pd.DataFrame) and len(catalog) == 5
