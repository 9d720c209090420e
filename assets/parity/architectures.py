"""The networks, with stacked weights (one slice per model) and hand-written batched gradients.

- ``mlp``: the paper's 2-layer ReLU MLP, f(x) = sum_j u_j relu(<w_j, x> + b_j) + c (nn.Linear layout).
- ``polynet``: the degree-k polynomial neuron, f(x) = prod_{j=1..k} <w_j, x>; it equals the parity when the
  w_j are the distinct standard basis vectors of S.

Every parameter tensor has a leading model dimension M. Inputs are (M, B, n) (each model its own batch) or
(B, n) (a sample shared by all models, e.g. the evaluation set); matmul broadcasts over M. Gradients are
written out by hand (the reference trainer checks them against autograd) because batched autograd costs
more than the maths here. Initialisation draws each model's weights from its own CPU generator seeded by
its seed, so a model's initial weights do not depend on which other models share its batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

ARCHITECTURES = ("mlp", "polynet")
INITS = ("uniform", "gaussian")
LOSSES = ("hinge", "square", "cross_entropy")

Params = dict[str, torch.Tensor]


def check_choice(field: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{field}={value!r}: expected one of {', '.join(choices)}")


@dataclass(frozen=True)
class Network:
    """What a run trains: the architecture, input size n, parity degree k, width, and initialisation."""

    arch: str
    n: int
    k: int
    width: int = 100
    init: str = "uniform"
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        check_choice("arch", self.arch, ARCHITECTURES)
        check_choice("init", self.init, INITS)
        if not 1 <= self.k <= self.n:
            raise ValueError(f"k={self.k!r}: expected 1 <= k <= n (n={self.n})")
        if self.width < 1:
            raise ValueError(f"width={self.width!r}: expected a positive integer")
        if not self.init_scale > 0:
            raise ValueError(f"init_scale={self.init_scale!r}: expected a positive number")

    @property
    def first_layer(self) -> str:
        """The parameter whose columns are the input coordinates (rows x n per model)."""
        return "W"

    def shapes(self) -> dict[str, tuple[tuple[int, ...], int]]:
        """Each parameter's per-model shape and fan-in, in the order they are drawn."""
        if self.arch == "mlp":
            return {"W": ((self.width, self.n), self.n), "b": ((self.width,), self.n),
                    "u": ((self.width,), self.width), "c": ((), self.width)}
        return {"W": ((self.k, self.n), self.n)}


def initial_params(net: Network, seeds: Sequence[int], dtype: torch.dtype = torch.float32,
                   device: str | torch.device = "cpu") -> Params:
    """Stacked initial weights, one model per seed. ``uniform`` is PyTorch's nn.Linear default
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)); ``gaussian`` is N(0, 1/fan_in); both times ``init_scale``."""
    stacked: dict[str, list[torch.Tensor]] = {name: [] for name in net.shapes()}
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        for name, (shape, fan_in) in net.shapes().items():
            bound = net.init_scale / math.sqrt(fan_in)
            if net.init == "uniform":
                value = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
            else:
                value = torch.randn(shape, generator=gen, dtype=torch.float64) * bound
            stacked[name].append(value)
    return {name: torch.stack(values).to(device=device, dtype=dtype) for name, values in stacked.items()}


def forward(net: Network, params: Params, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """Outputs f of shape (M, B) and what ``backward`` needs."""
    W = params["W"]
    pre = torch.matmul(x, W.transpose(1, 2))  # (M, B, width) for the MLP, (M, B, k) for the polynet
    if net.arch == "mlp":
        pre = pre + params["b"][:, None, :]
        hidden = torch.relu(pre)
        f = torch.matmul(hidden, params["u"][:, :, None]).squeeze(-1) + params["c"][:, None]
        return f, (pre, hidden)
    return pre.prod(dim=-1), (pre,)


def _products_of_others(factors: torch.Tensor) -> torch.Tensor:
    """For factors a_1..a_k on the last axis: prod_{l != j} a_l for each j, without dividing."""
    k = factors.shape[-1]
    ones = torch.ones_like(factors[..., :1])
    prefix = torch.cat([ones, torch.cumprod(factors[..., :-1], dim=-1)], dim=-1)
    suffix = torch.flip(torch.cat([ones, torch.cumprod(torch.flip(factors[..., 1:], [-1]), dim=-1)], dim=-1), [-1])
    return prefix * suffix if k > 1 else ones


def backward(net: Network, params: Params, cache: tuple, x: torch.Tensor, dout: torch.Tensor) -> Params:
    """Gradients of sum_{m,b} dout[m,b] * f_m(x[m,b]) for every parameter (``dout`` holds dLoss/df)."""
    if net.arch == "mlp":
        pre, hidden = cache
        grads = {"u": torch.matmul(hidden.transpose(1, 2), dout[:, :, None]).squeeze(-1), "c": dout.sum(dim=1)}
        dpre = dout[:, :, None] * params["u"][:, None, :] * (pre > 0)
        grads["W"] = torch.matmul(dpre.transpose(1, 2), x)
        grads["b"] = dpre.sum(dim=1)
        return grads
    (pre,) = cache
    dpre = dout[:, :, None] * _products_of_others(pre)
    return {"W": torch.matmul(dpre.transpose(1, 2), x)}


def loss_terms(loss: str, f: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example loss and its derivative in f. Labels are ±1.

    hinge max(0, 1 - y f) (derivative 0 at the kink, as autograd), square (f - y)^2, cross_entropy
    log(1 + exp(-y f)) (the logistic loss)."""
    margin = y * f
    if loss == "hinge":
        return torch.relu(1 - margin), -y * (margin < 1).to(f.dtype)
    if loss == "square":
        return (f - y) ** 2, 2 * (f - y)
    if loss == "cross_entropy":
        return torch.nn.functional.softplus(-margin), -y * torch.sigmoid(-margin)
    raise ValueError(f"loss={loss!r}: expected one of {', '.join(LOSSES)}")
