"""The watermark data checks' rules beyond GX (assets.watermark.validity): the calibrated thresholds hold their
false-positive rate on the unwatermarked texts."""

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
