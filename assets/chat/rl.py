"""Reinforcement learning with any reward: group-relative policy optimisation (GRPO, Shao et al. 2024).

Each step draws `prompts_per_step` problems and samples a group of G assistant turns for each with the
budgeted, KV-cached generation of `assets.chat.budget`. A reward function scores every answer,
`reward(rows, answers) -> array` (rows: the task rows, one per sample; answers: the parsed final answers,
None when there was none), so a checker (`assets.chat.tasks.verifiable_reward`) or a judge plugs in alike.
The advantage of a sample is its reward standardised within its group, A = (r - mean) / (std + eps), the
same for all of its tokens. The policy maximises the clipped surrogate of PPO,

    min(rho * A, clip(rho, 1 - epsilon, 1 + epsilon) * A) - beta * KL[policy || reference],

averaged over each completion's tokens and then over completions, where rho is the probability ratio to
the policy that sampled, and the KL to the frozen reference model (the policy at the start, by default) is
the unbiased estimator exp(ref - logp) - (ref - logp) - 1 per token. Tokens the budget forced (the close
of the reasoning at the budget, the answer marker, the end after max_answer_tokens) were not the
policy's choice and are left out of the objective. Log-probabilities are the model's own at the sampling
temperature; the grammar's bans (no answer marker while reasoning) are not renormalised into them, a small
bias only while a policy still puts mass on banned tokens.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from assets.chat.budget import derived_seed, generate_with_budget, reasoning_budget
from assets.chat.tasks import prompt_messages

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

Reward = Callable[[pd.DataFrame, Sequence[str | None]], np.ndarray]
CURVE_COLUMNS = [
    "step",
    "mean_reward",
    "reward_std",
    "kl",
    "loss",
    "mean_generated_tokens",
    "mean_reasoning_tokens",
    "rollouts_per_s",
    "seconds",
]


@dataclass(frozen=True)
class GRPOConfig:
    """steps: policy updates rounds; each samples prompts_per_step prompts x group_size completions.
    updates_per_batch: gradient steps on each batch of rollouts (1: the ratio is 1 at the step and the
    clip only matters from the second update). Constant learning rate (AdamW), gradient clipping by norm.
    budget / max_answer_tokens / temperature: how rollouts are sampled (`generate_with_budget`).
    bf16: bfloat16 autocast for the rollouts and the update's forward passes (what `Compute.use_bf16` turns on
    on CUDA); log-probabilities, ratios, advantages and the KL are float32 in either case. The ratio of the
    first update is exactly 1 either way: the sampling policy's log-probabilities are that same forward's."""

    steps: int = 50
    prompts_per_step: int = 8
    group_size: int = 8
    learning_rate: float = 1e-4
    beta: float = 0.04
    clip_epsilon: float = 0.2
    updates_per_batch: int = 1
    budget: int | str = 16
    max_answer_tokens: int = 8
    temperature: float = 1.0
    grad_clip: float | None = 1.0
    weight_decay: float = 0.0
    rollout_batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    bf16: bool = False

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "prompts_per_step",
            "updates_per_batch",
            "max_answer_tokens",
            "rollout_batch_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GRPOConfig.{name} must be a positive int, got {value!r}")
        if not isinstance(self.group_size, int) or self.group_size < 2:
            raise ValueError(
                f"GRPOConfig.group_size must be an int >= 2 (advantages compare within a group), "
                f"got {self.group_size!r}"
            )
        reasoning_budget(self.budget)
        for name, low in (("learning_rate", 0.0), ("temperature", 0.0)):
            value = getattr(self, name)
            if not (value > low and math.isfinite(value)):
                raise ValueError(f"GRPOConfig.{name} must be a finite number > {low}, got {value!r}")
        if self.beta < 0 or self.clip_epsilon <= 0 or self.weight_decay < 0:
            raise ValueError(
                "GRPOConfig.beta and weight_decay must be >= 0 and clip_epsilon > 0, got "
                f"{self.beta!r}, {self.weight_decay!r}, {self.clip_epsilon!r}"
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"GRPOConfig.grad_clip must be None or > 0, got {self.grad_clip!r}")

    @classmethod
    def of(cls, settings: Mapping[str, Any], device: str, *, bf16: bool = False) -> GRPOConfig:
        """The config from the fields of ``settings`` (e.g. a Dagster Config's dump) that it has, others
        ignored, on ``device`` with bf16 autocast as given."""
        fields = {f.name for f in dataclasses.fields(cls)} - {"device", "bf16"}
        return cls(**{k: v for k, v in settings.items() if k in fields}, device=device, bf16=bf16)


@dataclass
class GRPOResult:
    """curve: one row per step (CURVE_COLUMNS); seconds: wall time of the whole run."""

    curve: pd.DataFrame
    seconds: float


MOVED_REWARD_GAIN = 0.05  # mean reward over the curve's last third minus its first third
MOVED_KL = 0.01  # final KL to the reference, nats per token
MOVED_RULE = (f"RL moved the policy when the mean reward over the curve's last third exceeds its first third's "
              f"by >= {MOVED_REWARD_GAIN:g} and the final KL to the starting model is >= {MOVED_KL:g} nats per "
              "token (both: a reward that rose by chance, or a drift that bought no reward, is no RL training)")


def rl_movement(first_reward: float, last_reward: float, final_kl: float) -> dict:
    """Did RL move the policy (MOVED_RULE)? {"rl_moved_policy": bool, "rl_reward_gain": last - first,
    "rl_moved_rule": the rule, "rl_movement": a plain sentence}; False when a number is missing (NaN)."""
    gain = float(last_reward) - float(first_reward)
    moved = bool(gain >= MOVED_REWARD_GAIN and float(final_kl) >= MOVED_KL)
    numbers = (f"mean reward {first_reward:.3f} -> {last_reward:.3f} (first vs last third of the curve), final "
               f"KL to the starting model {final_kl:.4f}")
    sentence = (f"RL moved the policy: {numbers}." if moved else
                f"RL did not move the policy: {numbers}; by the rule this model is effectively the one it started "
                "from, not an RL-trained improvement on it.")
    return {"rl_moved_policy": moved, "rl_reward_gain": gain, "rl_moved_rule": MOVED_RULE, "rl_movement": sentence}


def group_advantages(rewards: np.ndarray, group_size: int, eps: float = 1e-4) -> np.ndarray:
    """(r - group mean) / (group std + eps), for rewards laid out group after group."""
    r = np.asarray(rewards, dtype=np.float64).reshape(-1, group_size)
    std = r.std(axis=1, ddof=1, keepdims=True)
    return ((r - r.mean(axis=1, keepdims=True)) / (std + eps)).reshape(-1)


def rollout_tensors(samples: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sequences [N, L], targets [N, L-1], loss_mask [N, L-1]) from generate_with_budget's samples.

    Each row is prompt + completion, right-padded (causal attention: no mask needed, positions as in
    generation). targets[:, t] is the token after position t; loss_mask is 1 where that token is a completion
    token the policy chose (not forced).
    """
    import torch

    lengths = [len(p) + len(c) for p, c in zip(samples["prompt_ids"], samples["completion_ids"], strict=True)]
    sequences = torch.zeros(len(samples), max(lengths), dtype=torch.long)
    mask = torch.zeros(len(samples), max(lengths) - 1, dtype=torch.bool)
    for i, (p, c, forced) in enumerate(
        zip(samples["prompt_ids"], samples["completion_ids"], samples["forced"], strict=True)
    ):
        sequences[i, : lengths[i]] = torch.tensor(list(p) + list(c))
        mask[i, len(p) - 1 : lengths[i] - 1] = ~torch.tensor(list(forced), dtype=torch.bool)
    return sequences, sequences[:, 1:], mask


def token_logprobs(
    model: Any, sequences: torch.Tensor, targets: torch.Tensor, temperature: float
) -> torch.Tensor:
    """log p(targets[:, t] | sequences[:, :t+1]) under the model at this temperature, [N, L-1] float32."""
    import torch.nn.functional as F

    logits = model(input_ids=sequences, use_cache=False).logits[:, :-1].float() / temperature
    # cross_entropy = -log_softmax gathered at the target, without keeping a second [N, L, V] tensor.
    return -F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")


def grpo(
    policy: Any,
    tokenizer: Any,
    rows: pd.DataFrame,
    reward: Reward,
    cfg: GRPOConfig,
    *,
    reference: Any | None = None,
    on_log: Callable[[dict], None] | None = None,
) -> GRPOResult:
    """Train `policy` in place with GRPO on the prompts of `rows` (a task table: its "messages" column).

    `reference` defaults to a frozen copy of the policy as it is now. Prompts are visited in a seeded order,
    a fresh permutation per epoch. Returns the per-step curve: mean reward of the step's rollouts (the
    policy before that step's update), reward std, mean per-token KL to the reference, loss, lengths,
    rollouts per second.
    """
    import torch

    if "messages" not in rows.columns or len(rows) == 0:
        raise ValueError("grpo: rows must be a non-empty task table with a 'messages' column")
    device = cfg.device
    policy.to(device)
    if reference is None:  # kept at beta = 0 too: the KL to it is how far RL moved the policy (`rl_movement`)
        reference = copy.deepcopy(policy)
    reference.to(device).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.99), weight_decay=cfg.weight_decay
    )
    rows = rows.reset_index(drop=True)
    order_rng = np.random.default_rng([cfg.seed, 18, 5])
    order, position = order_rng.permutation(len(rows)), 0
    curve, started = [], time.perf_counter()
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=cfg.bf16)
    for step in range(1, cfg.steps + 1):
        picked = []
        while len(picked) < cfg.prompts_per_step:
            if position == len(order):
                order, position = order_rng.permutation(len(rows)), 0
            picked.append(int(order[position]))
            position += 1
        batch = rows.iloc[picked].reset_index(drop=True)
        t0 = time.perf_counter()
        with autocast:
            samples = generate_with_budget(
                policy,
                tokenizer,
                [prompt_messages(r) for _, r in batch.iterrows()],
                cfg.budget,
                k=cfg.group_size,
                temperature=cfg.temperature,
                max_answer_tokens=cfg.max_answer_tokens,
                batch_size=cfg.rollout_batch_size,
                seed=derived_seed(cfg.seed, step),  # chunk seeds are derived from it in turn
            )
        rollout_seconds = time.perf_counter() - t0
        sample_rows = batch.iloc[samples["prompt_index"].to_numpy()].reset_index(drop=True)
        rewards = np.asarray(reward(sample_rows, samples["answer"].tolist()), dtype=np.float64)
        if rewards.shape != (len(samples),) or not np.isfinite(rewards).all():
            raise ValueError(
                f"reward must return {len(samples)} finite numbers (one per sample), got shape "
                f"{rewards.shape}"
            )
        advantages = torch.tensor(
            group_advantages(rewards, cfg.group_size), dtype=torch.float32, device=device
        )
        sequences, targets, mask = (t.to(device) for t in rollout_tensors(samples))
        n_tokens = mask.sum(1).clamp(min=1)
        with torch.no_grad(), autocast:
            ref_logp = token_logprobs(reference, sequences, targets, cfg.temperature)
        policy.train()
        old_logp = None
        for _ in range(cfg.updates_per_batch):
            with autocast:
                logp = token_logprobs(policy, sequences, targets, cfg.temperature)
            if old_logp is None:
                old_logp = logp.detach()  # the policy that sampled (up to numerics)
            ratio = (logp - old_logp).exp()
            surrogate = torch.minimum(
                ratio * advantages[:, None],
                ratio.clamp(1 - cfg.clip_epsilon, 1 + cfg.clip_epsilon) * advantages[:, None],
            )
            log_ratio = ref_logp - logp
            kl = log_ratio.exp() - log_ratio - 1  # measured at beta = 0 too, where it weighs nothing
            per_token = -(surrogate - cfg.beta * kl)
            loss = ((per_token * mask).sum(1) / n_tokens).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
            optimizer.step()
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"GRPO loss is {loss_value} at step {step}")
        row = {
            "step": step,
            "mean_reward": float(rewards.mean()),
            "reward_std": float(rewards.std()),
            "kl": float(((kl.detach() * mask).sum(1) / n_tokens).mean()),
            "loss": loss_value,
            "mean_generated_tokens": float(samples["generated_tokens"].mean()),
            "mean_reasoning_tokens": float(samples["reasoning_tokens"].mean()),
            "rollouts_per_s": len(samples) / max(rollout_seconds, 1e-9),
            "seconds": time.perf_counter() - started,
        }
        curve.append(row)
        if on_log is not None:
            on_log(dict(row))
    policy.eval()
    return GRPOResult(curve=pd.DataFrame(curve, columns=CURVE_COLUMNS), seconds=time.perf_counter() - started)
