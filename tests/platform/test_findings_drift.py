"""Regression checks on findings: latest vs previous materialization."""

import math

import dagster as dg
import pandas as pd

from assets.findings import Finding, Rule, findings_frame
from pipelines.findings_drift import compare_findings, findings_regression_check

VALUES = iter([0.50, 0.52, 0.90, math.nan])


@dg.asset(key=["toy", "findings"], group_name="toy")
def toy_findings() -> pd.DataFrame:
    return findings_frame([Finding("toy", "headline", next(VALUES), 1.0, "paper", Rule.within_factor(2), scale="tiny"),
                           Finding("toy", "steady", 2.0, scale="tiny")])


def test_compare_findings():
    prev = pd.DataFrame({"metric": ["a", "b"], "ours": [1.0, 2.0]})
    latest = pd.DataFrame({"metric": ["a", "b", "c"], "ours": [1.1, 4.0, 3.0]})
    table = compare_findings(prev, latest, tolerance=0.25).set_index("metric")
    assert table.loc["a", "changed"] == False and table.loc["b", "changed"] == True  # noqa: E712
    assert math.isclose(table.loc["b", "relative_change"], 1.0) and table.loc["c", "relative_change"] == 0.0
    # a metric that was never finite is a "not comparable" finding, not a broken one; finite -> NaN is broken
    prev = pd.DataFrame({"metric": ["never", "lost"], "ours": [math.nan, 1.0]})
    latest = pd.DataFrame({"metric": ["never", "lost", "new_nan"], "ours": [math.nan, math.nan, math.nan]})
    table = compare_findings(prev, latest, tolerance=0.25).set_index("metric")
    assert table["broken"].to_dict() == {"never": False, "lost": True, "new_nan": False}
    assert not table["lost"].any()


def test_a_metric_dropped_from_the_latest_findings_is_lost_not_silently_ignored():
    prev = pd.DataFrame({"metric": ["kept", "dropped"], "ours": [1.0, 2.0]})
    table = compare_findings(prev, prev.iloc[:1], tolerance=0.25).set_index("metric")
    assert table["lost"].to_dict() == {"kept": False, "dropped": True}
    assert not table["broken"].any() and not table["changed"].any()  # lost, not "broken" or "changed"
    assert compare_findings(prev, prev.iloc[0:0], tolerance=0.25)["lost"].all()  # an empty latest loses all


def test_regression_check_over_four_nights(resources_for):
    check = findings_regression_check(dg.AssetKey(["toy", "findings"]))
    outcomes = []
    for _ in range(4):
        result = dg.materialize([toy_findings, check], resources=resources_for)
        evaluation = result.get_asset_check_evaluations()[0]
        outcomes.append((evaluation.passed, evaluation.severity))
    warn, error = dg.AssetCheckSeverity.WARN, dg.AssetCheckSeverity.ERROR
    # first night: nothing to compare; 0.50 -> 0.52 within 25%; 0.52 -> 0.90 beyond; NaN breaks the invariant
    assert outcomes == [(True, warn), (True, warn), (False, warn), (False, error)]


@dg.asset(key=["toy2", "findings"], group_name="toy2")
def toy2_findings() -> pd.DataFrame:
    return findings_frame([Finding("toy2", "headline", 0.5, 1.0, "paper", Rule.within_factor(2), scale="tiny")])


def test_the_check_compares_the_materialization_it_checks_not_a_newer_file(resources_for, warehouse_root):
    from pipelines.findings_drift import checked_file_index
    from resources.tables import Lineage, materialization_files, write_table

    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):
        assert dg.materialize([toy2_findings], resources=resources_for, instance=instance).success
    key = dg.AssetKey(["toy2", "findings"])
    files = materialization_files(warehouse_root, "toy2", "findings")
    assert checked_file_index(instance, key, files) == 1
    # another writer adds a newer file the instance never recorded: the check still reads the recorded one
    write_table(warehouse_root, "toy2", "findings", toy2_findings(), Lineage(run_id="other", code_version="1"))
    newer = materialization_files(warehouse_root, "toy2", "findings")
    assert len(newer) == 3 and checked_file_index(instance, key, newer) == 1
    assert checked_file_index(dg.DagsterInstance.ephemeral(), key, newer) == 2  # nothing recorded: the newest
