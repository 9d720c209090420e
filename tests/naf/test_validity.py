"""The NAF study's check rules, without the platform: CP-Δ's slack over its bound, and the rule lists."""

import math

import pandas as pd

from assets.naf import validity
from assets.naf.findings import scale_note


def test_cp_delta_slack_is_the_largest_excess_over_the_bound_of_cp_delta_only():
    k = pd.DataFrame({"model": ["cp_delta", "cp_delta", "p"], "k_bits": [1.0, 2.5, 9.0],
                      "log_normaliser_bits": [2.0, 2.0, 0.0]})
    assert validity.cp_delta_slack(k) == 0.5
    assert validity.cp_delta_slack(k[k["model"] == "p"]) == 0.0


def test_rule_lists_name_the_columns_they_check():
    calls = []

    class RecordingExpectations:
        """Stands in for great_expectations.expectations: every rule records its name and arguments."""

        def __getattr__(self, name):
            return lambda **kwargs: calls.append((name, kwargs)) or name

    gxe = RecordingExpectations()
    assert len(validity.regurgitation(gxe)) == 2 + 2 * len(validity.RATES) + 1
    assert ("ExpectColumnValuesToBeBetween", {"column": "logprob_bits", "max_value": 0}) in calls
    assert ("ExpectColumnValuesToBeInSet", {"column": "shard", "value_set": [0, 1]}) not in calls
    validity.shards(gxe)
    assert ("ExpectColumnValuesToBeInSet", {"column": "shard", "value_set": [0, 1]}) in calls
    assert len(validity.perplexity(gxe)) == 4 and len(validity.k_values(gxe)) == 5
    assert len(validity.regurgitation_by_duplication(gxe)) == 7


def test_scale_note_states_documents_levels_samples_and_model():
    summary = pd.DataFrame({"duplicate_count": [4, 1, 4]})
    reg = pd.DataFrame({"doc_id": [1, 2, 2], "n_samples": [3, 5, 5]})
    note = scale_note(summary, reg, {"parameters": 12345, "max_steps": 60}, "tiny")
    assert note == "tiny profile: 2 protected documents at [1, 4] copies, 5 samples each, 12,345-parameter models, 60 steps"


def test_a_missing_rate_fails_the_regurgitation_by_duplication_check():
    from resources.validation import expectations, validate_frame

    table = pd.DataFrame({"model": ["p", "q1"], "duplicate_count": [1, 1], "sampled_exact_rate": [0.5, 0.0],
                          "mean_p_exact": [0.4, 0.01], "n_documents": [2, 2]})
    assert validate_frame(table, validity.regurgitation_by_duplication(expectations()))[0]
    ok, outcomes = validate_frame(table.assign(mean_p_exact=[0.4, math.nan], n_documents=[math.nan, 2]),
                                  validity.regurgitation_by_duplication(expectations()))
    assert not ok and [o["expectation"] for o in outcomes if not o["success"]] == [
        "expect_column_values_to_not_be_null(column='mean_p_exact')",
        "expect_column_values_to_not_be_null(column='n_documents')"]
