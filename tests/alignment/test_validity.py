"""The data checks' rules (assets.alignment.validity) and the metadata helpers (assets.alignment.tables) on
planted tables: each rule passes a good table and fails the one broken the way it guards against."""

import math

import pandas as pd

from assets.alignment import tables, validity
from resources.validation import expectations, gx_check


def test_filter_keeps_only_accepted():
    judged = pd.DataFrame({"item_id": ["a", "a", "b"], "accepted": [True, False, True], "kept": [True, False, True]})
    assert validity.filter_keeps_only_accepted(judged)
    assert not validity.filter_keeps_only_accepted(judged.assign(kept=[True, True, False]))  # a rejected one kept
    assert not validity.filter_keeps_only_accepted(judged.assign(accepted=True, kept=[True, True, False]))  # two


def test_baselines_share_prompts_and_answers():
    records = {"deliberative": {"prompt_answer_digest": "x"}, "direct": {"prompt_answer_digest": "x"}}
    identical = {"conversations": 5, "methods": 2}
    assert validity.baselines_share_prompts_and_answers(records, identical, 5, 2)
    assert not validity.baselines_share_prompts_and_answers({**records, "direct": {"prompt_answer_digest": "y"}},
                                                            identical, 5, 2)
    assert not validity.baselines_share_prompts_and_answers(records, identical, 6, 2)  # conversations unseen
    assert not validity.baselines_share_prompts_and_answers(records, identical, 5, 3)  # a method unseen


def test_table_rules():
    sft = pd.DataFrame({"item_id": ["a", "b"], "answer": ["yes", "no"]})
    assert gx_check(*validity.sft_data(expectations(), sft), name="sft").passed
    assert not gx_check(*validity.sft_data(expectations(), sft.assign(answer=["yes", ""])), name="sft").passed
    methods = pd.DataFrame({"method": ["m", "m"], "value": [0.5, math.nan]})
    assert gx_check(*validity.methods(expectations(), methods), name="methods").passed  # NaN: an empty set
    assert not gx_check(*validity.methods(expectations(), methods.assign(value=[1.5, 0.0])), name="m").passed
    results = pd.DataFrame({"method": ["m", "n"]})
    assert validity.every_method_present(methods, results.iloc[:1])
    assert not validity.every_method_present(methods, results)


def test_sft_models_metadata_flattens_per_method_and_leaves_the_digests_out():
    meta = tables.sft_models_metadata({"direct": {"final_loss": 1.0}}, {"methods": 1, "digests": {"direct": "x"}},
                                      conversations=4, dropped=1, replayed=2)
    assert meta == {"direct_final_loss": 1.0, "conversations": 4, "dropped_too_long": 1, "replayed_conversations": 2,
                    "methods": 1}


def test_a_missing_answer_fails_the_sft_data_check():
    from resources.validation import validate_frame

    sft = pd.DataFrame({"item_id": ["a", "b"], "answer": ["yes", None]})
    ok, outcomes = validate_frame(*validity.sft_data(expectations(), sft), name="sft")
    assert not ok and [o["expectation"] for o in outcomes if not o["success"]] == [
        "expect_column_values_to_not_be_null(column='answer')"]
