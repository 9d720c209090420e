"""Hidden-progress measures: what moves during the loss plateau while accuracy does not.

All act on the first layer W (M, rows, n), whose column i holds the weights on input coordinate i:
- ``linf_change``: ||W_t - W_0||_inf, the largest change of any first-layer weight;
- the weight mass on the k relevant coordinates versus the others: the per-coordinate RMS column norm on S
  and off S, their ratio (``weight_mass_ratio``, about 1 at initialisation) and the share of all squared
  weight on S (``relevant_weight_share``, about k/n at initialisation);
- the Fourier gap: the population gradient of the loss in W, estimated on a sample, compared between the
  relevant and the irrelevant columns. Column i is E[dLoss/d(W x) * x_i], a correlation of x_i with the
  back-propagated signal; for the parity it is large on S and small elsewhere, and that gap is what SGD
  amplifies. On a finite sample the irrelevant columns carry a noise floor of order 1/sqrt(sample size).
"""

from __future__ import annotations

import torch

from assets.parity.architectures import Network, Params, backward, forward, loss_terms

WEIGHT_MEASURES = ("linf_change", "relevant_weight_norm", "irrelevant_weight_norm", "weight_mass_ratio",
                   "relevant_weight_share", "relevant_change_ratio")
GRADIENT_MEASURES = ("gradient_relevant", "gradient_irrelevant", "fourier_gap")


def _column_rms(column_sq: torch.Tensor, relevant: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RMS of per-column values on S and off S; NaN off S when k == n."""
    rel = relevant.to(column_sq.dtype)
    on = (column_sq * rel).sum(dim=1) / rel.sum(dim=1)
    off_count = (1 - rel).sum(dim=1)
    off = (column_sq * (1 - rel)).sum(dim=1) / off_count.where(off_count > 0, torch.nan)
    return on.sqrt(), off.sqrt()


def weight_measures(W: torch.Tensor, W0: torch.Tensor, relevant: torch.Tensor) -> dict[str, torch.Tensor]:
    """The weight-based measures for every model, each of shape (M,). ``relevant``: bool (M, n)."""
    if W.shape != W0.shape or W.ndim != 3 or relevant.shape != (W.shape[0], W.shape[2]):
        raise ValueError(f"W {tuple(W.shape)}, W0 {tuple(W0.shape)}, relevant {tuple(relevant.shape)}: "
                         "expected W and W0 (M, rows, n) and relevant (M, n)")
    column_sq = (W**2).sum(dim=1)  # (M, n)
    on, off = _column_rms(column_sq, relevant)
    change_on, change_off = _column_rms(((W - W0) ** 2).sum(dim=1), relevant)
    return {
        "linf_change": (W - W0).abs().amax(dim=(1, 2)),
        "relevant_weight_norm": on,
        "irrelevant_weight_norm": off,
        "weight_mass_ratio": on / off,
        "relevant_weight_share": (column_sq * relevant).sum(dim=1) / column_sq.sum(dim=1),
        "relevant_change_ratio": change_on / change_off,
    }


def population_gradient(net: Network, params: Params, x: torch.Tensor, y: torch.Tensor, loss: str,
                        chunk: int = 2048) -> torch.Tensor:
    """The loss gradient in the first layer averaged over the sample: (M, rows, n).

    ``x``: a sample shared by all models (N, n) and ``y``: their labels (M, N). With x the full cube this is
    the exact population gradient."""
    if x.ndim != 2 or y.shape != (params["W"].shape[0], x.shape[0]):
        raise ValueError(f"x {tuple(x.shape)}, y {tuple(y.shape)}: expected x (N, n) and y (models, N)")
    total = torch.zeros_like(params["W"])
    for start in range(0, x.shape[0], chunk):
        xs, ys = x[start:start + chunk], y[:, start:start + chunk]
        f, cache = forward(net, params, xs)
        _, dloss = loss_terms(loss, f, ys)
        total += backward(net, params, cache, xs, dloss)[net.first_layer]
    return total / x.shape[0]


def fourier_gap(gradient: torch.Tensor, relevant: torch.Tensor) -> dict[str, torch.Tensor]:
    """RMS column norm of the gradient on S and off S, and their ratio (the Fourier gap), each (M,)."""
    on, off = _column_rms((gradient**2).sum(dim=1), relevant)
    return {"gradient_relevant": on, "gradient_irrelevant": off, "fourier_gap": on / off}
