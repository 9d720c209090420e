"""The language-model sweep: the project's LM family on the facts world (and the code corpus as real text),
online and offline.

Online: every batch is cut from tokens never used before: freshly generated documents (the facts world can
write unlimited text) or the next unread files of the code corpus (a seed-shuffled pass that stops with an
error rather than wrap around). Offline: a fixed set of tokens, cut once into windows and revisited epoch
after epoch. Each run is one model from ``assets.lm.model.build_model`` trained by Adam at a constant
learning rate (after a short linear warmup) and scored on held-out windows of fresh documents at logged
steps; its weights at every logged step are kept (small models) so that predictions can be recomputed for
the functional distance. A run with ``cut_step`` continues, from that step, as two heads on the same
batches: the parent and a copy whose learning rate is multiplied by ``cut_lr_factor`` and/or whose batch is
``cut_batch_factor`` times larger (the parent's windows plus fresh ones): the noise reduction.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from assets.lm.batches import to_device
from assets.sgd_noise.data import OFFLINE, ONLINE, TokenWindows, check_regime

_STREAM_ONLINE_DOCS, _STREAM_OFFLINE_DOCS, _STREAM_HELDOUT_DOCS = 11, 12, 13


@dataclass(frozen=True)
class FactsSource:
    """The facts world as a data source: unlimited fresh documents; held-out windows from its own stream."""

    world: object
    tokenizer: object
    offline_documents: int
    name: str = "facts"

    def online(self, seed: int) -> Callable[[], np.ndarray]:
        return document_supply(self.world, self.tokenizer, seed)

    def offline(self, seed: int) -> np.ndarray:
        return fixed_tokens(self.world, self.tokenizer, self.offline_documents, seed)

    def heldout(self, n_windows: int, context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        return heldout_windows(self.world, self.tokenizer, n_windows, context_length, self.world.spec.seed)


@dataclass(frozen=True)
class CorpusSource:
    """A finite real corpus (tokenized train documents, validation tokens): online reads each train document
    at most once (seed-shuffled order); offline keeps the first ``offline_tokens`` tokens of that order."""

    train_documents: list[np.ndarray]
    validation_tokens: np.ndarray
    offline_tokens: int
    name: str = "code"

    def _order(self, seed: int) -> list[np.ndarray]:
        order = np.random.default_rng([seed, _STREAM_ONLINE_DOCS]).permutation(len(self.train_documents))
        return [self.train_documents[i] for i in order]

    def online(self, seed: int) -> Callable[[], np.ndarray]:
        pending = iter(self._order(seed))

        def supply() -> np.ndarray:
            chunk = list(itertools.islice(pending, 16))
            if not chunk:
                raise ValueError(f"{self.name}: the online stream read every train document once; lower steps or "
                                 "batch sizes (online data must not repeat)")
            return np.concatenate(chunk)

        return supply

    def offline(self, seed: int) -> np.ndarray:
        tokens = np.concatenate(self._order(seed))
        if len(tokens) < self.offline_tokens:
            raise ValueError(f"offline_tokens={self.offline_tokens}: the {self.name} corpus has {len(tokens)}")
        return tokens[:self.offline_tokens]

    def heldout(self, n_windows: int, context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        span = context_length + 1
        if len(self.validation_tokens) < n_windows * span:
            raise ValueError(f"{self.name}: {len(self.validation_tokens)} validation tokens make fewer than "
                             f"{n_windows} windows of {span}")
        block = torch.as_tensor(self.validation_tokens[:n_windows * span].astype(np.int64)).reshape(n_windows, span)
        return block[:, :-1], block[:, 1:]


@dataclass(frozen=True)
class LMRunSpec:
    regime: str
    batch_size: int
    learning_rate: float
    seed: int
    cut_step: int | None = None
    cut_lr_factor: float = 1.0  # the branch's learning rate is multiplied by this (< 1: less noise)
    cut_batch_factor: int = 1  # the branch's batch is this many times larger (> 1: less noise)
    corpus: str = "facts"

    def __post_init__(self) -> None:
        check_regime(self.regime)
        if self.cut_step is not None and (self.cut_lr_factor, self.cut_batch_factor) == (1.0, 1):
            raise ValueError(f"cut_step={self.cut_step!r}: a branch needs cut_lr_factor != 1 or cut_batch_factor > 1")
        if self.cut_batch_factor < 1 or not self.cut_lr_factor > 0:
            raise ValueError(f"cut_batch_factor={self.cut_batch_factor!r}, cut_lr_factor={self.cut_lr_factor!r}: "
                             "expected an integer >= 1 and a positive factor")
        if self.batch_size < 1 or not self.learning_rate > 0:
            raise ValueError(f"batch_size={self.batch_size!r}, learning_rate={self.learning_rate!r}: expected "
                             "a positive batch size and learning rate")

    @property
    def key(self) -> str:
        return f"lm_{self.corpus}/{self.regime}/B{self.batch_size}/lr{self.learning_rate:g}/s{self.seed}"

    @property
    def branch_key(self) -> str:
        parts = ([f"lr{self.cut_lr_factor:g}"] if self.cut_lr_factor != 1 else []) + (
            [f"B{self.cut_batch_factor}"] if self.cut_batch_factor != 1 else [])
        return f"{self.key}/cut{self.cut_step}x{'x'.join(parts)}"


@dataclass
class LMRun:
    spec: LMRunSpec
    curves: pd.DataFrame  # run_key, checkpoint, step, examples, epochs, eval_loss, train_loss
    snapshots: dict[str, list[dict[str, torch.Tensor]]] = field(default_factory=dict)  # run_key -> weights
    seconds: float = 0.0


def document_supply(world, tokenizer, seed: int, documents_per_call: int = 64) -> Callable[[], np.ndarray]:
    """Fresh facts-world documents, tokenized back to back (<s> ... </s>), on every call."""
    from assets.corpora.facts_world import sample_documents
    from assets.corpora.tokenization import encode_documents

    rng = np.random.default_rng([seed, _STREAM_ONLINE_DOCS])

    def supply() -> np.ndarray:
        _, docs = sample_documents(world, documents_per_call, rng)
        return encode_documents(tokenizer, [" ".join(words) for words in docs])

    return supply


def fixed_tokens(world, tokenizer, n_documents: int, seed: int, stream: int = _STREAM_OFFLINE_DOCS) -> np.ndarray:
    """A fixed set of ``n_documents`` documents as one token stream (the offline training set)."""
    from assets.corpora.facts_world import sample_documents
    from assets.corpora.tokenization import encode_documents

    if n_documents < 1:
        raise ValueError(f"n_documents={n_documents!r}: expected a positive integer")
    _, docs = sample_documents(world, n_documents, np.random.default_rng([seed, stream]))
    return encode_documents(tokenizer, [" ".join(words) for words in docs])


def heldout_windows(world, tokenizer, n_windows: int, context_length: int, seed: int) -> tuple[
        torch.Tensor, torch.Tensor]:
    """``n_windows`` held-out (x, y) windows cut from documents no training stream draws."""
    span, tokens, n_docs = context_length + 1, np.zeros(0, dtype=np.int32), 32
    while len(tokens) < n_windows * span:
        n_docs *= 2
        tokens = fixed_tokens(world, tokenizer, n_docs, seed, _STREAM_HELDOUT_DOCS)
    block = torch.as_tensor(tokens[:n_windows * span].astype(np.int64)).reshape(n_windows, span)
    return block[:, :-1], block[:, 1:]


def windows_for(spec: LMRunSpec, source: FactsSource | CorpusSource, context_length: int) -> TokenWindows:
    """The run's training windows: a fresh stream (online) or the seed's fixed set (offline)."""
    if spec.regime == ONLINE:
        return TokenWindows(context_length, supply=source.online(spec.seed))
    return TokenWindows(context_length, tokens=source.offline(spec.seed), seed=spec.seed)


def _loss(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=x, use_cache=False).logits
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))


@torch.no_grad()
def heldout_loss(model, heldout: tuple[torch.Tensor, torch.Tensor], chunk: int = 64) -> float:
    was = model.training
    model.eval()
    x, y = heldout
    total = sum(float(_loss(model, x[i:i + chunk], y[i:i + chunk])) * len(x[i:i + chunk])
                for i in range(0, len(x), chunk))
    model.train(was)
    return total / len(x)


@torch.no_grad()
def next_token_probabilities(model, x: torch.Tensor) -> np.ndarray:
    """Predictive distributions at every position of ``x``: (windows * positions, vocab), float32."""
    was = model.training
    model.eval()
    probs = torch.softmax(model(input_ids=x, use_cache=False).logits.double(), dim=-1)
    model.train(was)
    return probs.reshape(-1, probs.size(-1)).float().cpu().numpy()


def _zero_sum(device: torch.device) -> torch.Tensor:
    return torch.zeros((), dtype=torch.float64, device=device)


def host_snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict copied to host memory; entries that view the same memory (the tied input
    embedding and output head) share one copy instead of being copied twice."""
    copies: dict[tuple, torch.Tensor] = {}
    snapshot = {}
    for name, value in model.state_dict().items():
        same = (value.device, value.data_ptr(), value.dtype, tuple(value.shape), value.stride())
        if same not in copies:
            copies[same] = value.detach().to("cpu", copy=True)
        snapshot[name] = copies[same]
    return snapshot


def train_lm(spec: LMRunSpec, build: Callable[[int], torch.nn.Module], windows: TokenWindows,
             heldout: tuple[torch.Tensor, torch.Tensor], steps: int, checkpoints: Sequence[int],
             warmup_steps: int = 10, on_log: Callable[[str, int, float], None] | None = None) -> LMRun:
    """Train one run (and its low-noise branch when ``spec.cut_step`` is set); see the module docstring."""
    start = time.perf_counter()
    checkpoints = sorted(set(int(c) for c in checkpoints) | {0, steps})
    heads = {spec.key: build(spec.seed)}
    device = next(heads[spec.key].parameters()).device
    lrs = {spec.key: spec.learning_rate}
    optimizers = {spec.key: torch.optim.Adam(heads[spec.key].parameters(), lr=spec.learning_rate, betas=(0.9, 0.95))}
    rows, snapshots = [], {spec.key: []}
    # each head's training losses since the last log, summed on the device in float64 (read back only when
    # logged: no host sync per step; float64 sums the float32 losses exactly as a Python float would)
    loss_sums, examples = {spec.key: _zero_sum(device)}, {spec.key: 0}
    count = 0

    def log(step: int) -> None:
        nonlocal count
        for key, model in heads.items():
            loss = heldout_loss(model, heldout)
            snapshots[key].append(host_snapshot(model))
            rows.append((key, len(snapshots[key]) - 1, step, examples[key],
                         examples[key] / windows.size if spec.regime == OFFLINE else np.nan, loss,
                         float(loss_sums[key]) / count if count else np.nan))
            loss_sums[key] = _zero_sum(device)
            if on_log is not None:
                on_log(key, step, loss)
        count = 0

    log(0)
    for step in range(1, steps + 1):
        if spec.cut_step is not None and step - 1 == spec.cut_step:
            key = spec.branch_key
            heads[key] = copy.deepcopy(heads[spec.key])
            optimizers[key] = torch.optim.Adam(heads[key].parameters(), lr=spec.learning_rate, betas=(0.9, 0.95))
            # a deep copy: load_state_dict keeps the state tensors it is given, so without it the branch and
            # its parent would share Adam's moments and step counters
            optimizers[key].load_state_dict(copy.deepcopy(optimizers[spec.key].state_dict()))
            lrs[key] = spec.learning_rate * spec.cut_lr_factor
            # the branch's curve starts at the cut, from the parent's checkpoints up to there
            parent_rows = [r for r in rows if r[0] == spec.key]
            rows.extend((key, *r[1:]) for r in parent_rows)
            snapshots[key] = list(snapshots[spec.key])
            loss_sums[key], examples[key] = loss_sums[spec.key], examples[spec.key]
        factor = spec.cut_batch_factor if len(heads) > 1 else 1
        x_all, y_all, _ = windows.next(spec.batch_size * factor)
        x_all, y_all = to_device(x_all, device), to_device(y_all, device)
        scale = min(1.0, step / warmup_steps) if warmup_steps else 1.0
        for key, model in heads.items():
            for group in optimizers[key].param_groups:
                group["lr"] = lrs[key] * scale
            rows_used = spec.batch_size if key == spec.key else len(x_all)
            loss = _loss(model, x_all[:rows_used], y_all[:rows_used])
            loss.backward()
            optimizers[key].step()
            optimizers[key].zero_grad(set_to_none=True)
            loss_sums[key] = loss_sums[key] + loss.detach().double()  # a new tensor: a branch's sum never aliases
            examples[key] += rows_used
        count += 1
        if step in checkpoints:
            log(step)
    curves = pd.DataFrame(rows, columns=["run_key", "checkpoint", "step", "examples", "epochs", "eval_loss",
                                         "train_loss"])
    return LMRun(spec, curves, snapshots, time.perf_counter() - start)
