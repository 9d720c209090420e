"""GRPO: group-relative advantages, forced tokens out of the objective, and a reward that goes up."""

import dataclasses

import numpy as np
import pytest
import torch

from assets.chat.budget import derived_seed, generate_with_budget
from assets.chat.rl import MOVED_RULE, GRPOConfig, group_advantages, grpo, rl_movement, rollout_tensors
from assets.chat.tasks import ArithmeticSpec, arithmetic_problems, prompt_messages
from assets.lm.model import ModelSize
from tests.chat.conftest import make_model, make_tokenizer

SIZE = ModelSize("rl-tiny", d_model=32, n_layers=1, n_heads=4, d_ff=64, context_length=32)
TARGET = "7"


def first_word_is_target(rows, answers):
    """A verifiable reward a tiny model can learn in a few dozen steps: the answer starts with "7"."""
    return np.array([1.0 if (a or "").split()[:1] == [TARGET] else 0.0 for a in answers])


@pytest.fixture(scope="module")
def problems():
    # One-operation chains over digits: a small vocabulary (35 tokens), so the target starts near 1/26.
    return arithmetic_problems(
        ArithmeticSpec(seed=0, chain_ops=(1, 1), sum_share=0.0, n_train=16, n_validation=8, n_test=0)
    )


@pytest.fixture(scope="module")
def small_tokenizer(problems):
    return make_tokenizer(problems)


def test_group_advantages():
    adv = group_advantages(np.array([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0]), 4)
    assert adv[0] > 0 and (adv[1:4] < 0).all() and adv[:4].sum() == pytest.approx(0, abs=1e-9)
    assert (adv[4:] == 0).all()  # a group that all agrees teaches nothing
    np.testing.assert_allclose(adv[:4], (np.array([1, 0, 0, 0]) - 0.25) / (0.5 + 1e-4))


def test_forced_tokens_are_out_of_the_objective(problems, small_tokenizer):
    model = make_model(small_tokenizer, size=SIZE)
    samples = generate_with_budget(
        model, small_tokenizer, [prompt_messages(problems.iloc[0])], 2, k=3, max_answer_tokens=1
    )
    sequences, targets, mask = rollout_tensors(samples)
    for i, (_, s) in enumerate(samples.iterrows()):
        start = len(s["prompt_ids"]) - 1
        chosen = mask[i, start : start + len(s["completion_ids"])]
        assert chosen.tolist() == [not f for f in s["forced"]]
        assert mask[i].sum() == chosen.sum()  # nothing outside the completion
        assert targets[i, start : start + len(s["completion_ids"])].tolist() == s["completion_ids"]
        # the answer marker is always forced, and with max_answer_tokens=1 so is the end
        assert s["forced"][-1] and s["forced"][s["reasoning_tokens"] + 1]


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
def test_grpo_raises_a_verifiable_reward(problems, small_tokenizer, bf16):
    train, val = problems[problems.split == "train"], problems[problems.split == "validation"]
    conversations = [prompt_messages(r) for _, r in val.iterrows()]

    def success_rate(model):
        samples = generate_with_budget(
            model, small_tokenizer, conversations, 2, k=16, max_answer_tokens=1, seed=123
        )
        return float(first_word_is_target(None, samples["answer"].tolist()).mean())

    policy = make_model(small_tokenizer, seed=0, size=SIZE)
    reference_before = {k: v.clone() for k, v in policy.state_dict().items()}
    before = success_rate(policy)
    cfg = GRPOConfig(
        steps=30,
        prompts_per_step=8,
        group_size=8,
        learning_rate=1e-2,
        beta=0.04,
        budget=2,
        max_answer_tokens=1,
        seed=0,
    )
    cfg = dataclasses.replace(cfg, bf16=bf16)  # bf16 autocast, as on CUDA (forced on here on CPU)
    reference = make_model(small_tokenizer, seed=0, size=SIZE)
    head_dtypes = set()
    hook = policy.lm_head.register_forward_hook(lambda module, args, out: head_dtypes.add(out.dtype))
    result = grpo(policy, small_tokenizer, train, first_word_is_target, cfg, reference=reference)
    hook.remove()
    assert head_dtypes == {torch.bfloat16 if bf16 else torch.float32}  # rollouts and updates alike
    after = success_rate(policy)
    curve = result.curve
    print(
        f"GRPO reward {before:.3f} -> {after:.3f}; curve {curve['mean_reward'].iloc[:5].mean():.3f} -> "
        f"{curve['mean_reward'].iloc[-5:].mean():.3f} in {result.seconds:.1f}s, "
        f"{curve['rollouts_per_s'].median():.0f} rollouts/s ({'bf16' if bf16 else 'float32'})"
    )
    # From about 1/26 to most answers (0.99 with these seeds; seeds 1-3 give 0.91-0.99).
    assert before < 0.1 and after > before + 0.5
    assert curve["mean_reward"].iloc[-5:].mean() > curve["mean_reward"].iloc[:5].mean() + 0.5
    assert list(curve["step"]) == list(range(1, 31)) and curve["kl"].iloc[-1] > 0
    assert curve["kl"].iloc[0] == 0  # policy == reference at the first step: the same forward, bf16 or not
    assert (curve["mean_reasoning_tokens"] <= 2).all()
    # The reference stays where it was; the policy moved.
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(value, reference_before[name])
    assert any(not torch.equal(v, reference_before[k]) for k, v in policy.state_dict().items())


def test_without_a_kl_penalty_the_kl_is_still_measured(problems, small_tokenizer):
    """beta = 0 (no penalty, as DAPO / Dr. GRPO train) kept no reference, so the curve's KL read 0 however far
    the policy moved and `rl_movement` said RL did not move it. The KL is measured all the same."""
    train = problems[problems.split == "train"]
    cfg = GRPOConfig(steps=6, prompts_per_step=4, group_size=8, learning_rate=1e-2, beta=0.0, budget=2,
                     max_answer_tokens=1, seed=0)
    policy = make_model(small_tokenizer, seed=0, size=SIZE)
    curve = grpo(policy, small_tokenizer, train, first_word_is_target, cfg).curve
    assert curve["kl"].iloc[0] == 0 and curve["kl"].iloc[-1] > 1e-3  # moved from where it started (was 0)


def test_bad_rewards_and_configs_are_refused(problems, small_tokenizer):
    policy = make_model(small_tokenizer, size=SIZE)
    with pytest.raises(ValueError, match="reward must return 16 finite numbers"):
        grpo(
            policy,
            small_tokenizer,
            problems,
            lambda rows, answers: np.zeros(3),
            GRPOConfig(steps=1, prompts_per_step=2, group_size=8, budget=1, max_answer_tokens=1),
        )
    with pytest.raises(ValueError, match="group_size must be an int >= 2"):
        GRPOConfig(group_size=1)
    with pytest.raises(ValueError, match="effort must be one of"):
        GRPOConfig(budget="maximal")


def test_rollout_seeds_never_collide_across_steps_and_chunks():
    # the old scheme (seed * 100_003 + step, then + chunk_index) gave step s chunk 1 the stream of step s + 1
    # chunk 0; seeds derived through SeedSequence from (seed, step) and then (step seed, chunk) are distinct
    old = [0 * 100_003 + step + chunk for step in range(50) for chunk in range(4)]
    assert len(set(old)) < len(old)
    new = [derived_seed(derived_seed(seed, step), chunk) for seed in (0, 1) for step in range(50) for chunk in range(4)]
    assert len(set(new)) == len(new)
    assert derived_seed(3, 7) == derived_seed(3, 7) and 0 <= derived_seed(3, 7) < 2**32


def test_rl_movement_says_when_rl_did_not_move_the_policy():
    """The demo's chat-rl (reward 0.67 -> 0.57, KL 0.001) did not move; a rise with a real KL did; either alone
    is not enough, and a missing number is no movement."""
    still = rl_movement(0.67, 0.57, 0.001)
    assert not still["rl_moved_policy"] and still["rl_movement"].startswith("RL did not move the policy")
    assert "effectively" in still["rl_movement"] and still["rl_moved_rule"] == MOVED_RULE
    assert still["rl_reward_gain"] == pytest.approx(-0.10)
    assert rl_movement(0.4, 0.6, 0.05)["rl_moved_policy"]
    assert not rl_movement(0.4, 0.6, 0.001)["rl_moved_policy"]  # reward rose but the policy barely moved
    assert not rl_movement(0.6, 0.6, 0.5)["rl_moved_policy"]  # drifted for no reward
    assert not rl_movement(float("nan"), 0.6, 0.5)["rl_moved_policy"]
