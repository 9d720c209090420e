"""The FIM in-filler: PSM formatting, sentinels on a copy of the tokenizer, and proposals that rewrite only the
span, never with a sentinel or special token."""

import numpy as np
import pytest
import torch

from assets.watermark.attack import WalkSettings, random_walk
from assets.watermark.infill import (
    FimIds,
    fim_example,
    fim_examples,
    fim_ids,
    fim_tokenizer,
    infill_inputs,
    middle_nll,
    propose_infill,
)

IDS = FimIds(prefix=120, suffix=121, middle=122, eos=2, base_vocab=120, banned=(0, 1, 2, 3, 120, 121, 122))
CODE = ["def add(a, b):\n    return a + b\n\n\nclass Point:\n    def __init__(self, x, y):\n        self.x = x\n"
        "        self.y = y\n\n    def norm(self):\n        return (self.x ** 2 + self.y ** 2) ** 0.5\n" * 3,
        "import os\n\nfor name in os.listdir('.'):\n    if name.endswith('.py'):\n        print(name)\n" * 4]


@pytest.fixture(scope="module")
def code_tokenizer():
    from assets.corpora.tokenization import as_fast_tokenizer, train_bpe_tokenizer

    return as_fast_tokenizer(train_bpe_tokenizer(CODE, 300))


@pytest.fixture(scope="module")
def fim_lm():
    """A fresh model over the 120 ids of the test vocabulary plus the three sentinels."""
    from assets.lm.model import ModelSize, build_model

    return build_model(ModelSize("fim-test", 32, 1, 2, 64, 128), vocab_size=123, seed=3).eval()


def test_psm_layout_on_a_hand_made_window():
    window = [10, 11, 12, 13, 14, 15, 16, 17]
    ex = fim_example(window, start=2, span=3, ids=IDS)
    # <fim_prefix> 10 11 <fim_suffix> 15 16 17 <fim_middle> 12 13 14 </s>: the middle is the removed span
    assert ex.tolist() == [120, 10, 11, 121, 15, 16, 17, 122, 12, 13, 14, 2]
    assert fim_example(window, 0, 8, IDS).tolist() == [120, 121, 122, *window, 2]  # everything is the middle
    assert fim_example(window, 7, 1, IDS).tolist() == [120, *window[:7], 121, 122, 17, 2]
    with pytest.raises(ValueError, match="span"):
        fim_example(window, 6, 3, IDS)


def test_sentinels_go_after_the_vocabulary_on_a_copy(code_tokenizer):
    before = len(code_tokenizer)
    tok, ids = fim_tokenizer(code_tokenizer)
    assert len(code_tokenizer) == before  # the shared tokenizer is untouched
    assert (ids.prefix, ids.suffix, ids.middle) == (before, before + 1, before + 2) and ids.base_vocab == before
    assert ids.eos == code_tokenizer.eos_token_id and {0, 1, 2, 3, before, before + 1, before + 2} <= set(ids.banned)
    text = CODE[1]
    assert tok.encode(text, add_special_tokens=False) == code_tokenizer.encode(text, add_special_tokens=False)
    assert fim_ids(tok) == ids
    with pytest.raises(ValueError, match="already"):
        fim_tokenizer(tok)


def test_examples_rearrange_real_windows(code_tokenizer):
    _, ids = fim_tokenizer(code_tokenizer)
    ex = fim_examples(code_tokenizer, CODE, ids, window=20, max_span=4, n=50, seed=0)
    assert ex["examples"].shape == (50, 24)
    assert set(ex["spans"]) <= {1, 2, 3, 4} and len(set(ex["spans"])) > 1
    for e, w, st, s in zip(ex["examples"], ex["windows"], ex["starts"], ex["spans"], strict=True):
        assert e[0] == ids.prefix and e[st + 1] == ids.suffix and e[-s - 2] == ids.middle and e[-1] == ids.eos
        prefix, suffix, middle = e[1:st + 1], e[st + 2:-s - 2], e[-s - 1:-1]
        assert np.array_equal(np.concatenate([prefix, middle, suffix]), w)
        assert (e[1:-1] < ids.base_vocab).sum() == 20  # only the three sentinels lie outside the vocabulary


def test_infill_keeps_prefix_and_suffix_and_writes_the_requested_span(fim_lm):
    prompts = torch.randint(4, 120, (6, 5), generator=torch.Generator().manual_seed(0))
    responses = torch.randint(4, 120, (6, 12), generator=torch.Generator().manual_seed(1))
    spans = np.array([1, 2, 3, 4, 5, 12])
    written = []
    for seed in range(4):
        cand, starts = propose_infill(fim_lm, IDS, prompts, responses, spans, np.random.default_rng(seed), seed=seed)
        assert cand.shape == responses.shape
        for r in range(6):
            st, s = starts[r], spans[r]
            assert 0 <= st <= 12 - s
            assert torch.equal(cand[r, :st], responses[r, :st]) and torch.equal(cand[r, st + s:], responses[r, st + s:])
            written.append(cand[r, st:st + s])
    new = torch.cat(written)
    assert len(new) == 4 * spans.sum()
    assert not np.isin(new.numpy(), IDS.banned).any() and (new < IDS.base_vocab).all()  # 7 of 123 ids banned


def test_infill_inputs_are_psm_with_left_padding():
    prompts, responses = torch.tensor([[5, 6]]).repeat(2, 1), torch.tensor([[7, 8, 9, 10], [11, 12, 13, 14]])
    ids, mask = infill_inputs(prompts, responses, np.array([2, 1]), np.array([1, 3]), IDS)
    assert ids[0, 1:].tolist() == [120, 5, 6, 7, 121, 10, 122] and ids[0, 0] == 0  # one pad on the left
    assert ids[1].tolist() == [120, 5, 6, 11, 12, 13, 121, 122]
    assert mask[0].tolist() == [0, 1, 1, 1, 1, 1, 1, 1] and mask[1].all()


def test_middle_loss_reads_the_middle_positions(fim_lm):
    rng = np.random.default_rng(0)
    windows = rng.integers(4, 120, size=(3, 10))
    spans, starts = np.array([1, 3, 2]), np.array([4, 2, 7])
    examples = {"examples": np.stack([fim_example(w, st, s, IDS) for w, st, s in zip(windows, starts, spans,
                                                                                     strict=True)]),
                "windows": windows, "spans": spans, "starts": starts}
    with torch.no_grad():
        logp = torch.log_softmax(fim_lm(torch.as_tensor(examples["examples"])).logits.double(), -1)
        # 14 tokens: the middle sits at 13 - s .. 12, before </s> at 13
        fim_manual = [-logp[r, 13 - s + j - 1, examples["examples"][r, 13 - s + j]] for r, s in enumerate(spans)
                      for j in range(s)]
        logp = torch.log_softmax(fim_lm(torch.as_tensor(windows)).logits.double(), -1)
        left_manual = [-logp[r, st + j - 1, windows[r, st + j]] for r, (st, s) in enumerate(zip(starts, spans,
                                                                                             strict=True))
                       for j in range(s)]
    assert np.isclose(middle_nll(fim_lm, examples, fim=True), float(np.mean(fim_manual)), atol=1e-4)
    assert np.isclose(middle_nll(fim_lm, examples, fim=False), float(np.mean(left_manual)), atol=1e-4)


def test_walk_runs_on_the_infiller_and_rejects_an_unknown_oracle(fim_lm, tiny_lm):
    prompts = torch.randint(4, 120, (3, 4), generator=torch.Generator().manual_seed(0))
    responses = torch.full((3, 10), 4, dtype=torch.long)  # all even: score 10

    def detect(tokens, rows):
        score = (tokens % 2 == 0).sum(1).numpy().astype(float)
        return {"score": score, "p_value": np.full(len(rows), 0.5), "detected": score >= 8}

    def propose(p, r, spans, rng, seed):
        return propose_infill(fim_lm, IDS, p, r, spans, rng, seed=seed)

    final, walk, _, info = random_walk(tiny_lm, prompts, responses, lambda p, r: np.zeros(len(r)), detect,
                                       WalkSettings(steps=30, span=3, seed=1, perturbation="infill"), propose=propose)
    assert ((final % 2 == 0).sum(1) < 8).all() and (info["accepted"] == info["steps_taken"]).all()
    with pytest.raises(ValueError, match="perturbation"):
        WalkSettings(perturbation="t5")


def test_warm_start_copies_the_generator(tiny_lm):
    from assets.lm.model import ModelSize, build_model
    from assets.watermark.infill import warm_start

    infiller = build_model(ModelSize("wm-test", 32, 1, 2, 64, 128), vocab_size=123, seed=9).eval()
    warm_start(infiller, tiny_lm)
    ids = torch.randint(4, 120, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(infiller(ids).logits[..., :120], tiny_lm(ids).logits, atol=1e-5)
    with pytest.raises(ValueError, match="shaped like the generator"):
        warm_start(build_model(ModelSize("other", 64, 1, 2, 64, 128), vocab_size=123, seed=0), tiny_lm)


def test_spm_puts_the_suffix_first_so_the_middle_continues_the_prefix():
    spm = FimIds(120, 121, 122, 2, 120, IDS.banned, layout="spm")
    assert fim_example([10, 11, 12, 13, 14, 15], 2, 2, spm).tolist() == [121, 14, 15, 120, 10, 11, 122, 12, 13, 2]
    ids, _ = infill_inputs(torch.tensor([[5, 6]]), torch.tensor([[7, 8, 9, 10]]), np.array([2]), np.array([1]), spm)
    assert ids[0].tolist() == [121, 10, 120, 5, 6, 7, 122]
