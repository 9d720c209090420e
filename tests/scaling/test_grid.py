"""The training grid's bookkeeping: cells, nested unique pools, held-out data, steps."""

import numpy as np
import pytest

from assets.lm.model import ModelSize
from assets.scaling.grid import (
    GridCell,
    RunSettings,
    available_unique_tokens,
    grid_cells,
    held_out_tokens,
    steps_for,
    token_chunks,
    token_label,
    unique_pool,
)

SMALL = ModelSize(name="s", d_model=16, n_layers=1, n_heads=2, d_ff=32, context_length=16)
LARGE = ModelSize(name="l", d_model=32, n_layers=1, n_heads=2, d_ff=64, context_length=16)


def test_grid_spans_sizes_budgets_epochs_and_unique_baselines_without_duplicates():
    cells = grid_cells([SMALL, LARGE], [256, 512], [1, 2, 4], unique_baselines=[512, 1024])
    keys = {(c.size.name, c.unique_tokens, c.epochs) for c in cells}
    assert len(keys) == len(cells) == 2 * (2 * 3 + 1)  # (512, 1) is both a budget and a baseline
    assert ("s", 1024, 1) in keys and ("l", 256, 4) in keys
    cell = GridCell(SMALL, 512, 4)
    assert cell.tokens == 2048 and cell.name == "scaling_run_s_u512_e4"
    assert token_label(2**20) == "1m" and token_label(4096) == "4k" and token_label(1536) == "1536"
    with pytest.raises(ValueError, match="unique"):
        grid_cells([SMALL, SMALL], [256], [1])
    with pytest.raises(ValueError, match="epochs"):
        GridCell(SMALL, 256, 0)


def test_unique_pools_are_nested_draws_of_the_corpus_and_held_out_data_is_separate():
    train = np.arange(10_000, dtype=np.int32)
    val = np.arange(50_000, 50_500, dtype=np.int32)
    chunks = token_chunks(train, val, chunk_tokens=100, seed=3)
    assert available_unique_tokens(chunks) == 10_000
    small, big = unique_pool(chunks, 250), unique_pool(chunks, 1000)
    assert len(small) == 251 and len(big) == 1001  # U to read and the last window's target
    np.testing.assert_array_equal(big[:251], small)  # nested: a larger budget extends the smaller one
    assert len(np.unique(big)) == 1001  # no token position drawn twice
    assert not np.array_equal(big[:200], train[:200])  # drawn across the corpus, not its first files
    np.testing.assert_array_equal(held_out_tokens(chunks), val)
    assert not set(held_out_tokens(chunks)) & set(unique_pool(chunks, 9_999))
    with pytest.raises(ValueError, match="exceeds the corpus"):
        unique_pool(chunks, 10_000)
    # the draw depends on the seed only
    np.testing.assert_array_equal(unique_pool(token_chunks(train, val, 100, seed=3), 300), unique_pool(chunks, 300))


def test_an_epoch_reads_every_unique_token_once():
    """U = 256 unique tokens at T = 16 are 16 whole windows: one epoch in EpochOrder reads each pool position
    once as an input and repeats none (a pool of exactly U tokens made 15 windows: 16 tokens never read, one
    window repeated in every epoch-1 run, and the recorded epochs off by one window)."""
    import torch

    from assets.lm.data import EpochOrder, TokenStream

    chunks = token_chunks(np.arange(10_000, dtype=np.int32), np.arange(50_000, 50_100, dtype=np.int32), 100, seed=1)
    pool = unique_pool(chunks, 256)
    stream = TokenStream(pool, 16)
    order = EpochOrder(stream, torch.Generator().manual_seed(0))
    assert order.n_windows == 256 // 16
    x, y = order.get_batch(stream, order.n_windows)
    assert sorted(x.flatten().tolist()) == sorted(pool[:256].tolist())  # every unique token read once
    assert torch.equal(y[:, :-1], x[:, 1:]) and order.epochs_completed == 1.0


def test_steps_make_d_equal_u_times_epochs():
    settings = RunSettings(batch_size=4)
    assert steps_for(GridCell(SMALL, 256, 4), settings) == 16  # 1024 tokens / (4 x 16)
    with pytest.raises(ValueError, match="less than one step"):
        steps_for(GridCell(SMALL, 16, 1), RunSettings(batch_size=8))
    cfg = settings.train_config(steps=16, context_length=16)
    assert cfg.max_steps == 16 and cfg.warmup_steps == 1 and cfg.divergence_factor is None
    assert cfg.eval_batches * cfg.batch_size >= settings.eval_windows
    with pytest.raises(ValueError, match="warmup_fraction"):
        RunSettings(warmup_fraction=1.5)
