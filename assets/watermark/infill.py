"""The masked-span in-filler: a fill-in-the-middle (FIM) model of the code family, the random walk's second
perturbation oracle (Zhang et al. used T5 span infilling; Bavarian et al. 2022 showed a causal LM learns to
infill when documents are rearranged as prefix-suffix-middle).

A training example is a window of ``window`` tokens of a code document with a span of s tokens cut out
(s uniform in 1..``max_span``, the lengths the walk's spans take as they halve; the start uniform), laid out
in PSM order::

    <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle </s>

so every example has ``window + 4`` tokens (``layout="spm"``: ``<fim_suffix> suffix <fim_prefix> prefix
<fim_middle> middle </s>``, so the middle directly continues the prefix; it learns faster at small scale). The
three sentinels are new special tokens appended after the code tokenizer's vocabulary (ids V, V+1, V+2) on a
copy of the tokenizer kept with the in-filler: every id below V means what it means to the generator and the
detectors, and the in-filler is never allowed to propose a sentinel or a special token. Training
(`train_infiller`) is the family's recipe over whole examples, with the prefix/suffix tokens' loss optionally
down-weighted against the middle's, from scratch or warm-started from the generator (`warm_start`).

The demo's settings were picked on held-out middle loss (nats/token; the generator scores 4.60 from the prefix
alone): from scratch, PSM, 400 steps, plain loss: 5.48 (36 s of training); warm-started from the generator,
context weight 0.1, 200 steps at lr 2e-3: PSM 5.41, SPM 4.97 (18 s); SPM at lr 4e-3: 4.82; SPM, 300 steps at
lr 5e-3: 4.70 (27 s; context weight 1: 5.51 and 0: 5.14 at 200-300 steps). No setting within the demo's budget
beat the generator, so the demo attack re-samples.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assets.corpora.tokenization import encode_texts

FIM_TOKENS = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")
LAYOUTS = ("psm", "spm")


@dataclass(frozen=True)
class FimIds:
    """Sentinel ids and the ids the in-filler may never write (specials and sentinels)."""

    prefix: int
    suffix: int
    middle: int
    eos: int
    base_vocab: int
    banned: tuple[int, ...] = ()
    layout: str = "psm"  # "psm": prefix, suffix, middle; "spm": suffix, prefix, middle (the middle continues the prefix)


def fim_tokenizer(tokenizer: Any, layout: str = "psm") -> tuple[Any, FimIds]:
    """A copy of ``tokenizer`` with the FIM sentinels added as special tokens at ids V, V+1, V+2 (V: its
    length); the original is left unchanged. Raises ValueError if the sentinels are already there."""
    base = len(tokenizer)
    if any(t in tokenizer.get_vocab() for t in FIM_TOKENS):
        raise ValueError(f"tokenizer already holds a FIM sentinel {FIM_TOKENS}; pass the code tokenizer itself")
    tok = copy.deepcopy(tokenizer)
    tok.add_special_tokens({"additional_special_tokens": list(FIM_TOKENS)})
    return tok, fim_ids(tok, base, layout)


def fim_ids(tokenizer: Any, base_vocab: int | None = None, layout: str = "psm") -> FimIds:
    """The sentinel ids of an in-filler's tokenizer (as saved with its checkpoint)."""
    ids = tokenizer.convert_tokens_to_ids(list(FIM_TOKENS))
    base = base_vocab if base_vocab is not None else min(ids)
    if sorted(ids) != list(range(base, base + 3)) or tokenizer.eos_token_id is None:
        raise ValueError(f"expected the sentinels {FIM_TOKENS} at ids {base}..{base + 2} and an eos token; got {ids}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    banned = tuple(sorted(set(tokenizer.all_special_ids) | set(ids)))
    return FimIds(ids[0], ids[1], ids[2], int(tokenizer.eos_token_id), base, banned, layout)


def fim_oracle(model: Any, tokenizer: Any, record: Mapping[str, Any]) -> tuple[Any, FimIds]:
    """(in-filler, its sentinel ids): the attack's "infill" perturbation oracle from a loaded in-filler and the
    record it was registered with (``base_vocab``, ``layout``)."""
    return model, fim_ids(tokenizer, int(record["base_vocab"]), record.get("layout", "psm"))


def fim_example(window: Sequence[int], start: int, span: int, ids: FimIds) -> np.ndarray:
    """PSM (or SPM, per ``ids.layout``) layout of ``window`` with the middle ``window[start:start + span]``
    moved to the end."""
    w = np.asarray(window, dtype=np.int64)
    if not (span >= 1 and 0 <= start and start + span <= len(w)):
        raise ValueError(f"need span >= 1 and 0 <= start, start + span <= len(window)={len(w)}; got start={start}, "
                         f"span={span}")
    pre, suf = np.concatenate([[ids.prefix], w[:start]]), np.concatenate([[ids.suffix], w[start + span:]])
    return np.concatenate([*((pre, suf) if ids.layout == "psm" else (suf, pre)), [ids.middle],
                           w[start:start + span], [ids.eos]])


def fim_examples(tokenizer: Any, texts: Sequence[str], ids: FimIds, *, window: int, max_span: int, n: int,
                 seed: int) -> dict[str, np.ndarray]:
    """``n`` PSM examples [n, window + 4] from random windows of ``texts`` (a window start uniform over all
    windows of all documents long enough), with their spans, starts and the original windows."""
    if window < 2 or not 1 <= max_span < window or n < 1:
        raise ValueError(f"need window >= 2, 1 <= max_span < window, n >= 1; got window={window}, "
                         f"max_span={max_span}, n={n}")
    docs = [np.asarray(ids, dtype=np.int64) for ids in encode_texts(tokenizer, texts)]
    docs = [d for d in docs if len(d) >= window]
    if not docs:
        raise ValueError(f"no text has window={window} tokens")
    weights = np.array([len(d) - window + 1 for d in docs], dtype=float)
    rng = np.random.default_rng(seed)
    which = rng.choice(len(docs), size=n, p=weights / weights.sum())
    spans = rng.integers(1, max_span + 1, size=n)
    windows = np.stack([docs[d][o:o + window] for d, o in
                        zip(which, (rng.integers(0, len(docs[d]) - window + 1) for d in which), strict=True)])
    starts = np.array([rng.integers(0, window - s + 1) for s in spans])
    examples = np.stack([fim_example(w, st, s, ids) for w, st, s in zip(windows, starts, spans, strict=True)])
    return {"examples": examples, "spans": spans, "starts": starts, "windows": windows}


def middle_nll(model: Any, examples: dict[str, np.ndarray], *, fim: bool, batch_size: int = 64) -> float:
    """Mean negative log-likelihood (nats/token) of the middles: given prefix and suffix in PSM order
    (``fim=True``, an in-filler) or given the prefix only, left to right (``fim=False``, the generator)."""
    import torch

    from assets.lm.inference import token_statistics

    spans, starts = examples["spans"], examples["starts"]
    if fim:
        ids = torch.as_tensor(examples["examples"])
        stats = token_statistics(model, ids, batch_size=batch_size, return_hidden=False)["logprob"]
        end = ids.size(1) - 2  # last middle token; logprob[:, t] scores token t + 1
        picks = [stats[r, end - s:end].double() for r, (st, s) in enumerate(zip(starts, spans, strict=True))
                 if st > 0]  # the same middles as the generator's below
    else:
        lengths = starts + spans
        ids = torch.zeros(len(spans), int(lengths.max()), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, n in enumerate(lengths):
            ids[r, :n] = torch.as_tensor(examples["windows"][r, :n])
            mask[r, :n] = 1
        stats = token_statistics(model, ids, attention_mask=mask, batch_size=batch_size, return_hidden=False)
        picks = [stats["logprob"][r, st - 1:st - 1 + s].double() for r, (st, s) in enumerate(zip(starts, spans,
                                                                                                   strict=True))
                 if st > 0]  # a middle at the very start has no prefix to condition on
    values = torch.cat(picks)
    return float(-values.mean())


def infill_inputs(prompts, responses, spans: np.ndarray, starts: np.ndarray, ids: FimIds):
    """Left-padded PSM inputs ending in <fim_middle>: prefix = prompt + response before the span, suffix =
    the response after it; returns (ids [N, W], attention mask [N, W])."""
    import torch

    rows = []
    for r in range(responses.size(0)):
        resp = responses[r]
        pre = torch.cat([torch.tensor([ids.prefix]), prompts[r], resp[:starts[r]]])
        suf = torch.cat([torch.tensor([ids.suffix]), resp[starts[r] + spans[r]:]])
        rows.append(torch.cat([*((pre, suf) if ids.layout == "psm" else (suf, pre)), torch.tensor([ids.middle])]))
    width = max(len(x) for x in rows)
    out = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(out)
    for r, x in enumerate(rows):
        out[r, width - len(x):] = x
        mask[r, width - len(x):] = 1
    return out, mask


class BanTokens:
    """A logits processor that forbids ``banned`` ids (specials and sentinels); their index tensor is copied to
    the scores' device once (``placed``: device -> index), not at every token."""

    def __init__(self, banned: Sequence[int]):
        import torch

        self.index = torch.tensor(list(banned), dtype=torch.long)
        self.placed: dict[Any, Any] = {}

    def __call__(self, input_ids, scores):
        import torch

        if scores.device not in self.placed:
            with torch.inference_mode(False):
                self.placed[scores.device] = self.index.to(scores.device)
        scores = scores.clone()
        scores[:, self.placed[scores.device]] = -float("inf")
        return scores


def ban_tokens(banned: Sequence[int]) -> BanTokens:
    """A logits processor that forbids ``banned`` ids (specials and sentinels)."""
    return BanTokens(banned)


def propose_infill(model: Any, ids: FimIds, prompts, responses, spans: np.ndarray, rng: np.random.Generator, *,
                   seed: int, temperature: float = 1.0):
    """Perturbation oracle: for row r, rewrite spans[r] tokens at a random start (drawn as `propose_spans`
    draws it) with the in-filler's middle given the prefix and the suffix; returns (candidates [N, m],
    starts [N]). Everything outside the span is left as it was."""
    from assets.lm.inference import generate

    n, m = responses.shape
    spans = np.minimum(spans, m)
    starts = np.array([rng.integers(0, m - s + 1) for s in spans])
    inputs, mask = infill_inputs(prompts, responses, spans, starts, ids)
    new = generate(model, inputs, int(spans.max()), attention_mask=mask, seed=seed, temperature=temperature,
                   logits_processors=[ban_tokens(ids.banned)])[:, inputs.size(1):].cpu()
    candidates = responses.clone()
    for r in range(n):
        candidates[r, starts[r]:starts[r] + spans[r]] = new[r, :spans[r]]
    return candidates, starts


def warm_start(model: Any, generator: Any) -> None:
    """Copy ``generator``'s weights into ``model`` (the same shape, three more vocabulary rows); the sentinels'
    embedding rows start at the mean embedding. Raises ValueError when the shapes differ otherwise."""
    import torch

    own = model.state_dict()
    with torch.no_grad():
        for name, value in generator.state_dict().items():
            target = own.get(name)
            if target is None or target.shape[1:] != value.shape[1:] or target.shape[0] < value.shape[0]:
                raise ValueError(f"init='generator' needs the in-filler shaped like the generator; {name}: "
                                 f"{tuple(value.shape)} vs {None if target is None else tuple(target.shape)}")
            target[:value.shape[0]] = value
            if target.shape[0] > value.shape[0]:
                target[value.shape[0]:] = value.mean(0)


def middle_mask(spans: np.ndarray, length: int) -> np.ndarray:
    """[n, length] bool: the middle tokens and the </s> closing them (the last span + 1 positions)."""
    return np.arange(length)[None, :] >= length - 1 - np.asarray(spans)[:, None]


def train_infiller(model: Any, examples: np.ndarray, spans: np.ndarray, cfg: Any, *, context_weight: float = 1.0,
                   on_log=None):
    """The family's recipe (AdamW on matmul weights, `lr_at` warmup + cosine, clipping) over whole PSM
    examples, each seen once per epoch in a fresh order, with the next-token loss of prefix and suffix tokens
    weighted ``context_weight`` against the middle's 1 (1: plain FIM training as `assets.lm.training.train`
    does it; 0: a span in-filler's loss, T5 style, on the middle only). Returns (curve, seconds).

    As in the LM trainer, the step losses stay on the device and are read back (one host sync) at the first
    logged step after every ``cfg.loss_readback_steps`` steps and at the last step; rows are handed to
    ``on_log`` then, and a non-finite loss raises then, naming the logged step where it appeared. The logged
    values are those of reading every loss back at once (each summed as a Python float, in step order). On
    CUDA the batches are copied from pinned memory without blocking the host."""
    import time

    import pandas as pd
    import torch
    import torch.nn.functional as F

    from assets.lm.batches import to_device
    from assets.lm.readback import DeviceScalars
    from assets.lm.training import CURVE_COLUMNS, configure_optimizer, lr_at

    device = cfg.device
    data = torch.as_tensor(examples, dtype=torch.long)
    weight = torch.where(torch.as_tensor(middle_mask(spans, data.size(1))), 1.0, float(context_weight))[:, 1:]
    model.to(device).train()
    optimizer = configure_optimizer(model, cfg, device.split(":")[0])
    generator = torch.Generator().manual_seed(cfg.seed)
    order, position, rows, started = torch.randperm(len(data), generator=generator), 0, [], time.time()
    losses, waiting = DeviceScalars(cfg.loss_readback_steps), {}  # step -> its loss; step -> row without train_loss

    def read_back() -> None:
        total, n = 0.0, 0
        for step, value in losses.read_back():
            total, n = total + value, n + 1
            if step in waiting:  # a logged step: its row's train loss is the mean over the n steps up to it
                row = waiting.pop(step)
                if not np.isfinite(total):
                    raise ValueError(f"in-filler training diverged at step {step} (loss {total})")
                row["train_loss"] = total / n
                rows.append(row)
                if on_log is not None:
                    on_log(dict(row))
                total, n = 0.0, 0

    for step in range(1, cfg.max_steps + 1):
        if position + cfg.batch_size > len(order):
            order, position = torch.randperm(len(data), generator=generator), 0
        idx = order[position:position + cfg.batch_size]
        position += cfg.batch_size
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, y, w = (to_device(t, device) for t in (data[idx, :-1], data[idx, 1:], weight[idx]))
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = model(input_ids=x, use_cache=False).logits
        ce = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
        loss = (ce * w.reshape(-1)).sum() / w.sum()
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.add(step, loss)
        if step % cfg.log_interval == 0 or step == cfg.max_steps:
            waiting[step] = {"step": step, "tokens": step * cfg.batch_size * x.size(1), "train_loss": float("nan"),
                             "val_loss": float("nan"), "learning_rate": lr_at(step, cfg),
                             "tokens_per_s": step * cfg.batch_size * x.size(1) / (time.time() - started)}
            if len(losses) >= cfg.loss_readback_steps or step == cfg.max_steps:  # a loss a step: steps since the last
                read_back()
    model.eval()
    return pd.DataFrame(rows, columns=CURVE_COLUMNS), time.time() - started


@dataclass
class FittedInfiller:
    """The trained in-filler, its FIM tokenizer and numbers (a `assets.lm.registration.Trained`: registration
    logs ``metrics()`` and keeps ``record()``)."""

    model: Any
    tokenizer: Any
    ids: FimIds
    curve: Any
    seconds: float
    middle_nll: float  # the in-filler's held-out loss on middles (prefix + suffix)
    generator_middle_nll: float  # the generator's on the same middles (prefix only); NaN without a generator
    n_train_examples: int
    checkpoint_dir: Path | None = None  # where model and tokenizer were saved, if they were

    def metrics(self) -> dict[str, float]:
        """What MLflow records of the run and the UI shows."""
        return {"middle_nll": self.middle_nll, "generator_middle_nll": self.generator_middle_nll}

    def record(self) -> dict:
        """The numbers the in-filler's record keeps beside its MLflow fields."""
        from assets.lm.model import count_parameters

        ids = self.ids
        return {"middle_nll": self.middle_nll, "generator_middle_nll": self.generator_middle_nll,
                "train_seconds": self.seconds, "parameters": count_parameters(self.model),
                "n_train_examples": self.n_train_examples, "base_vocab": ids.base_vocab, "layout": ids.layout,
                "sentinel_ids": [ids.prefix, ids.suffix, ids.middle]}


def fit_infiller(size: Any, tokenizer: Any, train_texts: Sequence[str], val_texts: Sequence[str], cfg: Any, *,
                 window: int, max_span: int, n_val: int = 256, generator: Any = None, init: str = "scratch",
                 context_weight: float = 1.0, layout: str = "psm", out_dir: str | Path | None = None,
                 on_log=None) -> FittedInfiller:
    """Train a family model of ``size`` on PSM examples of ``train_texts`` with the family's trainer (``cfg``: a
    TrainConfig; one example per window, each seen about once) and score it on ``n_val`` held-out examples of
    ``val_texts`` beside ``generator`` (prefix only). ``init``: "scratch" (fresh weights) or "generator"
    (start from the generator's weights, `warm_start`: FIM fine-tuning); ``context_weight``: see
    `train_infiller`. The curve's last val_loss is the held-out middle loss. With ``out_dir``, model and FIM
    tokenizer are saved there."""
    from assets.lm.model import build_model, save_checkpoint

    tok, ids = fim_tokenizer(tokenizer, layout)
    length = window + 4
    if length > size.context_length:
        raise ValueError(f"window + 4 = {length} must fit the in-filler's context_length={size.context_length}")
    n_train = cfg.max_steps * cfg.batch_size + 1
    tr = fim_examples(tokenizer, train_texts, ids, window=window, max_span=max_span, n=n_train, seed=cfg.seed)
    va = fim_examples(tokenizer, val_texts, ids, window=window, max_span=max_span, n=n_val, seed=cfg.seed + 1)
    model = build_model(size, ids.base_vocab + 3, seed=cfg.seed, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if init not in ("scratch", "generator") or (init == "generator" and generator is None):
        raise ValueError(f"init must be 'scratch' or 'generator' (with a generator), got {init!r}")
    if init == "generator":
        warm_start(model, generator)
    curve, seconds = train_infiller(model, tr["examples"], tr["spans"], cfg, context_weight=context_weight,
                                    on_log=on_log)
    nll = middle_nll(model, va, fim=True)
    curve.loc[curve.index[-1], "val_loss"] = nll
    gen_nll = middle_nll(generator, va, fim=False) if generator is not None else float("nan")
    if out_dir is not None:
        save_checkpoint(model, tok, out_dir)
    return FittedInfiller(model, tok, ids, curve, seconds, nll, gen_nll, n_train,
                          Path(out_dir) if out_dir is not None else None)
