"""The model defender and the soft-token attack on a tiny Llama: budgets honoured, the norm cap holds, soft
tokens equal to a word's embedding reproduce that word exactly, zero budget leaves outputs unchanged."""

import re
import traceback

import pandas as pd
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from assets.chat.format import prompt_ids
from assets.robustness.defender import model_defender
from assets.robustness.grid import GridSpec, run_attacks
from assets.robustness.items import THINK_LESS, attack_items, conversation
from assets.robustness.soft_tokens import (
    SoftPromptModel,
    norm_cap,
    optimise_soft_tokens,
    placeholder,
    project,
    real_token_ids,
)


@pytest.fixture(scope="module")
def items(frames):
    return attack_items(frames, 2, 1, seed=0)


@pytest.fixture(scope="module")
def targets(items):
    return items[items["goal"] != THINK_LESS].reset_index(drop=True)


def _same(a: pd.DataFrame, b: pd.DataFrame):
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.parametrize("budget", [0, 3, 7])
def test_the_model_defender_honours_the_budget_and_counts_compute(model, tokenizer, items, budget):
    defend = model_defender(model, tokenizer, max_answer_tokens=4)
    out = defend([conversation(r) for _, r in items.head(6).iterrows()], budget)
    assert len(out) == 6 and out["answered"].all()
    assert (out["reasoning_tokens"] <= budget).all() and (out["flops"] > 0).all()
    if budget == 0:
        assert (out["reasoning_tokens"] == 0).all()


def test_a_prompt_that_leaves_no_room_for_the_budget_is_not_answered(model, tokenizer, items):
    item = items.iloc[0]
    long = conversation(item, " ".join(["compute"] * 140))
    out = model_defender(model, tokenizer)([conversation(item), long], 8)
    assert list(out["answered"]) == [True, False] and out["answer"].iloc[1] is None


def test_projection_caps_every_vector():
    vectors = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    capped = project(vectors, 1.0)
    assert torch.allclose(capped.norm(dim=-1), torch.tensor([1.0, 0.5]))


def test_optimised_soft_tokens_respect_the_norm_cap_and_lower_the_loss(model, tokenizer, targets):
    cap = norm_cap(model, tokenizer, 0.5)
    weights = model.get_input_embeddings().weight.detach()[real_token_ids(tokenizer)]
    assert cap < float(weights.norm(dim=-1).max())  # a real bound, tighter than the largest embedding
    soft = optimise_soft_tokens(model, tokenizer, targets, 3, steps=15, lr=0.2, cap=cap, seed=0)
    assert soft.loss_end < soft.loss_start
    assert soft.max_norm() <= cap * (1 + 1e-5)
    assert all(v.shape == (3, weights.size(1)) for v in soft.vectors.values())
    with pytest.raises(ValueError, match="soft-token budget"):
        optimise_soft_tokens(model, tokenizer, targets, 0, steps=1, lr=0.1, cap=cap)


def test_the_soft_token_loop_reads_nothing_back_per_step(model, tokenizer, targets):
    """On CUDA each read-back waits for the device: only the first and the last loss are read, after the loop,
    whatever the number of Adam steps, and the model gets its causal + padding mask ready-made, so its mask
    builder does not check the padding on every forward (the losses are the same floats)."""
    from tests.chat.test_device_syncs import READS

    class Reads(TorchDispatchMode):  # every scalar read-back but the CPU Adam's own step count
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in READS and not any("torch/optim/" in f.filename for f in traceback.extract_stack()):
                Reads.count += 1
            return func(*args, **(kwargs or {}))

    cap = norm_cap(model, tokenizer, 0.5)
    runs, counts = {}, {}
    for steps in (2, 9):
        Reads.count = 0
        with Reads():
            runs[steps] = optimise_soft_tokens(model, tokenizer, targets, 3, steps=steps, lr=0.2, cap=cap, seed=0)
        counts[steps] = Reads.count
    assert counts == {2: 2, 9: 2}
    short = optimise_soft_tokens(model, tokenizer, targets, 3, steps=0, lr=0.2, cap=cap, seed=0)
    assert short.loss_start == short.loss_end == runs[2].loss_start == runs[9].loss_start


def test_the_ready_made_mask_gives_the_models_own_logits(model, tokenizer, targets):
    from assets.lm.inference import causal_padding_mask

    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    ready = causal_padding_mask(model, mask)
    assert ready.shape == (2, 1, 5, 5) and ready.dtype == torch.bool
    with torch.no_grad():
        own, given = (model(input_ids=ids, attention_mask=m, use_cache=False).logits for m in (mask, ready))
    assert torch.equal(own[mask.bool()], given[mask.bool()])


def test_soft_tokens_equal_to_a_words_embedding_generate_exactly_as_that_word(model, tokenizer, targets):
    """The wrapper puts vectors where the placeholders are: with the embeddings of real words it must give
    the defender's outputs on the conversation that holds those words."""
    words = ["5", "+", "7"]
    vectors = model.get_input_embeddings().weight.detach()[tokenizer.convert_tokens_to_ids(words)]
    rows = list(targets.head(3).iterrows())
    table = {}
    for _, item in rows:
        ids = prompt_ids(tokenizer, conversation(item, placeholder(tokenizer, 3)))
        start = ids.index(tokenizer.convert_tokens_to_ids("<|data|>")) + 1
        table[tuple(ids)] = (list(range(start, start + 3)), vectors)
    wrapped = model_defender(SoftPromptModel(model, table), tokenizer)
    plain = model_defender(model, tokenizer)
    for budget in (0, 5):
        soft = wrapped([conversation(item, placeholder(tokenizer, 3)) for _, item in rows], budget)
        real = plain([conversation(item, " ".join(words)) for _, item in rows], budget)
        _same(soft, real)
    # and the vectors really are read: the wrapper's logits are those of the words, not of the placeholders
    key = next(iter(table))
    real_ids = prompt_ids(tokenizer, conversation(rows[0][1], " ".join(words)))
    with torch.no_grad():
        swapped = SoftPromptModel(model, table)(torch.tensor([key])).logits
        assert torch.allclose(swapped, model(torch.tensor([real_ids])).logits, atol=1e-5)
        assert not torch.allclose(swapped, model(torch.tensor([key])).logits, atol=1e-3)


def test_zero_budget_attacks_leave_the_defenders_outputs_unchanged(model, tokenizer, items):
    spec = GridSpec(compute_levels=(0, 4), many_shot=(0, 1), injection=(0, 1), soft_tokens=(0, 1),
                    adaptive=(0, 1), think_less=(0, 1), soft_steps=2)
    defend = model_defender(model, tokenizer)
    runs, info = run_attacks(defend, items, spec, white_box={"model": model, "tokenizer": tokenizer})
    clean = runs[runs["attack"] == "none"]
    for level in (0, 4):
        again = defend([conversation(r) for _, r in items.iterrows()], level)
        rows = clean[clean["compute_level"] == level].set_index("item_id").loc[items["item_id"]]
        assert list(rows["reasoning"]) == list(again["reasoning"]) and list(rows["answer"]) == list(again["answer"])
    soft = runs[runs["attack"] == "soft_tokens"]
    assert set(soft["variant"]) == {1} and (soft["soft_norm"] <= soft["soft_cap"] * (1 + 1e-5)).all()
    assert info["soft_max_norm"] <= info["soft_norm_cap"] * (1 + 1e-5)
    # an empty soft prompt is the clean conversation: the wrapper with no vectors changes nothing
    unchanged = model_defender(SoftPromptModel(model, {}), tokenizer)([conversation(r) for _, r in items.iterrows()], 4)
    _same(unchanged, defend([conversation(r) for _, r in items.iterrows()], 4))


def test_a_placeholder_prompt_without_soft_tokens_is_refused(model, tokenizer, targets):
    """Given the tokenizer, the wrapper refuses to answer a soft-token prompt it holds no vectors for (it
    would run as a silent no-op attack), naming the prompt; clean prompts pass untouched."""
    rows = list(targets.drop_duplicates("prompt").head(2).iterrows())
    item = rows[0][1]
    ids = prompt_ids(tokenizer, conversation(item, placeholder(tokenizer, 2)))
    start = ids.index(tokenizer.convert_tokens_to_ids("<|data|>")) + 1
    vectors = model.get_input_embeddings().weight.detach()[:2]
    wrapped = model_defender(SoftPromptModel(model, {tuple(ids): ([start, start + 1], vectors)}, tokenizer=tokenizer),
                             tokenizer)
    assert wrapped([conversation(item, placeholder(tokenizer, 2))], 2)["answered"].all()
    with pytest.raises(ValueError, match="soft-token placeholders.*" + re.escape(rows[1][1]["prompt"].split()[0])):
        wrapped([conversation(r, placeholder(tokenizer, 2)) for _, r in rows], 2)
    clean = [conversation(r) for _, r in rows]
    _same(model_defender(SoftPromptModel(model, {}, tokenizer=tokenizer), tokenizer)(clean, 3),
          model_defender(model, tokenizer)(clean, 3))


def test_budgets_beyond_what_the_attacks_hold_fail_early_naming_the_field(items):
    with pytest.raises(ValueError, match=r"GridSpec.think_less \(RunsConfig.think_less\) must lie in \[0, 6\]"):
        GridSpec(think_less=(0, 7))
    with pytest.raises(ValueError, match=r"GridSpec.injection \(RunsConfig.injection\) must lie in \[0, 6\]"):
        GridSpec(injection=(0, 2, 8))

    def never(conversations, budget):
        raise AssertionError("the defender was asked before the budgets were checked")

    with pytest.raises(ValueError, match=r"RunsConfig.many_shot\) must lie in \[0, 1\].*ItemsConfig.max_shots"):
        run_attacks(never, items, GridSpec(many_shot=(0, 2)))  # the items carry one example each
