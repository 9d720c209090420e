"""Token batching and the training loop: schedule, learning, determinism, divergence guard."""

import math

import numpy as np
import pytest
import torch

from assets.lm.data import EpochOrder, TokenStream, get_batch
from assets.lm.model import ModelSize, build_model
from assets.lm.training import (
    CURVE_COLUMNS,
    TrainConfig,
    TrainingDivergedError,
    configure_optimizer,
    lr_at,
    train,
)

SIZE = ModelSize("tiny", d_model=32, n_layers=2, n_heads=4, d_ff=64, context_length=16)
VOCAB = 16


def pattern_stream(n: int, period: int = 12, seed: int = 0) -> np.ndarray:
    pattern = np.random.default_rng(seed).integers(0, VOCAB, period)
    return np.resize(pattern, n)


def quick_config(**overrides) -> TrainConfig:
    base = dict(
        max_steps=12,
        batch_size=8,
        learning_rate=1e-2,
        min_lr=1e-3,
        warmup_steps=2,
        eval_interval=6,
        eval_batches=2,
        seed=0,
    )
    return TrainConfig(**{**base, **overrides})


# --- data -----------------------------------------------------------------------------------------------


def test_epoch_order_shows_every_window_once_per_epoch_in_a_new_order():
    stream = TokenStream(np.arange(105), context_length=10)  # starts 0, 10, ..., 90; 100..104 is too short
    order = EpochOrder(stream, torch.Generator().manual_seed(0))
    assert order.n_windows == 10
    drawn = torch.cat([order.next_offsets(4) for _ in range(10)])  # 40 windows = 4 epochs, batches straddle them
    epochs = drawn.reshape(4, 10)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(0, 100, 10))
    assert len({tuple(e.tolist()) for e in epochs}) > 1  # reshuffled
    assert order.epochs_completed == 4.0 and order.epoch == 3
    x, y = order.get_batch(stream, 3)
    assert torch.equal(y[:, :-1], x[:, 1:]) and (x[:, 0] % 10 == 0).all()
    # the same seed gives the same order; random sampling would repeat windows within an epoch
    again = EpochOrder(stream, torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([again.next_offsets(4) for _ in range(10)]), drawn)


def test_epoch_sampling_in_training_counts_epochs():
    cfg = quick_config(max_steps=10, sampling="epochs")  # 10 steps * 8 windows over 1000 // 16 = 62 windows
    result = train(build_model(SIZE, VOCAB, seed=0), pattern_stream(1000), pattern_stream(300), cfg)
    assert result.epochs == pytest.approx(80 / 62)
    random_result = train(build_model(SIZE, VOCAB, seed=0), pattern_stream(1000), pattern_stream(300),
                          quick_config(max_steps=10))
    assert math.isnan(random_result.epochs)
    assert not result.curve["train_loss"].equals(random_result.curve["train_loss"])


def test_batches_are_shifted_windows_and_seeded():
    tokens = np.arange(100)
    x, y = get_batch(tokens, 4, 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8) and x.dtype == torch.long
    assert torch.equal(y, x + 1)  # arange stream: the target is the next token
    x2, _ = get_batch(tokens, 4, 8, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    xn, _ = get_batch(tokens, 4, 8, np.random.default_rng(0))
    assert torch.equal(get_batch(tokens, 4, 8, np.random.default_rng(0))[0], xn)
    assert int(x.max()) <= 98  # the last target is the last token


def test_rank_slices_tile_the_global_batch():
    stream = TokenStream(np.arange(1000), 8)
    full, _ = stream.get_batch(8, torch.Generator().manual_seed(5))
    parts = [stream.get_batch(8, torch.Generator().manual_seed(5), rank=r, world_size=4)[0] for r in range(4)]
    assert torch.equal(torch.cat(parts), full)
    with pytest.raises(ValueError, match="divisible"):
        stream.get_batch(6, torch.Generator(), rank=0, world_size=4)


def test_fixed_windows_are_deterministic_and_cover_the_stream():
    stream = TokenStream(np.arange(50), 9)
    x, y = stream.fixed_windows(5)
    assert torch.equal(x, stream.fixed_windows(5)[0])
    assert int(x[0, 0]) == 0 and int(y[-1, -1]) == 49


def test_stream_errors_name_the_field():
    with pytest.raises(ValueError, match="val_tokens has 5 tokens"):
        TokenStream(np.arange(5), 8, field="val_tokens")
    with pytest.raises(ValueError, match="1-D"):
        TokenStream(np.zeros((3, 40), dtype=int), 8)
    with pytest.raises(ValueError, match="integer"):
        TokenStream(np.zeros(40), 8)


# --- schedule and config ----------------------------------------------------------------------------------


def test_lr_schedule_warmup_then_cosine_to_min_lr():
    cfg = TrainConfig(max_steps=110, learning_rate=1.0, min_lr=0.1, warmup_steps=10)
    assert lr_at(1, cfg) == pytest.approx(0.1)
    assert lr_at(5, cfg) == pytest.approx(0.5)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)  # half way through the decay: (lr + min_lr) / 2
    assert lr_at(110, cfg) == pytest.approx(0.1)
    assert lr_at(500, cfg) == pytest.approx(0.1)
    values = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    no_warmup = TrainConfig(max_steps=4, learning_rate=1.0, min_lr=0.0, warmup_steps=0)
    assert lr_at(1, no_warmup) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_steps": 0}, "max_steps"),
        ({"batch_size": 6, "grad_accum_steps": 4}, "grad_accum_steps"),
        ({"warmup_steps": 20, "max_steps": 10}, "warmup_steps"),
        ({"min_lr": 1.0, "learning_rate": 0.1}, "min_lr"),
        ({"device": "tpu"}, "device"),
        ({"divergence_factor": 0.5}, "divergence_factor"),
        ({"sampling": "shuffle"}, "sampling"),
        ({"loss_chunk_rows": 0}, "loss_chunk_rows"),
        ({"loss_readback_steps": 0}, "loss_readback_steps"),
    ],
)
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
        TrainConfig(**overrides)


def test_no_weight_decay_on_norms_and_embeddings():
    model = build_model(SIZE, VOCAB, seed=0, tie_embeddings=False)
    decay, no_decay = configure_optimizer(model, quick_config(), "cpu").param_groups
    ids = lambda group: {id(p) for p in group["params"]}  # noqa: E731
    assert id(model.model.embed_tokens.weight) in ids(no_decay)
    assert id(model.model.norm.weight) in ids(no_decay)
    assert id(model.lm_head.weight) in ids(decay)
    assert id(model.model.layers[0].self_attn.q_proj.weight) in ids(decay)
    assert no_decay["weight_decay"] == 0.0


# --- training -----------------------------------------------------------------------------------------------


def test_loss_falls_on_a_learnable_stream_and_curve_is_complete():
    logged = []
    cfg = quick_config(max_steps=40, eval_interval=20)
    result = train(
        build_model(SIZE, VOCAB, seed=0), pattern_stream(3000), pattern_stream(600), cfg, on_log=logged.append
    )
    curve = result.curve
    assert list(curve.columns) == CURVE_COLUMNS
    assert len(curve) == 40 and len(logged) == 40 and logged[-1]["step"] == 40
    assert curve["val_loss"].notna().tolist() == [s in (20, 40) for s in curve["step"]]
    assert curve["train_loss"].iloc[0] > 0.8 * math.log(VOCAB)  # starts near chance
    assert result.final_val_loss < 0.25 * curve["train_loss"].iloc[0]
    assert result.tokens_seen == 40 * 8 * 16 == curve["tokens"].iloc[-1]
    assert curve["learning_rate"].iloc[-1] == pytest.approx(cfg.min_lr)
    assert (curve["tokens_per_s"] > 0).all() and result.steps == 40 and result.seconds > 0


def test_identical_seeds_give_identical_runs_and_other_seeds_do_not():
    def run(seed):
        model = build_model(SIZE, VOCAB, seed=0)
        result = train(model, pattern_stream(2000), pattern_stream(400), quick_config(seed=seed))
        return result.curve.drop(columns="tokens_per_s"), model

    (c1, m1), (c2, m2), (c3, _) = run(0), run(0), run(1)
    assert c1.equals(c2)
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters(), strict=True))
    assert not c1["train_loss"].equals(c3["train_loss"])


def test_gradient_accumulation_matches_the_full_batch():
    models = [build_model(SIZE, VOCAB, seed=0) for _ in range(2)]
    curves = [
        train(
            m, pattern_stream(2000), pattern_stream(400), quick_config(max_steps=5, grad_accum_steps=a)
        ).curve
        for m, a in zip(models, (1, 2), strict=True)
    ]
    np.testing.assert_allclose(curves[0]["train_loss"], curves[1]["train_loss"], rtol=1e-5)
    for p, q in zip(*(m.parameters() for m in models), strict=True):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=0)


def test_huge_learning_rate_raises_diverged():
    cfg = quick_config(max_steps=30, learning_rate=50.0, min_lr=50.0, warmup_steps=1, grad_clip=None)
    with pytest.raises(TrainingDivergedError, match=r"at step \d+ exceeds divergence_factor"):
        train(build_model(SIZE, VOCAB, seed=0), pattern_stream(2000), pattern_stream(400), cfg)


def test_nan_loss_raises_at_the_step_it_appears():
    model = build_model(SIZE, VOCAB, seed=0)
    with torch.no_grad():
        model.model.norm.weight[0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="nan at step 1"):
        train(model, pattern_stream(2000), pattern_stream(400), quick_config())


def test_context_longer_than_the_model_is_refused():
    with pytest.raises(ValueError, match="TrainConfig.context_length"):
        train(
            build_model(SIZE, VOCAB, seed=0),
            pattern_stream(2000),
            pattern_stream(400),
            quick_config(context_length=32),
        )


def test_log_interval_averages_rows_and_keeps_eval_steps():
    result = train(
        build_model(SIZE, VOCAB, seed=0),
        pattern_stream(2000),
        pattern_stream(400),
        quick_config(log_interval=4),
    )
    assert result.curve["step"].tolist() == [4, 6, 8, 12]  # every 4th step plus the evaluations at 6 and 12


# --- the loop without host syncs, and the chunked loss -------------------------------------------------------


def reference_curve(cfg: TrainConfig, train_tokens: np.ndarray, val_tokens: np.ndarray) -> list[tuple]:
    """The loop as written before it stopped syncing: sample, copy, step, and read the loss every step."""
    import torch.nn.functional as F

    model = build_model(SIZE, VOCAB, seed=0)
    optimizer = configure_optimizer(model, cfg, "cpu")
    stream, generator = TokenStream(train_tokens, SIZE.context_length), torch.Generator().manual_seed(cfg.seed)
    val_x, val_y = TokenStream(val_tokens, SIZE.context_length).fixed_windows(cfg.eval_batches * cfg.batch_size)
    rows, summed = [], 0.0
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)  # as train does on CPU
    try:
        for step in range(1, cfg.max_steps + 1):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg)
            x, y = stream.get_batch(cfg.batch_size, generator)
            loss = F.cross_entropy(model(input_ids=x).logits.float().reshape(-1, VOCAB), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            summed += loss.item()
            if step % cfg.eval_interval == 0:
                with torch.no_grad():
                    logits = model.eval()(input_ids=val_x).logits.float()
                    val = F.cross_entropy(logits.reshape(-1, VOCAB), val_y.reshape(-1)).item()
                model.train()
                rows.append((step, summed / cfg.eval_interval, val))
                summed = 0.0
    finally:
        torch.use_deterministic_algorithms(deterministic)
    return rows


def test_the_curve_is_the_one_a_plain_synchronous_loop_logs():
    # losses read back only every 4 steps (and at evaluations), batches prefetched: the same numbers
    cfg = quick_config(max_steps=12, eval_interval=6, log_interval=6, eval_batches=1, loss_readback_steps=4)
    logged = []
    result = train(build_model(SIZE, VOCAB, seed=0), pattern_stream(2000), pattern_stream(400), cfg,
                   on_log=logged.append)
    reference = reference_curve(cfg, pattern_stream(2000), pattern_stream(400))
    got = [(int(r.step), r.train_loss, r.val_loss) for r in result.curve.itertuples()]
    np.testing.assert_allclose(np.array(got), np.array(reference), rtol=1e-6, atol=0)
    assert [row["step"] for row in logged] == [6, 12] and logged[-1]["val_loss"] == result.final_val_loss


def test_read_back_interval_changes_no_number_and_the_guard_names_the_step():
    def curve(readback: int):
        result = train(build_model(SIZE, VOCAB, seed=0), pattern_stream(2000), pattern_stream(400),
                       quick_config(loss_readback_steps=readback, grad_accum_steps=2))
        return result.curve.drop(columns="tokens_per_s")

    every_step, rarely = curve(1), curve(50)
    assert every_step.equals(rarely) and len(rarely) == 12
    model = build_model(SIZE, VOCAB, seed=0)
    with torch.no_grad():
        model.model.norm.weight[0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="nan at step 1 "):  # read back at step 6, named step 1
        train(model, pattern_stream(2000), pattern_stream(400), quick_config(loss_readback_steps=50))


def test_chunked_cross_entropy_matches_the_plain_loss_and_gradients():
    import torch.nn.functional as F

    from assets.lm.loss import NextTokenLoss, chunked_cross_entropy

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, 8, generator=g, requires_grad=True)
    weight = torch.randn(50, 8, generator=g, requires_grad=True)
    targets = torch.randint(0, 50, (37,), generator=g)
    for reduction in ("mean", "sum"):
        plain = F.cross_entropy(hidden @ weight.t(), targets, reduction=reduction)
        chunked = chunked_cross_entropy(hidden, weight, targets, chunk_rows=10, reduction=reduction)
        torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-5)
        for a, b in zip(torch.autograd.grad(3 * chunked, (hidden, weight)),
                        torch.autograd.grad(3 * plain, (hidden, weight)), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # on the model: loss and every parameter's gradient, tied head included
    model = build_model(SIZE, VOCAB, seed=0)
    x, y = TokenStream(pattern_stream(500), SIZE.context_length).get_batch(4, torch.Generator().manual_seed(1))
    grads = []
    for chunk_rows in (None, 7):
        model.zero_grad()
        loss = NextTokenLoss(model, chunk_rows)(x, y)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(grads[1][1], grads[0][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_training_with_the_chunked_loss_follows_the_plain_curve():
    curves = [train(build_model(SIZE, VOCAB, seed=0), pattern_stream(2000), pattern_stream(400),
                    quick_config(loss_chunk_rows=chunk)).curve for chunk in (None, 24)]
    np.testing.assert_allclose(curves[1]["train_loss"], curves[0]["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(curves[1]["val_loss"].dropna(), curves[0]["val_loss"].dropna(), rtol=1e-5)
