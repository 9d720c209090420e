"""Chat SFT with the switches a CUDA run turns on (bf16 autocast, the fused view, torch.compile over rows of
varying width), forced on here on CPU: see tests/lm/test_cuda_switches.py for why."""

import pytest

from assets.chat.sft import fit_sft, sft_data, sft_loss
from assets.chat.tasks import conversation
from assets.lm.training import TrainConfig
from tests.chat.conftest import make_model
from tests.lm.test_cuda_switches import compile_or_skip

CONTEXT = 96


def _fine_tune(tokenizer, arithmetic, **switches) -> tuple[float, float]:
    rows = [conversation(r) for _, r in arithmetic[arithmetic.split == "train"].iterrows()]
    train, val = sft_data(tokenizer, rows[:64], CONTEXT), sft_data(tokenizer, rows[64:80], CONTEXT)
    model = make_model(tokenizer, seed=0)
    before = sft_loss(model, val)
    cfg = TrainConfig(max_steps=40, batch_size=8, learning_rate=2e-2, min_lr=2e-3, warmup_steps=2,
                      eval_interval=40, seed=0, **switches)
    result = fit_sft(model, train, cfg, val)
    assert sft_loss(model, val) == pytest.approx(result.final_val_loss, rel=0.02)  # weights written back
    return before, result.final_val_loss


@pytest.fixture(scope="module")
def eager_float32(tokenizer, arithmetic):
    return _fine_tune(tokenizer, arithmetic, fused_projections=False)


def test_sft_with_bf16_and_the_fused_view_learns_like_float32(tokenizer, arithmetic, eager_float32):
    before, after = _fine_tune(tokenizer, arithmetic, bf16=True, fused_projections=True)
    assert after < 0.6 * before
    assert after == pytest.approx(eager_float32[1], rel=0.15)


def test_compiled_sft_over_rows_of_varying_width_learns_like_eager(tokenizer, arithmetic, eager_float32):
    before, after = compile_or_skip(lambda: _fine_tune(tokenizer, arithmetic, bf16=True, compile=True,
                                                       fused_projections=True))
    assert after < 0.6 * before
    assert after == pytest.approx(eager_float32[1], rel=0.15)
