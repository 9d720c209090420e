"""The royalties group materialized on the tiny profile through `dagster.materialize`, its numbers read back
through the warehouse, the DuckDB catalog and the MLflow registry."""

import json
import math

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets.findings import check_findings_frame
from resources.catalog import query
from tests.lm.dataset_inputs import assert_trained_on


@pytest.fixture(scope="module")
def group(backbone):
    """The royalties group against the session's corpora (its reads of them are checked there)."""
    return backbone.materialize("royalties"), backbone.root, backbone.resources


def registered_by(tracking, model_uri: str, run_id: str) -> None:
    """``model_uri`` names the newest version of its model, registered from an MLflow run of Dagster run ``run_id``."""
    name, version = model_uri.removeprefix("models:/").split("/")
    versions = tracking.client.search_model_versions(f"name = '{name}'")
    assert version == str(max(int(v.version) for v in versions)), (model_uri, [v.version for v in versions])
    run = tracking.client.get_run(tracking.client.get_model_version(name, version).run_id)
    assert run.data.tags["dagster.run_id"] == run_id, model_uri


def test_checks(group):
    result, _, _ = group
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    for name in ("pieces_valid", "coalition_values_valid", "shapley_valid", "revenue_split_valid"):
        assert evaluations[name].passed, (name, evaluations[name].metadata)
    for name in ("prompted_owner_gets_largest_share", "neutral_source_owner_gets_largest_share"):
        finding = evaluations[name]  # WARN: a finding, reported either way
        assert finding.severity == dg.AssetCheckSeverity.WARN
        ours = finding.metadata["ours"].value
        assert math.isnan(ours) or 0.0 <= ours <= 1.0
        assert finding.passed == (finding.metadata["verdict"].value == "reproduced")


def test_every_coalition_trained_once_per_seed(group):
    from assets.royalties.defs import RoyaltiesGameConfig

    _, root, _ = group
    cfg = RoyaltiesGameConfig()
    models = query(root, "SELECT seed, coalition, trained, n_members FROM royalties.royalties_coalition_models")
    n_owners = int(models["n_members"].max())
    assert len(models) == cfg.n_seeds * 2**n_owners and not models.duplicated(["seed", "coalition"]).any()
    assert models["trained"].sum() == cfg.n_seeds * (2**n_owners - 1)  # the empty coalition is the base model
    estimators = query(root, "SELECT estimator, coalitions_trained FROM royalties.royalties_estimators")
    assert (estimators["estimator"] == "exact").all() and (estimators["coalitions_trained"] == 2**n_owners - 1).all()


def test_values_and_efficiency(group):
    _, root, _ = group
    values = query(root, "SELECT seed, piece_id, coalition, n_members, log_likelihood, value "
                         "FROM royalties.royalties_coalition_values")
    pieces = query(root, "SELECT piece_id, kind, source_owner FROM royalties.royalties_pieces")
    n_owners = int(values["n_members"].max())
    assert len(values) == values["seed"].nunique() * 2**n_owners * len(pieces)
    assert (values["log_likelihood"] < 0).all()
    # v(S) = ll(S) - ll({}), recomputed from the stored log-likelihoods for every coalition (the full set included)
    empty = values[values["coalition"] == "{}"].set_index(["seed", "piece_id"])["log_likelihood"]
    assert len(empty) == values["seed"].nunique() * len(pieces)
    base = empty.reindex(pd.MultiIndex.from_frame(values[["seed", "piece_id"]])).to_numpy()
    np.testing.assert_allclose(values["value"], values["log_likelihood"] - base, rtol=0, atol=1e-6)
    full = values[values["n_members"] == n_owners]
    assert len(full) == len(empty) and (full["value"] != 0).all()  # the owners' data moves every piece
    gap = query(root, """
        SELECT max(abs(s.total - v.value)) AS gap FROM
          (SELECT seed, piece_id, sum(phi) AS total FROM royalties.royalties_shapley GROUP BY 1, 2) s
          JOIN royalties.royalties_coalition_values v USING (seed, piece_id)
        WHERE v.n_members = (SELECT max(n_members) FROM royalties.royalties_coalition_values)""")
    assert gap["gap"].iloc[0] < 1e-6
    shares = query(root, "SELECT seed, piece_id, sum(royalty_share) AS s, sum(is_top_owner::INT) AS tops "
                         "FROM royalties.royalties_shapley GROUP BY 1, 2")
    assert np.all(np.isclose(shares["s"], 1.0) | np.isclose(shares["s"], 0.0)) and (shares["tops"] <= 1).all()
    kinds = pieces.groupby("kind").size()
    assert kinds["generated"] > 0 and kinds["held_out"] > 0 and kinds["neutral"] > 0


def test_values_are_reproducible_from_the_registered_models(group):
    """Load the base and all-owners models by their exact URIs and recompute two rows of the value table."""
    from assets.lm.registry import load_model
    from assets.royalties.pieces import piece_log_likelihoods

    result, root, resources = group
    tracking = resources["tracking"]
    base_record = result.output_for_node("royalties_base_model")
    assert base_record["model_uri"].startswith("models:/royalties-facts-base/")
    registered_by(tracking, base_record["model_uri"], result.run_id)
    pieces = query(root, "SELECT piece_id, text, generator_uri FROM royalties.royalties_pieces ORDER BY piece_id")
    generator_uri = pieces.loc[pieces["generator_uri"] != "", "generator_uri"].unique()
    assert len(generator_uri) == 1 and generator_uri[0].startswith("models:/royalties-facts-all-owners/")
    registered_by(tracking, generator_uri[0], result.run_id)
    for uri in (base_record["model_uri"], generator_uri[0]):  # each run lists the documents it trained on
        assert_trained_on(tracking, uri, "facts_documents")
    values = query(root, "SELECT piece_id, coalition, log_likelihood FROM royalties.royalties_coalition_values "
                         "WHERE seed = 0 ORDER BY piece_id")
    grand = values["coalition"][values["coalition"].str.count(",").idxmax()]
    for uri, coalition in ((base_record["model_uri"], "{}"), (generator_uri[0], grand)):
        model, tokenizer = load_model(uri, tracking.resolved_tracking_uri)
        expected = values[values["coalition"] == coalition]["log_likelihood"].to_numpy()
        np.testing.assert_allclose(piece_log_likelihoods(model, tokenizer, pieces["text"].tolist()), expected,
                                   rtol=1e-4, atol=1e-3)


def test_coalition_runs_logged_to_mlflow(group):
    _, root, resources = group
    client = resources["tracking"].client
    models = query(root, "SELECT mlflow_run_id FROM royalties.royalties_coalition_models WHERE trained")
    runs = [client.get_run(r) for r in models["mlflow_run_id"]]
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
    assert len(parents) == 1 and all("final_val_loss" in r.data.metrics and "mean_value" in r.data.metrics
                                     for r in runs)
    assert {r.data.params["coalition"] for r in runs} >= {"{owner_1}", "{owner_2}"}


def test_revenue_and_findings(group):
    from assets.royalties.royalty_shares import top_owner_fraction

    _, root, _ = group
    split = query(root, "SELECT seed, kind, owner, n_pieces, revenue FROM royalties.royalties_revenue_split")
    totals = split.groupby(["seed", "kind"]).agg(revenue=("revenue", "sum"), n=("n_pieces", "first"))
    np.testing.assert_allclose(totals["revenue"], totals["n"])  # revenue_per_piece = 1
    findings = query(root, "SELECT * FROM royalties.findings")
    assert check_findings_frame(findings) == []
    assert {"reference", "source", "rule", "post_hoc"} <= set(findings.columns)
    findings = findings.set_index("metric")
    assert len(findings) == 6
    shapley = query(root, "SELECT seed, piece_id, kind, source_owner, owner, is_top_owner, royalty_share "
                          "FROM royalties.royalties_shapley")
    _verdicts_follow_recomputed_numbers(findings, shapley, query(root, "SELECT piece_id, kind, source_owner FROM "
                                                                       "royalties.royalties_pieces"))
    expected = top_owner_fraction(shapley, "generated")["fraction"].mean()
    assert findings.loc["prompted_owner_top_share_fraction_generated", "ours"] == pytest.approx(expected)
    assert "by construction" in findings.loc["prompted_owner_top_share_fraction_generated", "note"]
    assert "after seeing" in findings.loc["prompted_owner_top_share_fraction_generated", "post_hoc"]
    neutral = top_owner_fraction(shapley, "neutral")["fraction"]
    ours = findings.loc["source_owner_top_share_fraction_neutral", "ours"]
    assert ours == pytest.approx(neutral.mean()) if len(neutral) else math.isnan(ours)
    assert findings.loc["source_owner_top_share_fraction_neutral", "comparison"] == "at_least"
    union = query(root, "SELECT count(*) AS n FROM findings WHERE study = 'royalties'")
    assert union["n"].iloc[0] == 6


def _verdicts_follow_recomputed_numbers(findings, shapley, pieces):
    """Each fraction's verdict from numbers recomputed here: the per-seed fractions, their binomial p-values
    against chance, the seed agreement and the owner-sourced neutral count, judged by the stated bars."""
    from scipy.stats import binomtest

    from assets.royalties.findings import ENOUGH_NEUTRAL, MOST, SIGNIFICANCE, STABLE_AGREEMENT
    from assets.royalties.royalty_shares import seed_stability

    owners = set(shapley["owner"])
    n_owners, n_seeds = len(owners), shapley["seed"].nunique()
    agreement = seed_stability(shapley)["top_owner_agreement"]
    stable = n_seeds < 2 or agreement >= STABLE_AGREEMENT.bar
    n_sourced = int(pieces.loc[pieces["kind"] == "neutral", "source_owner"].isin(owners).sum())
    for metric, kind, extra in (("prompted_owner_top_share_fraction_generated", "generated", stable),
                                ("source_owner_top_share_fraction_neutral", "neutral", True),
                                ("source_owner_top_share_fraction_held_out", "held_out", True)):
        own = shapley[(shapley["kind"] == kind) & (shapley["owner"] == shapley["source_owner"])]
        per_seed = own.groupby("seed")["is_top_owner"].agg(["sum", "size"])
        fraction = float((per_seed["sum"] / per_seed["size"]).mean()) if len(per_seed) else math.nan
        p_values = [binomtest(int(k), int(n), 1 / n_owners, alternative="greater").pvalue
                    for k, n in zip(per_seed["sum"], per_seed["size"], strict=True)]
        chance = bool(p_values) and max(p_values) <= SIGNIFICANCE
        grade = ("not comparable" if math.isnan(fraction) else "reproduced" if fraction >= MOST
                 else "partially reproduced" if fraction >= round(1 / n_owners, 2) else "not reproduced")
        expected = grade if grade == "not comparable" or (chance and extra) else "not reproduced"
        if kind == "neutral" and n_sourced < ENOUGH_NEUTRAL.bar and expected != "not reproduced":
            expected = "not comparable"  # too few owner-sourced pieces: the gate withholds the pass
        assert findings.loc[metric, "ours"] == pytest.approx(fraction, nan_ok=True), metric
        assert findings.loc[metric, "verdict"] == expected, (metric, fraction, p_values, agreement, n_sourced)
    expected = "not comparable" if math.isnan(agreement) else (
        "reproduced" if agreement >= STABLE_AGREEMENT.bar else "not reproduced")
    assert findings.loc["top_owner_agreement_across_seeds", "verdict"] == expected
    for metric in ("public_control_mean_total_value_nats", "monte_carlo_max_abs_error_nats"):  # descriptive
        assert findings.loc[metric, "verdict"] == "not comparable"


def test_neutral_pieces_share_one_prompt_and_are_attributed_by_their_text(group):
    """Neutral pieces: the same empty prompt for every owner; the source is whose train data the text copies."""
    from assets.royalties.pieces import attribute_source, author_corpus

    _, root, _ = group
    pieces = query(root, "SELECT piece_id, kind, source_owner, prompt, text, copied_words, attributed_source "
                         "FROM royalties.royalties_pieces WHERE kind = 'neutral'")
    # the documents this run's pieces were built from (the shared warehouse may hold other materializations)
    upstream = json.loads(query(root, "SELECT upstream FROM royalties.royalties_pieces LIMIT 1")["upstream"].iloc[0])
    (read,) = [u.split(":", 1)[1] for u in upstream if u.startswith("corpora.facts_documents:")]
    documents = query(root, "SELECT author, split, text FROM corpora.facts_documents_history "
                            f"WHERE materialization_id = '{read}'")
    assert len(pieces) > 0 and (pieces["prompt"] == "").all() and (pieces["copied_words"] >= 1).all()
    assert (pieces["source_owner"] == pieces["attributed_source"]).all()
    corpora = {a: author_corpus(documents, a) for a in documents["author"].unique()}
    for row in pieces.head(3).itertuples():
        assert attribute_source(row.text, corpora) == (row.source_owner, row.copied_words)
