"""Models asked together must share their chat tokenizer: a model trained before the tokenizer changed is named."""

import pytest

from assets.chat.runs import shared_tokenizer
from tests.chat.conftest import make_tokenizer


def test_models_with_one_tokenizer_share_it_and_a_stale_one_is_named(arithmetic):
    sft, rl = make_tokenizer(arithmetic), make_tokenizer(arithmetic)
    records = {"sft": {"model_uri": "models:/chat-sft/2"}, "rl": {"model_uri": "models:/chat-rl/1"}}
    assert shared_tokenizer({"sft": sft, "rl": rl}, records) is sft
    stale = make_tokenizer(arithmetic, extra=["occupation"])  # the tokenizer of other task words
    with pytest.raises(ValueError, match=r"'sft' \(models:/chat-sft/2, \d+ tokens\) and 'rl' \(models:/chat-rl/1"):
        shared_tokenizer({"sft": sft, "rl": stale}, records)
