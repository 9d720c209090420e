"""Great Expectations 1.x checks as Dagster asset checks."""

import dagster as dg
import pandas as pd

from pipelines.run_progress import failed_checks
from resources.validation import expectations, gx_check


def _suite():
    gxe = expectations()
    return [
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToNotBeNull(column="entropy"),
        gxe.ExpectColumnValuesToBeBetween(column="entropy", min_value=0),
    ]


def test_gx_check_passes_on_good_data():
    result = gx_check(pd.DataFrame({"id": [1, 2, 3], "entropy": [0.0, 0.5, 2.0]}), _suite(), name="tokens")
    assert result.passed
    assert result.metadata["failed"].value == 0 and result.metadata["expectations"].value == 3


def test_gx_check_fails_on_bad_data_naming_the_expectation():
    bad = pd.DataFrame({"id": [1, 1, 3], "entropy": [0.0, -0.5, 2.0]})
    result = gx_check(bad, _suite(), name="tokens")
    assert not result.passed
    failed = result.metadata["failed_expectations"].value
    names = " ".join(f["expectation"] for f in failed)
    assert "expect_column_values_to_be_unique" in names and "expect_column_values_to_be_between" in names
    between = [f for f in failed if "between" in f["expectation"]][0]
    assert between["observed"]["unexpected_count"] == 1 and "-0.5" in between["observed"]["partial_unexpected_list"]


def test_gx_check_as_asset_check(resources_for):
    @dg.asset(group_name="demo_group")
    def entropies() -> pd.DataFrame:
        return pd.DataFrame({"id": [1, 2], "entropy": [0.1, -1.0]})

    @dg.asset_check(asset=entropies)
    def entropies_valid(entropies: pd.DataFrame) -> dg.AssetCheckResult:
        return gx_check(entropies, _suite(), name="entropies")

    @dg.asset_check(asset=entropies)
    def entropies_not_all_small(entropies: pd.DataFrame) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=bool(entropies["entropy"].abs().max() > 5),
                                   severity=dg.AssetCheckSeverity.WARN)

    result = dg.materialize([entropies, entropies_valid, entropies_not_all_small], resources=resources_for)
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 2 and not any(e.passed for e in evaluations)
    # the run itself succeeds (checks do not block): make demo and the tests' backbone read the failures
    assert result.success
    assert failed_checks(evaluations) == {"ERROR": ["entropies: entropies_valid"],
                                          "WARN": ["entropies: entropies_not_all_small"]}
