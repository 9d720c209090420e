"""The watermark data checks' rules beyond GX (assets.watermark.validity): the calibrated thresholds hold their
false-positive rate on the unwatermarked texts."""

import math

import pandas as pd

from assets.watermark import validity


def test_calibration_holds_at_most_twice_the_target_fpr():
    calibration = pd.DataFrame({"scheme": ["kgw", "exp"], "null_false_positive_rate": [0.01, 0.02]})
    assert validity.calibration_holds(calibration, fpr=0.01) == (
        True, {"worst_null_false_positive_rate": 0.02, "target_fpr": 0.01})
    holds, numbers = validity.calibration_holds(calibration.assign(null_false_positive_rate=[0.01, 0.03]), 0.01)
    assert not holds and numbers["worst_null_false_positive_rate"] == 0.03


def test_every_check_and_table_is_described():
    assert set(validity.DESCRIPTIONS) == {"texts_valid", "calibration_holds", "attack_valid"}
    assert set(validity.TABLES) == {"watermark_texts", "watermark_calibration", "watermark_walk", "watermark_attack",
                                    "watermark_summary"}


def test_a_missing_p_value_after_the_attack_fails_its_check_a_null_text_without_permutation_p_value_does_not():
    from resources.validation import expectations, validate_frame

    def failed(checked):
        return [o["expectation"] for o in validate_frame(*checked, name="t")[1] if not o["success"]]

    attack = pd.DataFrame({"quality_kept": [True, True], "tokens_changed": [0.1, 0.3], "p_value_after": [0.2, 0.6],
                           "steps": [3, 5], "judge_bits_per_byte_after": [1.1, 1.2]})
    assert failed(validity.attack(expectations(), attack, steps=5)) == []
    assert failed(validity.attack(expectations(), attack.assign(p_value_after=[0.2, math.nan]), steps=5)) == [
        "expect_column_values_to_not_be_null(column='p_value_after')"]
    texts = pd.DataFrame({"scheme": "exp", "role": ["watermarked", "unwatermarked"], "p_value": [0.001, math.nan],
                          "score": [3.0, 0.1], "oracle_logprob": [-2.0, -2.5]})
    assert failed(validity.texts(expectations(), texts, ["exp"])) == []
    assert failed(validity.texts(expectations(), texts.assign(oracle_logprob=[-2.0, math.nan]), ["exp"])) == [
        "expect_column_values_to_not_be_null(column='oracle_logprob')"]
