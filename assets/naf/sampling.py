"""Scoring and sampling under one model or a combination of models, and CP-k rejection sampling.

Sampling runs every model of a combination in lock-step, each with its own KV cache (a model whose forward
takes no cache gets plain full forward passes instead). Prompts in a batch all have the same length (no
padding), so position t of every row is token t.

A *generator* is what produces continuations: a list of models plus a combination rule over their
next-token log-probs (`assets.naf.combine`); `single(0)` over one model is that model on its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from assets.naf.combine import Rule, sequence_k_bits

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


def _check_ids(ids: Any, field: str) -> None:
    import torch

    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.size(1) == 0:
        raise ValueError(f"{field} must be a LongTensor [N, T] with T >= 1, got {getattr(ids, 'shape', ids)!r}")


def _forward_params(model: Any) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


def next_token_logprobs(model: Any, ids: torch.Tensor, keep: int | None = None) -> torch.Tensor:
    """log p(· | ids[:, :t+1]) for every position t (or the last ``keep`` positions): [N, T, V] float32."""
    import torch

    device = next(model.parameters()).device
    kwargs = {"logits_to_keep": keep} if keep and "logits_to_keep" in _forward_params(model) else {}
    with torch.inference_mode():
        logits = model(input_ids=ids.to(device), use_cache=False, **kwargs).logits
    if keep:
        logits = logits[:, -keep:]
    return logits.float().log_softmax(-1)


class _Stepper:
    """One model's next-token log-probs as a sequence grows by one token a step, with a KV cache."""

    def __init__(self, model: Any, use_cache: bool = True) -> None:
        params = _forward_params(model)
        # transformers v5 names the cache argument `cache`, v4 `past_key_values`
        self.cache_key = next((k for k in ("cache", "past_key_values") if k in params), None) if use_cache else None
        self.model, self.cache = model, None
        self.device = next(model.parameters()).device

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """log-probs [N, V] (on the model's device) of the token after ``ids`` [N, T]; call with ids one token
        longer each time."""
        import torch

        if self.cache_key is None:
            return next_token_logprobs(self.model, ids, keep=1)[:, -1]
        kwargs: dict[str, Any] = {"use_cache": True}
        if self.cache is not None:
            kwargs[self.cache_key] = self.cache
            ids = ids[:, -1:]
        with torch.inference_mode():
            out = self.model(input_ids=ids.to(self.device), **kwargs)
        cache = getattr(out, "cache", None)
        self.cache = cache if cache is not None else getattr(out, "past_key_values", None)
        return out.logits[:, -1].float().log_softmax(-1)


@dataclass
class TokenScores:
    """Per-token log-probs (nats) of ids[:, start:] under each named model and rule; log Z per rule."""

    logprob: dict[str, torch.Tensor]  # name -> [N, n]
    log_z: dict[str, torch.Tensor]  # rule name -> [N, n]


def score_tokens(models: Mapping[str, Any], ids: torch.Tensor, start: int,
                 rules: Mapping[str, tuple[Sequence[str], Rule]] | None = None,
                 batch_size: int = 64) -> TokenScores:
    """Score tokens ids[:, start:] (teacher forcing) under every model and every combination rule.

    rules: name -> (names of the models it combines, rule). Returns CPU tensors [N, T - start].
    """
    import torch

    _check_ids(ids, "ids")
    if not 1 <= start < ids.size(1):
        raise ValueError(f"start must be in [1, {ids.size(1) - 1}] (a token needs a context), got {start}")
    rules = dict(rules or {})
    for name, (members, _) in rules.items():
        unknown = [m for m in members if m not in models]
        if unknown:
            raise ValueError(f"rule {name!r} combines unknown models {unknown}; models: {list(models)}")
    logprob: dict[str, list] = {n: [] for n in [*models, *rules]}
    log_z: dict[str, list] = {n: [] for n in rules}
    for lo in range(0, ids.size(0), batch_size):
        chunk = ids[lo: lo + batch_size]
        keep = chunk.size(1) - start
        # full distributions stay where the models run; only the gathered token scores come back
        full = {n: next_token_logprobs(m, chunk[:, :-1], keep=keep) for n, m in models.items()}
        targets = {n: chunk[:, start:].unsqueeze(-1).to(lp.device) for n, lp in full.items()}
        for n, lp in full.items():
            logprob[n].append(lp.gather(-1, targets[n]).squeeze(-1).cpu())
        for n, (members, rule) in rules.items():
            lp, lz = rule([full[m].to(full[members[0]].device) for m in members])
            logprob[n].append(lp.gather(-1, targets[members[0]]).squeeze(-1).cpu())
            log_z[n].append(lz.cpu())
    return TokenScores({n: torch.cat(v) for n, v in logprob.items()}, {n: torch.cat(v) for n, v in log_z.items()})


def sample(models: Sequence[Any], rule: Rule, prompt_ids: torch.Tensor, max_new_tokens: int, *,
           generator: torch.Generator, temperature: float = 1.0, batch_size: int = 64,
           use_cache: bool = True) -> torch.Tensor:
    """Sample ``max_new_tokens`` tokens after each prompt from rule(models); returns [N, P + n] (CPU).

    temperature 0 is greedy (argmax of the combined distribution); otherwise the combined log-probs are
    divided by the temperature before sampling (1 = the combined model itself). use_cache=False recomputes
    every prefix with full forward passes (same result, slower).

    Every token is combined and drawn where the models run (no [N, V] copy to the host per token): with
    ``generator`` on that device it draws the tokens; otherwise (a CPU generator, models on CUDA) it seeds a
    generator on the device with one draw per call (`_on_device`).
    """
    import torch

    _check_ids(prompt_ids, "prompt_ids")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    device = next(models[0].parameters()).device
    draws = _on_device(generator, device) if temperature != 0 else generator
    out = []
    for lo in range(0, prompt_ids.size(0), batch_size):
        ids = prompt_ids[lo: lo + batch_size].to(device)
        steppers = [_Stepper(m, use_cache) for m in models]
        for _ in range(max_new_tokens):
            log_p, _ = rule([step(ids).to(device) for step in steppers])
            if temperature == 0:
                nxt = log_p.argmax(-1)
            else:
                nxt = torch.multinomial((log_p / temperature).softmax(-1), 1, generator=draws).squeeze(-1)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
        out.append(ids.cpu())
    return torch.cat(out)


def _on_device(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """``generator`` itself when it lives on ``device`` (on the CPU: the same stream as always); else a generator
    on ``device`` seeded with one draw from it, so runs stay reproducible from the caller's seed."""
    import torch

    if generator.device == torch.device(device):
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


@dataclass
class CPKResult:
    """CP-k outputs: the kept sequences, their k_x (bits), whether each passed k, and tries used."""

    ids: torch.Tensor  # [N, P + n]
    k_bits: torch.Tensor  # [N]
    accepted: torch.Tensor  # [N] bool
    tries: torch.Tensor  # [N] int: proposals drawn for the row
    first_accepted: torch.Tensor  # [N] bool: the first proposal passed (its mean estimates P(accept | x))


def cp_k_sample(proposal: Any, safe_models: Sequence[Any], prompt_ids: torch.Tensor, max_new_tokens: int,
                k_bits: float, *, max_tries: int, generator: torch.Generator, batch_size: int = 64) -> CPKResult:
    """CP-k: draw y ~ proposal(·|x) and keep it if k_x(y) = max_i log2 proposal(y|x)/q_i(y|x) <= k_bits.

    Rejected rows are redrawn, up to ``max_tries`` proposals per row; a row that never passes keeps its
    lowest-k proposal and is reported with accepted=False (the algorithm would abstain there).
    """
    import torch

    _check_ids(prompt_ids, "prompt_ids")
    if not isinstance(max_tries, int) or max_tries < 1:
        raise ValueError(f"max_tries must be a positive int, got {max_tries!r}")
    if not k_bits >= 0:
        raise ValueError(f"k_bits must be >= 0, got {k_bits!r}")
    if not safe_models:
        raise ValueError("cp_k_sample needs at least one safe model")
    from assets.naf.combine import single

    n, start = prompt_ids.size(0), prompt_ids.size(1)
    best_ids = torch.zeros(n, start + max_new_tokens, dtype=torch.long)
    best_k = torch.full((n,), float("inf"))
    accepted = torch.zeros(n, dtype=torch.bool)
    tries = torch.zeros(n, dtype=torch.long)
    first = torch.zeros(n, dtype=torch.bool)
    named = {"proposal": proposal, **{f"safe{i}": m for i, m in enumerate(safe_models)}}
    for attempt in range(max_tries):
        todo = (~accepted).nonzero().squeeze(-1)
        if todo.numel() == 0:
            break
        ids = sample([proposal], single(0), prompt_ids[todo], max_new_tokens, generator=generator,
                     batch_size=batch_size)
        tries[todo] += 1
        if max_new_tokens == 0:
            k = torch.zeros(todo.numel())
        else:
            scores = score_tokens(named, ids, start, batch_size=batch_size)
            k = sequence_k_bits(scores.logprob["proposal"],
                                [scores.logprob[f"safe{i}"] for i in range(len(safe_models))])
        ok = k <= k_bits
        if attempt == 0:
            first = ok.clone()
        better = ok | (k < best_k[todo])
        rows = todo[better]
        best_ids[rows] = ids[better]
        best_k[rows] = k[better]
        accepted[todo[ok]] = True
    return CPKResult(best_ids, best_k, accepted, tries, first)
