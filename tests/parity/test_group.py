"""The parity group materialized on the tiny profile through `dagster.materialize`; numbers read back."""

import dagster as dg
import pytest

from assets.findings import check_findings_frame
from pipelines.definitions import defs
from resources.catalog import query


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    from resources import default_resources

    root = tmp_path_factory.mktemp("warehouse")
    # parity reads nothing from corpora or lm: its own warehouse, without the session's backbone
    assert not (dg.AssetSelection.groups("parity").upstream() - dg.AssetSelection.groups("parity")).resolve(
        defs.resolve_asset_graph())
    result = dg.materialize(list(defs.assets) + list(defs.asset_checks), selection=dg.AssetSelection.groups("parity"),
                            resources=default_resources(str(root)))
    assert result.success
    return result, root


def test_data_checks_pass_and_findings_checks_warn(group):
    result, _ = group
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    for name in ("parity_runs_valid", "parity_curves_valid", "parity_convergence_valid", "parity_scaling_valid",
                 "parity_finite_sample_runs_valid"):
        assert evaluations[name].passed, name
    for name in ("transition_is_abrupt", "progress_precedes_accuracy", "tc_exponent_grows_with_k",
                 "finite_sample_matches_anchor"):
        assert evaluations[name].severity == dg.AssetCheckSeverity.WARN
        assert "ours" in evaluations[name].metadata


def test_every_run_of_the_grid_is_a_row_and_the_tiny_runs_converge(group):
    _, root = group
    from assets.parity.defs import ParityRunsConfig

    sweeps = ParityRunsConfig().sweeps  # the defaults, as dicts
    expected = sum(len(s.get("arch", ["mlp"])) * len(s["n"]) * len(s["k"]) * s["seeds"] for s in sweeps)
    runs = query(root, "SELECT run_key, arch, n, k, converged, t_c, steps_trained, final_eval_accuracy "
                       "FROM parity.parity_runs")
    assert len(runs) == expected and runs["run_key"].is_unique
    assert runs["converged"].all()
    # after t_c the group trains on until its slowest seed converges; the models stay (near) perfect
    assert runs["final_eval_accuracy"].median() == 1.0 and runs["final_eval_accuracy"].min() >= 0.9
    assert (runs["t_c"] <= runs["steps_trained"]).all()
    curves = query(root, "SELECT run_key, min(step) AS first, max(step) AS last, count(*) AS points, "
                         "max(linf_change) FILTER (WHERE step = 0) AS moved_at_0 FROM parity.parity_curves GROUP BY 1")
    assert set(curves["run_key"]) == set(runs["run_key"])
    assert (curves["first"] == 0).all() and (curves["points"] >= 5).all() and (curves["moved_at_0"] == 0).all()


def test_higher_degree_parities_take_longer(group):
    _, root = group
    medians = query(root, "SELECT n, k, median_t_c FROM parity.parity_convergence "
                          "WHERE arch = 'mlp' AND sweep = 'scaling' ORDER BY n, k")
    by = medians.pivot(index="n", columns="k", values="median_t_c")
    assert (by[3] > 2 * by[2]).all()  # k=3 takes several times longer than k=2 at every n
    fit = query(root, "SELECT k, exponent, points FROM parity.parity_scaling WHERE arch = 'mlp' ORDER BY k")
    assert fit["points"].tolist() == [3, 3] and fit["exponent"].notna().all()


_RANKS = ("not reproduced", "partially reproduced", "reproduced")


def _graded(value: float, bar: float, partial: float, at_most: bool = False) -> int:
    """0, 1, 2 (not, partially, reproduced) of ``value`` against a bar and its looser partial bar."""
    meets = (lambda b: value <= b) if at_most else (lambda b: value >= b)
    return 2 if meets(bar) else 1 if meets(partial) else 0


def _recomputed_verdicts(root) -> dict[str, tuple[float, str]]:
    """metric -> (ours, verdict) of the graded findings, recomputed from the materialized tables with the
    rules of assets/parity/findings.py written out here (its module docstring)."""
    expected = {}
    cells = query(root, "SELECT n, k, median_transition_share FROM parity.parity_convergence "
                        "WHERE sweep = 'scaling' AND arch = 'mlp'")
    k = int(cells["k"].max())
    n = int(cells.loc[cells["k"] == k, "n"].max())
    share = float(cells.loc[(cells["k"] == k) & (cells["n"] == n), "median_transition_share"].median())
    expected[f"transition share of t_c (k={k}, n={n})"] = (share, _RANKS[_graded(share, 0.25, 0.5, at_most=True)])
    # the MLP's finding reads the headline sweep's runs (the first in the config), the polynet's all of its own
    progress = query(root, "SELECT p.arch, p.k, p.testable, p.p_value FROM parity.parity_hidden_progress p "
                           "JOIN parity.parity_runs r USING (run_key) WHERE p.measure = 'relevant_change_ratio' "
                           "AND (r.sweep = 'scaling' OR p.arch = 'polynet')")
    for arch, rows in progress.groupby("arch"):
        at_k = rows[rows["k"] == rows["k"].max()]
        rising = float((at_k["testable"] & (at_k["p_value"] < 0.05)).mean())
        metric = f"runs with rising relevant_change_ratio in the plateau ({arch}, k={int(at_k['k'].iloc[0])})"
        expected[metric] = (rising, _RANKS[_graded(rising, 0.5, 0.25)])
    fits = query(root, "SELECT arch, k, exponent, r_squared FROM parity.parity_scaling ORDER BY arch, k")
    for arch, fit in fits.groupby("arch"):
        if len(fit) < 2:
            continue
        lo, hi = fit.iloc[0], fit.iloc[-1]
        ratio = hi["exponent"] / lo["exponent"]
        factor = max(ratio / (hi["k"] / lo["k"]), (hi["k"] / lo["k"]) / ratio)
        rank = min(_graded(factor, 1.25, 1.5, at_most=True), _graded(fit["r_squared"].min(), 0.9, 0.8))
        expected[f"exponent ratio k={int(hi['k'])} / k={int(lo['k'])} ({arch})"] = (ratio, _RANKS[rank])
    return expected


def test_findings_table(group):
    _, root = group
    found = query(root, "SELECT * FROM parity.findings")
    assert check_findings_frame(found) == []
    assert {"reference", "source", "rule", "post_hoc"} <= set(found.columns)
    assert (found["study"] == "parity").all()
    # every graded finding's number and verdict, recomputed from the tables it was built on
    expected = _recomputed_verdicts(root)
    assert len(expected) >= 4  # transition, rising (mlp, polynet), the mlp exponent ratio
    rows = found.set_index("metric")
    for metric, (ours, verdict) in expected.items():
        assert rows.loc[metric, "ours"] == pytest.approx(ours) and rows.loc[metric, "verdict"] == verdict, metric
    metrics = " | ".join(found["metric"])
    for part in ("transition share", "rising relevant_change_ratio", "exponent ratio", "finite-sample"):
        assert part in metrics
    ratio = found[found["metric"].str.startswith("exponent ratio k=3 / k=2 (mlp)")].iloc[0]
    assert ratio["reference"] == 1.5 and ratio["source"] == "paper (derived)" and ratio["ours"] > 0
    assert ratio["comparison"] == "within_factor" and "r^2" in ratio["conditions"]
    per_k = found[found["metric"].str.startswith("t_c exponent in n")]
    assert len(per_k) == 2 and (per_k["verdict"] == "not comparable").all()  # descriptive: no paper exponent
    anchor = found[found["metric"] == "finite-sample steps to 99% test accuracy"].iloc[0]
    assert anchor["reference"] == 832 and anchor["source"] == "public replication"
    assert anchor["verdict"] == "not comparable"  # the tiny profile does not run the anchor's setting
    finite = query(root, "SELECT weight_decay, memorized_step, t_c FROM parity.parity_finite_sample_runs")
    assert len(finite) == 4 and finite["memorized_step"].notna().all()


def test_reviewed_rules_need_a_plateau_and_say_so(group):
    _, root = group
    found = query(root, "SELECT metric, post_hoc, note FROM parity.findings")
    reviewed = found[found["metric"].str.contains("transition share|rising relevant_change_ratio")]
    assert len(reviewed) >= 2 and reviewed["post_hoc"].str.contains("made stricter after review").all()
    assert found["metric"].str.contains(r"rising relevant_change_ratio in the plateau \(mlp, k=\d\)").any()
    progress = query(root, "SELECT plateau, testable, plateau_share, p_value FROM parity.parity_hidden_progress")
    assert progress.loc[~progress["testable"], "p_value"].isna().all()  # only a plateau gets a trend test
    assert (progress.loc[progress["testable"], "plateau_share"] >= 0.5).all() and progress["plateau"].notna().all()
