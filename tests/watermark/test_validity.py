"""The watermark data checks' rules beyond GX (assets.watermark.validity): the calibrated thresholds hold their
false-positive rate on the unwatermarked texts."""

import math

import pandas as pd

from assets.watermark import validity


def _calibration(false_positives: list[int], n_held_out: int = 200, n_calibration: int = 200) -> pd.DataFrame:
    names = ["kgw", "kgw_strong", "unigram", "exp", "exp_edit"][:len(false_positives)]
    return pd.DataFrame({"scheme": names, "n_calibration": n_calibration, "n_held_out": n_held_out, "split_seed": 17,
                         "held_out_false_positives": false_positives,
                         "held_out_false_positive_rate": [k / n_held_out for k in false_positives],
                         "calibration_false_positive_rate": 0.005})


def test_calibration_holds_the_target_fpr_on_the_held_out_texts_by_an_exact_binomial_test():
    # P(Binomial(200, 0.01) >= 6) = 0.016, >= 7: 0.0043; five schemes are tested at 0.05 / 5 = 0.01 each
    holds, numbers = validity.calibration_holds(_calibration([1, 2, 0, 6, 3]), fpr=0.01)
    assert holds and numbers["fails_at_false_positives"] == 7
    assert (numbers["n_calibration"], numbers["n_held_out"], numbers["split_seed"]) == (200, 200, 17)
    assert "exp 6/200 (p = 0.016)" in numbers["held_out_false_positives"]
    assert math.isclose(numbers["smallest_p_value"], 0.016023, rel_tol=1e-4)
    assert numbers["worst_held_out_false_positive_rate"] == 0.03 and "too_few_texts" not in numbers
    assert math.isclose(numbers["expected_held_out_fpr"], 2 / 201)  # the threshold: the 2nd largest of 200
    holds, numbers = validity.calibration_holds(_calibration([1, 2, 0, 7, 3]), fpr=0.01)
    assert not holds and math.isclose(numbers["smallest_p_value"], 0.0042955, rel_tol=1e-4)
    # one scheme alone is tested at the family level 0.05: 6 of 200 fails, 5 (p = 0.052) holds
    assert not validity.calibration_holds(_calibration([6]), 0.01)[0]
    assert validity.calibration_holds(_calibration([5]), 0.01)[0]
    assert validity.calibration_holds(_calibration([6]), 0.01, level=0.01)[0]


def test_the_calibration_check_says_when_a_half_is_too_small_to_mean_much():
    holds, numbers = validity.calibration_holds(_calibration([0, 0], n_held_out=50, n_calibration=50), 0.01)
    assert holds and numbers["fails_at_false_positives"] == 3  # 2 schemes at 0.025: P(Bin(50, 0.01) >= 3) = 0.014
    assert "the calibration half has 50 texts" in numbers["too_few_texts"]  # the threshold is its maximum
    assert math.isclose(numbers["expected_held_out_fpr"], 1 / 51)
    _, numbers = validity.calibration_holds(_calibration([0], n_calibration=150), 0.01)
    assert "2/151 = 1.32%" in numbers["too_few_texts"]  # the quantile rounds to the 2nd largest of 150
    assert "too_few_texts" not in validity.calibration_holds(_calibration([0], n_calibration=100), 0.01)[1]
    holds, numbers = validity.calibration_holds(_calibration([1] * 5, n_held_out=1), 0.01)  # p = 0.01, not < 0.01
    assert holds and numbers["fails_at_false_positives"] == "never" and "cannot fail" in numbers["too_few_texts"]


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
