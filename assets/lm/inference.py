"""Scoring and sampling with any Hugging Face causal LM.

- `token_statistics`: per-position log-probability of the actual next token, predictive entropy (nats) and a
  hidden state, on padded batches. The uncertainty, royalties and NAF studies read these.
- `sequence_logprob`: log p(continuation | prompt), summed over the continuation's tokens.
- `generate`: a plain sampling loop with a KV cache. Hugging Face `LogitsProcessor`s edit the scores (the KGW
  watermark is one) and an optional custom sampler picks the token (Kuditipudi's EXP watermark is one).

Alignment convention: every per-position output is indexed by the position t of the last token of the
context, i.e. the prediction made after reading tokens 0..t. So logprob[:, t] = log p(x[t+1] | x[:t+1]),
entropy[:, t] is the entropy of that distribution and hidden[:, t] the representation it was read from.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

Sampler = Callable[["torch.Tensor", int], "torch.Tensor"]

# `generate` off the CPU asks whether every row has finished (a host sync) once per this many steps.
FINISHED_CHECK_STEPS = 8


def _forward_params(model: Any) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


def _cache_kwarg(model: Any) -> str:
    """transformers v5 renamed the KV-cache argument `past_key_values` to `cache`; accept either."""
    return "cache" if "cache" in _forward_params(model) else "past_key_values"


def _output_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def takes_sdpa_bool_mask(model: Any) -> bool:
    """Whether the model takes a ready [B, 1, Q, K] bool attention mask as SDPA does (a Llama on SDPA): given one,
    the Hugging Face mask builder skips its padding check, a host sync per forward on CUDA."""
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) == "llama" and getattr(config, "_attn_implementation", None) == "sdpa"


def causal_padding_mask(model: Any, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mask to pass with a padded batch [B, T] in one full forward: the [B, 1, T, T] bool mask the model would
    build (causal and not padding) where it takes one (`takes_sdpa_bool_mask`), else `attention_mask` as it is."""
    import torch

    if not takes_sdpa_bool_mask(model):
        return attention_mask
    width = attention_mask.size(1)
    causal = torch.ones(width, width, dtype=torch.bool, device=attention_mask.device).tril()
    return causal[None, None] & attention_mask.bool()[:, None, None, :]


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip padding, so a left-padded row sees the same positions as the unpadded one."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _model_device(model: Any) -> torch.device:
    return next(model.parameters()).device


def token_statistics(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    layer: int | None = None,
    batch_size: int = 32,
    *,
    return_hidden: bool = True,
) -> dict[str, Any]:
    """Per-position next-token statistics of `input_ids` [B, T] (LongTensor) under `model`.

    attention_mask [B, T] (1 = token, 0 = padding; left or right padding) defaults to all ones.
    layer picks an entry of the model's `hidden_states` tuple: 0 = token embeddings, i = output of block i,
    n_layers (or -1 / None) = the final hidden state the LM head reads (for Llama, after the final norm).

    Returns CPU tensors (module docstring gives the alignment):
      "logprob" [B, T] float32: log p(x[t+1] | x[:t+1]); NaN where t or t+1 is padding, and at t = T-1.
      "entropy" [B, T] float32: entropy in nats of the predictive distribution; NaN at padding.
      "hidden"  [B, T, D] float32 (if return_hidden): NaN at padding.
      "mask"    [B, T] bool: the real (non-padding) tokens.  "layer": the non-negative layer index used.
    Log-softmax runs in float32, so bf16 models give stable values.
    """
    import torch

    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        raise ValueError(
            f"input_ids must be a LongTensor of shape [B, T], got {getattr(input_ids, 'shape', input_ids)!r}"
        )
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    n_states = int(model.config.num_hidden_layers) + 1
    layer_index = n_states - 1 if layer is None else layer
    if not -n_states <= layer_index < n_states:
        raise ValueError(f"layer must be in [-{n_states}, {n_states - 1}] or None, got {layer}")
    layer_index %= n_states

    device = _model_device(model)
    accepts_positions = "position_ids" in _forward_params(model)
    mask = attention_mask.bool()
    logprob, entropy, hidden = [], [], []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, input_ids.size(0), batch_size):
                ids = input_ids[start : start + batch_size].to(device)
                am = attention_mask[start : start + batch_size].to(device)
                kwargs = {"position_ids": _positions(am)} if accepts_positions else {}
                out = model(
                    input_ids=ids,
                    attention_mask=am,
                    use_cache=False,
                    output_hidden_states=return_hidden,
                    **kwargs,
                )
                logp = out.logits.float().log_softmax(-1)
                # Entropy from log-probs: p*logp is 0 (not NaN) where p underflows to 0.
                ent = (-(logp.exp() * logp).sum(-1)).clamp(min=0.0)
                nxt = torch.full_like(ids, 0)
                nxt[:, :-1] = ids[:, 1:]
                lp = logp.gather(-1, nxt.unsqueeze(-1)).squeeze(-1)
                logprob.append(lp.cpu())
                entropy.append(ent.cpu())
                if return_hidden:
                    hidden.append(out.hidden_states[layer_index].float().cpu())
    finally:
        model.train(was_training)

    nan = float("nan")
    valid_next = torch.zeros_like(mask)
    valid_next[:, :-1] = mask[:, :-1] & mask[:, 1:]
    result: dict[str, Any] = {
        "logprob": torch.cat(logprob).masked_fill(~valid_next, nan),
        "entropy": torch.cat(entropy).masked_fill(~mask, nan),
        "mask": mask.cpu(),
        "layer": layer_index,
    }
    if return_hidden:
        result["hidden"] = torch.cat(hidden).masked_fill(~mask.unsqueeze(-1), nan)
    return result


def _as_sequences(ids: Any, field: str) -> list[list[int]]:
    """One sequence (1-D tensor / list of ints) or many (2-D tensor / list of lists) -> list of lists."""
    import torch

    if isinstance(ids, torch.Tensor):
        ids = ids.tolist()
    if isinstance(ids, Sequence) and ids and all(isinstance(i, int) for i in ids):
        return [list(ids)]
    if isinstance(ids, Sequence) and ids and all(isinstance(s, Sequence | torch.Tensor) for s in ids):
        return [s.tolist() if isinstance(s, torch.Tensor) else list(s) for s in ids]
    raise ValueError(f"{field} must be a non-empty sequence of token ids or a list of such sequences")


def sequence_logprob(
    model: Any,
    prompt_ids: Any,
    continuation_ids: Any,
    *,
    batch_size: int = 32,
) -> torch.Tensor:
    """Sum over the continuation of log p(token | prompt, earlier continuation tokens), in nats.

    prompt_ids / continuation_ids: one sequence each (1-D tensor or list of ints; returns a 0-d tensor) or
    equally many sequences (returns a [N] tensor). Prompts must be non-empty: the first continuation token
    needs a context (prepend BOS for "unconditional" scores).
    """
    import torch

    single = (
        isinstance(prompt_ids, torch.Tensor)
        and prompt_ids.dim() == 1
        or (
            isinstance(prompt_ids, Sequence)
            and bool(prompt_ids)
            and all(isinstance(i, int) for i in prompt_ids)
        )
    )
    prompts = _as_sequences(prompt_ids, "prompt_ids")
    continuations = _as_sequences(continuation_ids, "continuation_ids")
    if len(prompts) != len(continuations):
        raise ValueError(
            f"prompt_ids has {len(prompts)} sequences but continuation_ids has {len(continuations)}"
        )
    if any(len(p) == 0 for p in prompts) or any(len(c) == 0 for c in continuations):
        raise ValueError("prompt_ids and continuation_ids sequences must each hold at least one token")
    lengths = [len(p) + len(c) for p, c in zip(prompts, continuations, strict=True)]
    ids = torch.zeros(len(prompts), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, (p, c) in enumerate(zip(prompts, continuations, strict=True)):
        ids[i, : lengths[i]] = torch.tensor(p + c)
        mask[i, : lengths[i]] = 1
    stats = token_statistics(model, ids, mask, batch_size=batch_size, return_hidden=False)
    totals = torch.stack(
        [
            # Positions len(p)-1 .. len(p)+len(c)-2 predict the continuation tokens.
            stats["logprob"][i, len(p) - 1 : lengths[i] - 1].double().sum()
            for i, p in enumerate(prompts)
        ]
    )
    return totals[0] if single else totals


def generate(
    model: Any,
    prompt_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    logits_processors: Any | None = None,
    sampler: Sampler | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    eos_token_id: int | None = None,
    seed: int = 0,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample up to `max_new_tokens` tokens after `prompt_ids` ([T] or [B, T]); returns [B, T + n] ids.

    Each step: logits of the last position (float32) -> every `logits_processors` entry, called as
    processor(input_ids_so_far, scores) -> scores, as Hugging Face LogitsProcessors are -> divide by
    temperature and keep the top_k -> `sampler(logits [B, V], step)` -> next ids [B] if given, else
    multinomial sampling from a torch.Generator seeded with `seed`. temperature == 0 means greedy (argmax).
    step counts new tokens from 0. After a row emits eos_token_id it is filled with eos_token_id, and the
    loop stops early when every row has. attention_mask marks left padding in batched prompts.

    Asking the device whether every row has finished is a host sync, so off the CPU it is asked only every
    FINISHED_CHECK_STEPS steps: the loop may run a few steps past the last row's end (processors and the sampler
    are called for them too) and the ids are then cut back, so the result is the same as checking every step.
    """
    import torch

    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    if temperature < 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    if temperature == 0 and sampler is not None:
        raise ValueError("temperature=0 means greedy decoding; it cannot be combined with a custom sampler")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or a positive int, got {top_k!r}")
    if prompt_ids.dim() == 1:
        prompt_ids = prompt_ids.unsqueeze(0)
        attention_mask = None if attention_mask is None else attention_mask.view(1, -1)
    if prompt_ids.dim() != 2 or prompt_ids.size(1) == 0:
        raise ValueError(
            f"prompt_ids must be a non-empty [T] or [B, T] LongTensor, got shape {tuple(prompt_ids.shape)}"
        )
    processors = list(logits_processors or [])

    device = _model_device(model)
    ids = prompt_ids.to(device)
    mask = attention_mask.to(device) if attention_mask is not None else None
    if mask is not None and bool(mask.all()):  # one host sync: no padding, so no mask (the model skips it anyway)
        mask = None
    # With padding, a 2D mask makes the Hugging Face model ask at every step whether it holds padding (a host sync
    # in its mask builder); after the prompt, a Llama on SDPA gets the mask it would build, [B, 1, 1, K] bool.
    decode_mask_4d = takes_sdpa_bool_mask(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    finished = torch.zeros(ids.size(0), dtype=torch.bool, device=device)
    # The step at which each row emitted eos (max_new_tokens while it has not): where the output is cut back.
    finished_at = torch.full_like(finished, max_new_tokens, dtype=torch.long)
    check_every, prompt_width = _finished_check_steps(device), ids.size(1)
    cache_key = _cache_kwarg(model)
    accepts_positions = "position_ids" in _forward_params(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            cache, step_input = None, ids
            for step in range(max_new_tokens):
                kwargs: dict[str, Any] = {"use_cache": True}
                if cache is not None:
                    kwargs[cache_key] = cache
                if mask is not None:
                    kwargs["attention_mask"] = mask[:, None, None, :].bool() if step and decode_mask_4d else mask
                    if accepts_positions:
                        kwargs["position_ids"] = _positions(mask)[:, -step_input.size(1) :]
                out = model(input_ids=step_input, **kwargs)
                cache = _output_cache(out)
                scores = out.logits[:, -1, :].float()
                for processor in processors:
                    scores = processor(ids, scores)
                next_ids = _choose(scores, step, sampler, temperature, top_k, generator)
                if eos_token_id is not None:
                    next_ids = torch.where(finished, torch.full_like(next_ids, eos_token_id), next_ids)
                    finished_at.masked_fill_(~finished & (next_ids == eos_token_id), step)
                    finished |= next_ids == eos_token_id
                ids = torch.cat([ids, next_ids[:, None]], dim=1)
                if mask is not None:
                    mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], dim=1)
                step_input = next_ids[:, None]
                if eos_token_id is not None and ((step + 1) % check_every == 0 or step + 1 == max_new_tokens):
                    last_end = int(finished_at.max())  # the host sync
                    if last_end < max_new_tokens:  # every row has finished, the last one at step last_end
                        ids = ids[:, : prompt_width + last_end + 1]
                        break
    finally:
        model.train(was_training)
    return ids


def _finished_check_steps(device: torch.device) -> int:
    """How often `generate` asks whether every row has finished: every step on the CPU, where asking costs no
    sync and stopping at once saves forward passes; every FINISHED_CHECK_STEPS steps elsewhere."""
    return 1 if device.type == "cpu" else FINISHED_CHECK_STEPS


def _choose(scores, step: int, sampler: Sampler | None, temperature: float, top_k: int | None, generator):
    import torch

    if temperature == 0:
        return scores.argmax(-1)
    logits = scores / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampler is not None:
        next_ids = torch.as_tensor(sampler(logits, step), device=logits.device).long().view(-1)
        if next_ids.numel() != logits.size(0):
            raise ValueError(f"sampler returned {next_ids.numel()} ids for a batch of {logits.size(0)}")
        return next_ids
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
