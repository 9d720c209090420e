"""The plain trainer: one model at a time, torch.nn modules, autograd and torch.optim.SGD.

It is the reference the batched trainer is checked against (same seed: same initial weights, same batches,
same secret; so the same weights after training, up to floating-point rounding) and the baseline of the
throughput benchmark. Convergence is detected as in the batched trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from assets.parity.architectures import Network, Params, initial_params
from assets.parity.data import (
    evaluation_set,
    parity_labels,
    rademacher,
    secret_subsets,
    training_set,
    uniform_indices,
)
from assets.parity.trainer import TrainSpec


class PolynomialNeuron(nn.Module):
    """f(x) = prod_j <w_j, x>: the degree-k polynomial neuron."""

    def __init__(self, n: int, k: int):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(k, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.W.T).prod(dim=-1)


class ReluMLP(nn.Module):
    """The 2-layer ReLU MLP as nn.Linear layers."""

    def __init__(self, n: int, width: int):
        super().__init__()
        self.hidden = nn.Linear(n, width)
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x))).squeeze(-1)


def build_model(net: Network, seed: int, dtype: torch.dtype = torch.float64, device: str = "cpu") -> nn.Module:
    """The network of ``seed`` with the very initial weights the batched trainer gives it."""
    params = {name: p[0] for name, p in initial_params(net, [seed], dtype=dtype).items()}
    if net.arch == "mlp":
        model = ReluMLP(net.n, net.width)
        state = {"hidden.weight": params["W"], "hidden.bias": params["b"], "out.weight": params["u"][None, :],
                 "out.bias": params["c"].reshape(1)}
    else:
        model = PolynomialNeuron(net.n, net.k)
        state = {"W": params["W"]}
    model = model.to(dtype=dtype)  # before loading, so the float64 initial weights are not rounded to float32
    model.load_state_dict(state)
    return model.to(device=device)


def model_params(net: Network, model: nn.Module) -> Params:
    """The model's weights in the batched trainer's layout (one model: no leading dimension)."""
    if net.arch == "mlp":
        return {"W": model.hidden.weight.detach(), "b": model.hidden.bias.detach(),
                "u": model.out.weight.detach()[0], "c": model.out.bias.detach()[0]}
    return {"W": model.W.detach()}


def loss_fn(loss: str, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if loss == "hinge":
        return torch.relu(1 - y * f)
    if loss == "square":
        return (f - y) ** 2
    return nn.functional.softplus(-y * f)


@dataclass
class ReferenceResult:
    params: Params
    t_c: int | None
    steps: int
    losses: list[float]


def train_reference(net: Network, spec: TrainSpec, seed: int, *, device: str = "cpu",
                    dtype: torch.dtype = torch.float64, record_losses: bool = False) -> ReferenceResult:
    """Train the single network of ``seed`` step by step."""
    model = build_model(net, seed, dtype, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay)
    subset = torch.as_tensor(secret_subsets([seed], net.n, net.k), device=device)
    x_eval = evaluation_set(net.n, spec.eval_size, device=device, dtype=dtype)
    y_eval = parity_labels(x_eval, subset)[0]
    if not spec.online:
        x_train = training_set([seed], net.n, spec.train_set_size, device=device, dtype=dtype)[0]
        y_train = parity_labels(x_train[None], subset)[0]
    t_c, losses, step = None, [], 0
    for step in range(1, spec.max_steps + 1):
        if spec.online:
            x = rademacher([seed], step, spec.batch_size, net.n, device=device, dtype=dtype)[0]
            y = parity_labels(x[None], subset)[0]
        else:
            index = uniform_indices([seed], step, spec.batch_size, spec.train_set_size, device=device)[0]
            x, y = x_train[index], y_train[index]
        f = model(x)
        loss = loss_fn(spec.loss, f, y).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if record_losses:
            losses.append(float(loss))
        if t_c is None:
            check = bool((f * y > 0).all()) if spec.online else step % spec.eval_every == 0
            if check:
                with torch.no_grad():
                    accuracy = float((model(x_eval) * y_eval > 0).to(dtype).mean())
                if accuracy >= spec.accuracy_target:
                    t_c = step
        if t_c is not None and spec.stop_when_converged:
            break
    return ReferenceResult(model_params(net, model), t_c, step, losses)
