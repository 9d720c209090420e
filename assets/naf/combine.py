"""Token-level combinations of models trained on disjoint shards, and the k-NAF bound of a sequence.

Vyas, Kakade & Barak (2023) build a near access-free model p from models q_1 … q_m that each never saw some
shard of the data:

- CP-Δ:  p(y|x) = min_i q_i(y|x) / Z(x), with Z = Σ_y min_i q_i(y|x) = 1 - TV(q_1, q_2) for two models.
  Every p(y|x)/q_i(y|x) ≤ 1/Z, so p is k-NAF for the max-divergence with k_x = -log2 Z(x).
- CP-KL: p(y|x) = (Π_i q_i(y|x))^{1/m} / Z(x) (√(q1·q2) for two models). Σ_i KL(p‖q_i) = -m·ln Z, so
  max_i KL(p‖q_i) ≤ -m·log2 Z(x) bits.

Here the rules are applied at the token level (y is one next token, x the prompt and the tokens so far), so
the sequence-level model is the product of per-token combinations. The per-sequence bound of a generated
sequence y is k_x(y) = max_i log2 p(y|x)/q_i(y|x), the log-ratio summed over y's tokens.

All functions take natural-log probabilities (torch tensors, last dimension = vocabulary) and return
natural logs; bits are only used for k.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

LN2 = math.log(2.0)

# A rule maps the models' next-token log-probs [M x (..., V)] to (log p [..., V], log Z [...]).
Rule = Callable[[Sequence["torch.Tensor"]], tuple["torch.Tensor", "torch.Tensor"]]


def _stack(log_qs: Sequence[torch.Tensor]) -> torch.Tensor:
    import torch

    if len(log_qs) < 1:
        raise ValueError("log_qs must hold at least one model's log-probabilities")
    shapes = {tuple(q.shape) for q in log_qs}
    if len(shapes) != 1:
        raise ValueError(f"log_qs must all have the same shape [..., V], got {sorted(shapes)}")
    return torch.stack([q.float() for q in log_qs])


def _normalise(log_unnormalised: torch.Tensor, rule: str) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    log_z = torch.logsumexp(log_unnormalised, dim=-1)
    if not torch.isfinite(log_z).all():
        raise ValueError(f"{rule}: the combined distribution has no mass at some position "
                         "(the models' supports are disjoint); it cannot be normalised")
    return log_unnormalised - log_z.unsqueeze(-1), log_z


def cp_delta(log_qs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """CP-Δ: p ∝ min_i q_i. Returns (log p, log Z) with Z = Σ_y min_i q_i(y) ∈ (0, 1]."""
    return _normalise(_stack(log_qs).min(dim=0).values, "cp_delta")


def cp_kl(log_qs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """CP-KL: p ∝ geometric mean of the q_i (√(q1·q2) for two). Returns (log p, log Z), Z ∈ (0, 1]."""
    return _normalise(_stack(log_qs).mean(dim=0), "cp_kl")


def single(index: int) -> Rule:
    """The rule that is just model ``index`` (log Z = 0): p, q1 or q2 on their own."""

    def rule(log_qs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(log_qs):
            raise ValueError(f"single({index}) needs at least {index + 1} models, got {len(log_qs)}")
        q = log_qs[index].float()
        return q, q.new_zeros(q.shape[:-1])

    return rule


def sequence_k_bits(log_p_tokens: torch.Tensor, log_q_tokens: Sequence[torch.Tensor],
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """k_x(y) = max_i log2 p(y|x)/q_i(y|x) per sequence, summing token log-ratios over y.

    log_p_tokens [N, T]: log p of each generated token; log_q_tokens: one [N, T] tensor per safe model, the
    log-prob of the same tokens; mask [N, T] (True = a token of y) defaults to all tokens. Returns [N] bits.
    """
    import torch

    q = _stack(log_q_tokens)
    if q.shape[1:] != log_p_tokens.shape:
        raise ValueError(f"log_q_tokens entries must have log_p_tokens' shape {tuple(log_p_tokens.shape)}, "
                         f"got {tuple(q.shape[1:])}")
    keep = torch.ones_like(log_p_tokens, dtype=torch.bool) if mask is None else mask.bool()
    ratio = (log_p_tokens.float().unsqueeze(0) - q).masked_fill(~keep.unsqueeze(0), 0.0)
    return ratio.sum(dim=-1).max(dim=0).values / LN2


RULES: dict[str, Rule] = {"cp_delta": cp_delta, "cp_kl": cp_kl}
