"""The two regimes: online data never repeats an example; offline epochs revisit each exactly once."""

import numpy as np
import pytest
import torch

from assets.sgd_noise.data import EpochOrder, SyntheticStream, TeacherTask, TokenWindows


def test_synthetic_online_stream_never_repeats_an_example():
    stream = SyntheticStream(TeacherTask(input_dim=8), "online", seeds=[0, 1])
    xs, ids = [], []
    for _ in range(60):
        x, y, i = stream.next(16)
        assert x.shape == (2, 16, 8) and y.shape == (2, 16)
        xs.append(x.reshape(-1, 8))
        ids.append(i[0])
    rows = torch.cat(xs).numpy()
    assert len(np.unique(rows, axis=0)) == len(rows) == 60 * 16 * 2
    ids = torch.cat(ids)
    assert (ids == torch.arange(60 * 16)).all()  # the counter only grows


def test_synthetic_offline_stream_shows_every_example_once_per_epoch():
    size, batch, epochs = 48, 16, 3
    stream = SyntheticStream(TeacherTask(input_dim=8), "offline", seeds=[0, 1], train_size=size)
    seen = torch.cat([stream.next(batch)[2] for _ in range(epochs * size // batch)], dim=1)
    for s in range(2):
        counts = torch.bincount(seen[s], minlength=size)
        assert (counts == epochs).all()
        for e in range(epochs):  # each epoch is a permutation of the set
            assert sorted(seen[s, e * size:(e + 1) * size].tolist()) == list(range(size))
    assert not torch.equal(seen[0, :size], seen[0, size:2 * size])  # a fresh order each epoch
    x, y, ids = stream.next(batch)
    torch.testing.assert_close(x[0], stream.x_train[0, ids[0]])


def test_epoch_order_straddles_epochs_without_losing_examples():
    order = EpochOrder(10, torch.Generator().manual_seed(0))
    taken = torch.cat([order.take(7) for _ in range(10)])  # 70 = 7 epochs of 10
    assert (torch.bincount(taken, minlength=10) == 7).all()
    with pytest.raises(ValueError, match="size"):
        EpochOrder(0, torch.Generator())


def test_online_token_windows_use_each_fresh_token_once():
    counter = iter(range(10**6))

    def supply():  # every token id is unique, so a reused token would show up as a duplicate
        return np.array([next(counter) for _ in range(37)])

    windows = TokenWindows(8, supply=supply)
    xs, ids = [], []
    for _ in range(20):
        x, y, i = windows.next(4)
        assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
        xs.append(torch.cat([x, y[:, -1:]], dim=1))
        ids.append(i)
    tokens = torch.cat(xs).flatten()
    assert len(torch.unique(tokens)) == len(tokens) == 20 * 4 * 9
    assert (torch.cat(ids) == torch.arange(80)).all()


def test_offline_token_windows_repeat_each_window_every_epoch():
    windows = TokenWindows(4, tokens=np.arange(5 * 12 + 3), seed=1)  # 12 windows of 5 tokens, 3 left over
    assert windows.size == 12
    ids = torch.cat([windows.next(6)[2] for _ in range(8)])  # 48 = 4 epochs
    assert (torch.bincount(ids, minlength=12) == 4).all()
    x, y, i = windows.next(2)
    assert torch.equal(x[:, 0], i * 5) and torch.equal(y[:, -1], i * 5 + 4)


def test_teacher_labels_follow_its_probabilities():
    task = TeacherTask(input_dim=4, classes=3, logit_scale=2.0)
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(20000, 4)  # one input: the labels' frequencies must match the teacher's softmax there
    probs = task.probabilities(x[:1])[0]
    y = torch.multinomial(task.probabilities(x), 1, generator=g).flatten()
    freq = torch.bincount(y, minlength=3).float() / len(y)
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)
    assert 0 < task.entropy() < np.log(3)


def test_corpus_source_reads_each_document_once_online_then_stops():
    from assets.sgd_noise.language import CorpusSource

    docs = [np.full(5, i) for i in range(40)]  # document i is five copies of token i
    source = CorpusSource(docs, np.arange(100), offline_tokens=30)
    supply = source.online(seed=0)
    read = np.concatenate([supply(), supply(), supply()])  # 16 + 16 + 8 documents
    assert sorted(np.unique(read).tolist()) == list(range(40)) and len(read) == 200
    with pytest.raises(ValueError, match="every train document once"):
        supply()
    assert not np.array_equal(read, np.repeat(np.arange(40), 5))  # a seed-shuffled order
    assert len(source.offline(seed=0)) == 30 and np.array_equal(source.offline(0), source.offline(0))
    x, y = source.heldout(4, 9)
    assert torch.equal(x[1], torch.arange(10, 19)) and torch.equal(y[1], torch.arange(11, 20))
    with pytest.raises(ValueError, match="validation tokens"):
        source.heldout(20, 9)
