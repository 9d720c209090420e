"""SFT: labels only on assistant tokens, and fine-tuning lowers the assistant-token loss."""

import math
import time

import pytest
import torch

from assets.chat.format import prompt_ids
from assets.chat.sft import IGNORE_INDEX, fit_sft, sft_data, sft_loss
from assets.chat.tasks import conversation, prompt_messages
from assets.lm.training import TrainConfig
from tests.chat.conftest import make_model

CONTEXT = 96


def test_prompt_tokens_carry_no_label(tokenizer, arithmetic):
    rows = arithmetic.head(3)
    data = sft_data(tokenizer, [conversation(r) for _, r in rows.iterrows()], CONTEXT)
    assert data.input_ids.shape == data.labels.shape == (3, CONTEXT)
    for i, (_, row) in enumerate(rows.iterrows()):
        n_prompt, n = len(prompt_ids(tokenizer, prompt_messages(row))), int(data.lengths[i])
        assert (data.labels[i, :n_prompt] == IGNORE_INDEX).all()  # system/user turns and the headers
        assert torch.equal(data.labels[i, n_prompt:n], data.input_ids[i, n_prompt:n])  # what the model writes
        assert (data.labels[i, n:] == IGNORE_INDEX).all() and (
            data.input_ids[i, n:] == tokenizer.pad_token_id
        ).all()
        assert tokenizer.convert_ids_to_tokens(int(data.labels[i, n - 1])) == "<|end|>"
    assert data.n_target_tokens == sum(
        int(data.lengths[i]) - len(prompt_ids(tokenizer, prompt_messages(r)))
        for i, (_, r) in enumerate(rows.iterrows())
    )


def test_a_conversation_longer_than_the_context_is_refused(tokenizer, arithmetic):
    with pytest.raises(ValueError, match=r"conversations\[0\] has \d+ tokens"):
        sft_data(tokenizer, [conversation(arithmetic.iloc[0])], 8)


def test_sft_lowers_the_assistant_token_loss(tokenizer, arithmetic):
    train = sft_data(
        tokenizer, [conversation(r) for _, r in arithmetic[arithmetic.split == "train"].iterrows()], CONTEXT
    )
    val = sft_data(
        tokenizer,
        [conversation(r) for _, r in arithmetic[arithmetic.split == "validation"].iterrows()],
        CONTEXT,
    )
    model = make_model(tokenizer, seed=0)
    before = sft_loss(model, val)
    cfg = TrainConfig(
        max_steps=100,
        batch_size=16,
        learning_rate=2e-2,
        min_lr=2e-3,
        warmup_steps=5,
        eval_interval=50,
        seed=0,
    )
    t0 = time.perf_counter()
    result = fit_sft(model, train, cfg, val)
    seconds = time.perf_counter() - t0
    after = sft_loss(model, val)
    print(f"SFT val loss per assistant token {before:.3f} -> {after:.3f} in {seconds:.1f}s")
    assert before == pytest.approx(math.log(len(tokenizer)), rel=0.1)  # an untrained model is near uniform
    assert after < 0.5 * before  # about 0.26 x with these seeds; 0.5 leaves room for platform noise
    assert after == pytest.approx(result.final_val_loss, rel=1e-5)
    assert list(result.curve["step"])[-1] == 100 and result.curve["val_loss"].notna().sum() == 2
    assert result.curve["train_loss"].iloc[-1] < result.curve["train_loss"].iloc[0]


def test_sft_through_the_fused_view_is_the_same_fine_tuning(tokenizer, arithmetic):
    # the fused view (one q/k/v and one gate/up matmul) trains the same function; -100 labels stay ignored
    rows = [conversation(r) for _, r in arithmetic[arithmetic.split == "train"].iterrows()]
    train, val = sft_data(tokenizer, rows[:48], CONTEXT), sft_data(tokenizer, rows[48:64], CONTEXT)
    runs = {}
    for fused in (False, True):
        model = make_model(tokenizer, seed=0)
        cfg = TrainConfig(max_steps=12, batch_size=8, learning_rate=2e-2, min_lr=2e-3, warmup_steps=2,
                          eval_interval=6, seed=0, fused_projections=fused)
        runs[fused] = (fit_sft(model, train, cfg, val), sft_loss(model, val))
    (plain, plain_after), (fused, fused_after) = runs[False], runs[True]
    assert plain.curve["train_loss"].iloc[-1] < 0.8 * plain.curve["train_loss"].iloc[0]
    torch.testing.assert_close(torch.tensor(fused.curve["train_loss"].to_numpy()),
                               torch.tensor(plain.curve["train_loss"].to_numpy()), rtol=1e-5, atol=1e-6)
    # the weights written back into the Hugging Face model score as the fused run's own validation said
    assert fused_after == pytest.approx(fused.final_val_loss, rel=1e-5)
    assert fused_after == pytest.approx(plain_after, rel=1e-4)


def test_gradient_accumulation_does_not_change_the_objective(tokenizer, arithmetic):
    """One step over the same four conversations, in one batch or in two micro-batches of unequal assistant
    tokens (one short conversation, three long): the same per-token mean, so the same update and the same
    logged loss (a mean per micro-batch, averaged, weighed the short answer's tokens more: cos 0.9 between the
    two gradients in a review's run)."""
    rows = [conversation(r) for _, r in arithmetic[arithmetic.split == "train"].iterrows()]
    order = sft_data(tokenizer, rows, CONTEXT).labels.ne(IGNORE_INDEX).sum(1).argsort().tolist()
    data = sft_data(tokenizer, [rows[i] for i in (order[0], *order[-3:])], CONTEXT)
    counts = [int(data.labels[i].ne(IGNORE_INDEX).sum()) for i in range(4)]
    assert min(counts) * 2 < max(counts)  # micro-batches of unequal target counts, whatever the order
    initial = sft_loss(make_model(tokenizer, seed=0), data)
    weights, logged = [], []
    for accumulation in (1, 2):
        model = make_model(tokenizer, seed=0)
        cfg = TrainConfig(max_steps=1, batch_size=4, grad_accum_steps=accumulation, learning_rate=1e-2,
                          warmup_steps=0, grad_clip=None, eval_interval=1, seed=0)
        logged.append(fit_sft(model, data, cfg).curve["train_loss"].iloc[0])
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert logged[0] == pytest.approx(initial, rel=1e-5) and logged[1] == pytest.approx(initial, rel=1e-5)
    torch.testing.assert_close(weights[1], weights[0], rtol=0, atol=1e-6)
