"""The two data regimes of the study, for the synthetic task and for language modelling.

- online: a fresh stream; every example is drawn once and never shown again (``example_id`` only grows);
- offline: a fixed finite training set, shown epoch after epoch in a fresh random order each epoch (every
  example exactly once per epoch).

Synthetic task: a random teacher network (Gaussian inputs -> a 2-layer tanh network -> softmax over
``classes``) labels each input by sampling from its softmax, so the labels are noisy and a fixed training set
can be over-fitted. Held-out loss is the cross-entropy against the teacher's probabilities (the expected
loss on a fresh labelled example). Language modelling: windows of a token stream cut back to back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

ONLINE, OFFLINE = "online", "offline"
REGIMES = (ONLINE, OFFLINE)
_STREAM_TEACHER, _STREAM_ONLINE, _STREAM_TRAIN, _STREAM_ORDER, _STREAM_EVAL = 1, 2, 3, 4, 5


def check_regime(regime: str) -> str:
    if regime not in REGIMES:
        raise ValueError(f"regime={regime!r}: expected one of {REGIMES}")
    return regime


def _generator(*keys: int) -> torch.Generator:
    seed = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class TeacherTask:
    """A random teacher network: x ~ N(0, I_d), p(y|x) = softmax(scale * W2 tanh(W1 x / sqrt(d)) / sqrt(h))."""

    input_dim: int = 32
    teacher_width: int = 64
    classes: int = 10
    logit_scale: float = 4.0
    seed: int = 0
    _cache: tuple | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in ("input_dim", "teacher_width", "classes"):
            if int(getattr(self, name)) < (2 if name == "classes" else 1):
                raise ValueError(f"TeacherTask.{name}={getattr(self, name)!r}: expected a positive integer "
                                 "(classes >= 2)")
        if not self.logit_scale > 0:
            raise ValueError(f"TeacherTask.logit_scale={self.logit_scale!r}: expected > 0")

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        g = _generator(self.seed, _STREAM_TEACHER)
        w1 = torch.randn(self.input_dim, self.teacher_width, generator=g) / self.input_dim ** 0.5
        w2 = torch.randn(self.teacher_width, self.classes, generator=g) / self.teacher_width ** 0.5
        return w1, w2

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        if self._cache is None:
            object.__setattr__(self, "_cache", self.weights())
        w1, w2 = (w.to(x.device, x.dtype) for w in self._cache)
        return torch.softmax(self.logit_scale * (torch.tanh(x @ w1) @ w2), dim=-1)

    def sample(self, n: int, generator: torch.Generator, leading: tuple[int, ...] = ()) -> tuple[
            torch.Tensor, torch.Tensor]:
        """Fresh inputs (*leading, n, d) and labels drawn from the teacher's softmax (*leading, n)."""
        x = torch.randn(*leading, n, self.input_dim, generator=generator)
        probs = self.probabilities(x)
        y = torch.multinomial(probs.reshape(-1, self.classes), 1, generator=generator).reshape(*leading, n)
        return x, y

    def evaluation_set(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Held-out inputs (shared by every run) and the teacher's probabilities on them."""
        x = torch.randn(n, self.input_dim, generator=_generator(self.seed, _STREAM_EVAL))
        return x, self.probabilities(x)

    def entropy(self, n: int = 4096) -> float:
        """The teacher's mean conditional entropy: the lowest achievable held-out loss (nats)."""
        _, q = self.evaluation_set(n)
        return float(-(q * q.clamp_min(1e-30).log()).sum(-1).mean())


class EpochOrder:
    """Positions in a fixed set of ``size`` examples, a fresh permutation per epoch, consumed ``count`` at a
    time (a batch may straddle two epochs; every example appears once per epoch)."""

    def __init__(self, size: int, generator: torch.Generator) -> None:
        if size < 1:
            raise ValueError(f"size={size!r}: expected a positive training-set size")
        self.size, self.generator = size, generator
        self.buffer = torch.empty(0, dtype=torch.int64)
        self.epochs_started = 0

    def take(self, count: int) -> torch.Tensor:
        while len(self.buffer) < count:
            self.buffer = torch.cat([self.buffer, torch.randperm(self.size, generator=self.generator)])
            self.epochs_started += 1
        out, self.buffer = self.buffer[:count], self.buffer[count:]
        return out


class SyntheticStream:
    """Batches for ``slots`` independent seeds at once: ``next(batch_size)`` -> x (S, B, d), y (S, B) and
    example ids (S, B). Online: fresh draws, ids count up. Offline: ``train_size`` fixed examples per seed."""

    def __init__(self, task: TeacherTask, regime: str, seeds: list[int], train_size: int | None = None) -> None:
        self.task, self.regime, self.seeds = task, check_regime(regime), [int(s) for s in seeds]
        self.drawn = 0
        if regime == OFFLINE:
            if train_size is None or train_size < 1:
                raise ValueError(f"train_size={train_size!r}: the offline regime needs a positive training-set size")
            sets = [task.sample(train_size, _generator(task.seed, _STREAM_TRAIN, s)) for s in self.seeds]
            self.x_train = torch.stack([x for x, _ in sets])
            self.y_train = torch.stack([y for _, y in sets])
            self.orders = [EpochOrder(train_size, _generator(task.seed, _STREAM_ORDER, s)) for s in self.seeds]
        else:
            self.generators = [_generator(task.seed, _STREAM_ONLINE, s) for s in self.seeds]

    def next(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.regime == ONLINE:
            draws = [self.task.sample(batch_size, g) for g in self.generators]
            x, y = torch.stack([d[0] for d in draws]), torch.stack([d[1] for d in draws])
            ids = torch.arange(self.drawn, self.drawn + batch_size).expand(len(self.seeds), -1)
        else:
            ids = torch.stack([order.take(batch_size) for order in self.orders])
            x = torch.gather(self.x_train, 1, ids[:, :, None].expand(-1, -1, self.task.input_dim))
            y = torch.gather(self.y_train, 1, ids)
        self.drawn += batch_size
        return x, y, ids


# ------------------------------------------------------------------------------------------ language model
class TokenWindows:
    """(x, y) windows of ``context_length`` tokens cut back to back from a token supply.

    Online: ``supply()`` returns a fresh chunk of tokens whenever more are needed (fresh documents), every
    window is cut from new tokens, and ``example_id`` counts up. Offline: the fixed ``tokens`` are cut once
    into windows that are revisited every epoch in a fresh order."""

    def __init__(self, context_length: int, *, supply: Callable[[], np.ndarray] | None = None,
                 tokens: np.ndarray | None = None, seed: int = 0) -> None:
        if (supply is None) == (tokens is None):
            raise ValueError("TokenWindows needs exactly one of supply (online) or tokens (offline)")
        if context_length < 1:
            raise ValueError(f"context_length={context_length!r}: expected a positive integer")
        self.span = context_length + 1
        self.supply, self.buffer, self.drawn = supply, np.zeros(0, dtype=np.int64), 0
        self.regime = ONLINE if supply is not None else OFFLINE
        if tokens is not None:
            n = len(tokens) // self.span
            if n < 1:
                raise ValueError(f"tokens: {len(tokens)} tokens make no window of {self.span}")
            self.windows = torch.as_tensor(np.asarray(tokens[:n * self.span], dtype=np.int64).reshape(n, self.span))
            self.order = EpochOrder(n, _generator(seed, _STREAM_ORDER))

    @property
    def size(self) -> int:
        """Offline: the number of windows in the fixed training set (online: 0, the stream is unbounded)."""
        return len(self.windows) if self.regime == OFFLINE else 0

    def next(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x, y (batch_size, context_length) and the example ids (batch_size,)."""
        if self.regime == OFFLINE:
            ids = self.order.take(batch_size)
            window = self.windows[ids]
        else:
            need = batch_size * self.span
            while len(self.buffer) < need:
                fresh = np.asarray(self.supply(), dtype=np.int64)
                if len(fresh) == 0:
                    raise ValueError("the online token supply returned no tokens")
                self.buffer = np.concatenate([self.buffer, fresh])
            window = torch.as_tensor(self.buffer[:need].reshape(batch_size, self.span))
            self.buffer = self.buffer[need:]
            ids = torch.arange(self.drawn, self.drawn + batch_size)
        self.drawn += batch_size
        return window[:, :-1], window[:, 1:], ids
