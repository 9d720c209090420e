"""KGW and Unigram: green lists from the seeding rule, z-scores on hand-computed cases, null p-values."""

import math

import numpy as np
import pytest
import torch

from assets.watermark.greenlist import (
    HASH_KEY,
    KGWGreenLists,
    UnigramGreenList,
    kgw_detect,
    kgw_detect_loop,
    kgw_logits_processor,
    unigram_detect,
    unigram_key_hash,
)


def test_kgw_green_lists_follow_the_seeding_rule():
    lists = KGWGreenLists(vocab_size=500, gamma=0.25)
    for prev in (0, 1, 7, 499):
        generator = torch.Generator(device="cpu")
        generator.manual_seed(HASH_KEY * prev)
        expected = torch.randperm(500, generator=generator)[:125]
        assert torch.equal(lists.green_ids(prev), expected)
        row = lists.mask_rows(torch.tensor([prev]))[0]
        assert int(row.sum()) == 125 and bool(row[expected].all())
    # deterministic across instances, different across previous tokens
    again = KGWGreenLists(vocab_size=500, gamma=0.25)
    assert torch.equal(again.mask_rows(torch.tensor([3, 9])), lists.mask_rows(torch.tensor([3, 9])))
    rows = lists.mask_rows(torch.tensor([3, 9]))
    assert not torch.equal(rows[0], rows[1])
    with pytest.raises(ValueError, match="gamma"):
        KGWGreenLists(vocab_size=10, gamma=1.0)


def _text(lists, colours, start=5):
    """A text whose i-th scored token is green (True) or red (False) after its predecessor."""
    tokens = [start]
    for green in colours:
        row = lists.mask_rows(torch.tensor([tokens[-1]]))[0]
        candidates = torch.nonzero(row if green else ~row).flatten()
        tokens.append(int(candidates[len(tokens) % len(candidates)]))
    return tokens


def test_kgw_z_scores_on_hand_computed_cases():
    lists = KGWGreenLists(vocab_size=100, gamma=0.25)
    tokens = _text(lists, [True, True, False, True])
    r = kgw_detect(torch.tensor([tokens]), lists)
    # T = 4 scored tokens, 3 green: z = (3 - 1) / sqrt(4 * 0.25 * 0.75)
    assert r["scored"][0] == 4 and r["green"][0] == 3
    assert math.isclose(r["z"][0], 2 / math.sqrt(0.75), rel_tol=1e-9)
    assert math.isclose(r["p_value"][0], 0.5 * math.erfc(r["z"][0] / math.sqrt(2)), rel_tol=1e-9)
    # a repeated bigram counts once with unique_pairs
    a, b = next((a, b) for a in range(100) for b in torch.nonzero(lists.mask_rows(torch.tensor([a]))[0]).flatten().tolist()
                if not bool(lists.mask_rows(torch.tensor([b]))[0, a]))  # (a, b) green and (b, a) red
    text = torch.tensor([[a, b, a, b, a]])  # bigrams (a,b) green, (b,a) red, twice each
    plain, unique = kgw_detect(text, lists), kgw_detect(text, lists, unique_pairs=True)
    assert (plain["scored"][0], plain["green"][0]) == (4, 2)
    assert math.isclose(plain["z"][0], (2 - 1) / math.sqrt(4 * 0.1875), rel_tol=1e-9)
    assert (unique["scored"][0], unique["green"][0]) == (2, 1)
    assert math.isclose(unique["z"][0], (1 - 0.5) / math.sqrt(2 * 0.1875), rel_tol=1e-9)
    # lengths cut texts: only the first 3 tokens of the first row (2 scored, both green)
    short = kgw_detect(torch.tensor([tokens]), lists, lengths=torch.tensor([3]))
    assert (short["scored"][0], short["green"][0]) == (2, 2)


def test_vectorised_kgw_matches_the_per_token_reference():
    lists = KGWGreenLists(vocab_size=300, gamma=0.5)
    tokens = torch.randint(300, (6, 30), generator=torch.Generator().manual_seed(3))
    tokens[0, 10:20] = tokens[0, :10]  # repeats, so unique pairs differ from all pairs
    for unique in (False, True):
        fast = kgw_detect(tokens, lists, unique_pairs=unique)
        for b in range(6):
            slow = kgw_detect_loop(tokens[b].tolist(), lists, unique_pairs=unique)
            assert (fast["green"][b], fast["scored"][b]) == (slow["green"], slow["scored"])
            assert math.isclose(fast["z"][b], slow["z"], rel_tol=1e-9)


def test_logits_processor_adds_delta_to_the_green_list_only():
    lists = KGWGreenLists(vocab_size=50, gamma=0.25)
    scores = torch.zeros(2, 50)
    out = kgw_logits_processor(lists, delta=2.0)(torch.tensor([[1, 4], [2, 9]]), scores)
    assert torch.equal(out[0] == 2.0, lists.mask_rows(torch.tensor([4]))[0])
    assert torch.equal(out[1] == 2.0, lists.mask_rows(torch.tensor([9]))[0])
    assert float(scores.abs().sum()) == 0  # input left untouched


def test_unigram_green_list_and_z():
    g = UnigramGreenList(vocab_size=40, gamma=0.5, key=0)
    expected = np.array([True] * 20 + [False] * 20)
    np.random.default_rng(unigram_key_hash(0)).shuffle(expected)
    assert np.array_equal(g.mask, expected) and g.mask.sum() == 20
    green, red = np.flatnonzero(g.mask), np.flatnonzero(~g.mask)
    text = torch.tensor([[*green[:7], *red[:3]]])
    r = unigram_detect(text, g)
    assert math.isclose(r["z"][0], (7 - 5) / math.sqrt(10 * 0.25), rel_tol=1e-9)
    repeated = torch.tensor([[green[0]] * 6 + [red[0], red[1]]])
    u = unigram_detect(repeated, g, unique_tokens=True)  # 3 distinct tokens, 1 green
    assert (u["scored"][0], u["green"][0]) == (3, 1)


def test_unwatermarked_text_has_near_uniform_p_values():
    rng = torch.Generator().manual_seed(0)
    tokens = torch.randint(1000, (600, 200), generator=rng)
    for r in (kgw_detect(tokens, KGWGreenLists(1000, 0.25)),
              unigram_detect(tokens, UnigramGreenList(1000, 0.5, key=3))):
        p = r["p_value"]
        assert 0.42 < p.mean() < 0.58
        assert 0.03 < np.mean(p < 0.1) < 0.17  # ~10% below 0.1
        assert np.mean(p < 0.01) < 0.03
        assert 0.8 < r["z"].std() < 1.2 and abs(r["z"].mean()) < 0.15
