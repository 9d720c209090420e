"""Soft-token attacks: k free input embeddings in the untrusted data, optimised by gradient descent.

The adversary writes k placeholder words (the tokenizer's <unk>) as the data message and replaces their
embeddings with vectors of its choosing (white box: it may backpropagate through the defender). The vectors
are optimised with Adam to make the defender answer the target at once: they minimise the cross-entropy of
`<|/reasoning|> <|answer|> target <|end|>` right after the generation prompt. After every step each vector
is projected back onto the ball of radius `cap`, the largest (or a quantile of the) norm of the model's real
token embeddings (special tokens left out), as the paper caps soft tokens to the norms of real ones.

The objective favours low compute, by construction: it asks for the reasoning to close at once and the
target to follow. At compute level 0 that close is forced anyway, so there the objective is exactly what the
defender does; at higher levels the soft tokens must also act as a think-less attack (stop the reasoning)
before the target can come, and the optimisation never sees a reasoning defender. So part of any drop of
soft-token success with compute is built into the attack, not earned by the defender; the findings say so.
(One objective per compute level would remove that, at several times the optimisation cost.)

`SoftPromptModel` wraps the defender so that the unchanged budget machinery (`assets.chat.budget`) can
generate with the vectors in place: on the prompt pass it swaps the placeholder positions' embeddings for the
item's vectors (it finds the item by the prompt's token ids) and feeds `inputs_embeds`; every later step is
an ordinary token step on the KV cache. k = 0 changes nothing: the data message is empty, as in the clean
conversation. Given the tokenizer, it refuses a prompt whose data message holds the placeholders but which
has no vectors in its table (it would otherwise run as a silent no-op attack).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from assets.chat.format import chat_token_ids, prompt_ids
from assets.lm.inference import causal_padding_mask
from assets.robustness.items import conversation

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


def placeholder(tokenizer: Any, k: int) -> str:
    """The data content that holds k soft tokens."""
    return " ".join([tokenizer.unk_token] * k)


def real_token_ids(tokenizer: Any) -> list[int]:
    """Ids of ordinary words (every special token and the chat format's tokens left out)."""
    special = set(tokenizer.all_special_ids) | set(chat_token_ids(tokenizer).structural)
    return [i for i in range(len(tokenizer)) if i not in special]


def norm_cap(model: Any, tokenizer: Any, quantile: float = 1.0) -> float:
    """The `quantile` of the real token embeddings' norms (1.0: the largest)."""
    import torch

    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"norm quantile must be in (0, 1], got {quantile!r}")
    weight = model.get_input_embeddings().weight.detach().float()
    norms = weight[real_token_ids(tokenizer)].norm(dim=-1)
    return float(torch.quantile(norms, quantile))


def project(vectors: torch.Tensor, cap: float) -> torch.Tensor:
    """Each vector (last dimension) scaled down onto the ball of radius `cap` if it lies outside."""
    norms = vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return vectors * (cap / norms).clamp(max=1.0)


@dataclass
class SoftTokens:
    """Optimised soft tokens: per item id, the prompt's token ids, the placeholder positions and the vectors."""

    prompts: dict[str, tuple[int, ...]]
    positions: dict[str, list[int]]
    vectors: dict[str, torch.Tensor]
    cap: float
    loss_start: float
    loss_end: float

    def table(self, item_ids: Sequence[str]) -> dict[tuple[int, ...], tuple[list[int], torch.Tensor]]:
        """prompt ids -> (positions, vectors) for these items (one soft prompt per distinct prompt)."""
        table = {}
        for item_id in item_ids:
            key = self.prompts[item_id]
            if key in table:
                raise ValueError(f"two items share the prompt of {item_id!r}; answer them in separate calls")
            table[key] = (self.positions[item_id], self.vectors[item_id])
        return table

    def max_norm(self) -> float:
        return max((float(v.norm(dim=-1).max()) for v in self.vectors.values()), default=0.0)


def _placeholder_positions(ids: list[int], tokenizer: Any, k: int) -> list[int]:
    start = ids.index(chat_token_ids(tokenizer).roles["data"]) + 1
    if ids[start:start + k] != [tokenizer.unk_token_id] * k:
        raise ValueError("the soft-token placeholders must be the whole data message")
    return list(range(start, start + k))


def target_ids(tokenizer: Any, target: str) -> list[int]:
    """The completion the soft tokens are optimised towards: close the reasoning, answer the target, end."""
    ids = chat_token_ids(tokenizer)
    words = tokenizer(target, add_special_tokens=False)["input_ids"]
    return [ids.end_reasoning, ids.answer, *words, ids.end]


def optimise_soft_tokens(model: Any, tokenizer: Any, items: pd.DataFrame, k: int, *, steps: int, lr: float,
                         cap: float, seed: int = 0) -> SoftTokens:
    """k soft tokens per item (rows of `items.attack_items` with a target), optimised jointly in one batch."""
    import torch
    import torch.nn.functional as F

    if not isinstance(k, int) or k < 1:
        raise ValueError(f"soft-token budget k must be an integer >= 1, got {k!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"soft-token steps must be an integer >= 0, got {steps!r}")
    if (items["target"] == "").any():
        raise ValueError("soft tokens need a target answer for every item (think_less has none)")
    device = next(model.parameters()).device
    embed = model.get_input_embeddings()
    prompts, positions, targets = [], [], []
    for _, item in items.iterrows():
        ids = prompt_ids(tokenizer, conversation(item, placeholder(tokenizer, k)))
        prompts.append(ids)
        positions.append(_placeholder_positions(ids, tokenizer, k))
        targets.append(target_ids(tokenizer, str(item["target"])))
    lengths = [len(p) + len(t) for p, t in zip(prompts, targets, strict=True)]
    batch = torch.full((len(items), max(lengths)), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full_like(batch, -100)
    mask = torch.zeros_like(batch)
    for i, (p, t) in enumerate(zip(prompts, targets, strict=True)):
        batch[i, :lengths[i]] = torch.tensor(p + t)
        labels[i, len(p):lengths[i]] = torch.tensor(t)
        mask[i, :lengths[i]] = 1
    batch, labels, mask = batch.to(device), labels.to(device), mask.to(device)
    attention = causal_padding_mask(model, mask)  # built once: no padding check (a host sync) per forward
    rows = torch.arange(len(items), device=device)[:, None]
    where = torch.tensor(positions, device=device)
    rng = np.random.default_rng([seed, 21, 7, k])
    start = torch.tensor(rng.choice(real_token_ids(tokenizer), size=(len(items), k)), device=device)
    vectors = project(embed.weight.detach()[start].clone().float(), cap).requires_grad_(True)
    optimiser = torch.optim.Adam([vectors], lr=lr)
    frozen = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    was_training = model.training
    model.eval()
    first_loss = None  # kept on the device: no host sync inside the loop
    try:
        for step in range(steps + 1):
            inputs = embed(batch).detach().clone()
            inputs[rows, where] = vectors.to(inputs.dtype)
            logits = model(inputs_embeds=inputs, attention_mask=attention, use_cache=False).logits.float()
            per_token = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], reduction="none")
            loss = (per_token.sum(1) / (labels[:, 1:] != -100).sum(1)).mean()
            first_loss = loss.detach() if first_loss is None else first_loss
            if step == steps:
                break
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                vectors.copy_(project(vectors, cap))
    finally:
        for p, flag in zip(model.parameters(), frozen, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
    ids = list(items["item_id"])
    return SoftTokens(prompts={i: tuple(p) for i, p in zip(ids, prompts, strict=True)},
                      positions=dict(zip(ids, positions, strict=True)),
                      vectors={i: vectors[j].detach().clone() for j, i in enumerate(ids)},
                      cap=cap, loss_start=float(first_loss), loss_end=float(loss.detach()))


class SoftPromptModel:
    """A causal LM whose prompts carry soft tokens: `table` maps a prompt's token ids to (positions, vectors).

    It delegates everything the budget machinery uses (parameters, config, eval/train, embeddings) to the
    wrapped model, so FLOPs are counted on the same parameters."""

    def __init__(self, model: Any, table: Mapping[tuple[int, ...], tuple[list[int], Any]],
                 tokenizer: Any = None) -> None:
        import inspect

        self.model, self.table, self.tokenizer = model, dict(table), tokenizer
        # (the data role's token, the placeholder's) when given the tokenizer
        self._placeholder = (chat_token_ids(tokenizer).roles["data"], tokenizer.unk_token_id) if tokenizer else None
        self._cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def parameters(self):
        return self.model.parameters()

    @property
    def training(self) -> bool:
        return self.model.training

    def eval(self):
        self.model.eval()
        return self

    def train(self, mode: bool = True):
        self.model.train(mode)
        return self

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    @property
    def config(self):
        return self.model.config

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, past_key_values=None,
                use_cache=None):
        kwargs = {"attention_mask": attention_mask, "use_cache": use_cache,
                  self._cache_name: cache if cache is not None else past_key_values}
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        if input_ids.size(1) == 1:  # a generation step on the cache
            return self.model(input_ids=input_ids, **kwargs)
        mask = attention_mask if attention_mask is not None else input_ids.new_ones(input_ids.shape)
        swaps = []
        for r in range(input_ids.size(0)):
            real = input_ids[r][mask[r].bool()]
            found = self.table.get(tuple(real.tolist()))
            if found is None:
                self._no_vectors(real.tolist())
            else:
                offset = input_ids.size(1) - real.numel()  # left padding
                swaps.append((r, [offset + p for p in found[0]], found[1]))
        if not swaps:
            return self.model(input_ids=input_ids, **kwargs)
        inputs = self.model.get_input_embeddings()(input_ids).clone()
        for r, where, vectors in swaps:
            inputs[r, where] = vectors.to(inputs.dtype).to(inputs.device)
        return self.model(inputs_embeds=inputs, **kwargs)

    def _no_vectors(self, ids: list[int]) -> None:
        """Raise when a prompt without vectors holds the soft-token placeholders (its data message opens with
        <unk>): answering it would be a no-op attack counted as a soft-token one."""
        if self._placeholder is None:
            return
        data, unk = self._placeholder
        at = ids.index(data) + 1 if data in ids else len(ids)
        if at < len(ids) and ids[at] == unk:
            raise ValueError("a prompt holds soft-token placeholders but the soft-token table has no vectors "
                             f"for it: {self.tokenizer.decode(ids)!r}")
