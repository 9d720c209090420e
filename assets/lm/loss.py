"""The next-token loss the trainer optimises, plain or chunked (a fused linear + cross-entropy).

The plain loss computes the full (rows x vocabulary) logits, upcasts them to float32 and takes the
cross-entropy: at GPT-2 shapes (32 x 1024 rows, 50,304 words) that is 6.6 GB of float32 logits, plus the saved
softmax for backward. `LinearCrossEntropy` never holds more than one chunk of logits: it walks the rows in
chunks, computes each chunk's logits, its loss, and at once the gradients of the loss with respect to the
hidden states and the head weight (softmax - one-hot), and keeps only those for backward (the method of
Liger-Kernel's fused linear cross-entropy and of Wijmans et al. 2024, "Cut your losses", in plain PyTorch).

`NextTokenLoss` wraps a Hugging Face causal LM (or its fused training view, `assets.lm.fused`) so that the loss
is the module's output: the trainer compiles and DDP-wraps this module, so the chunked loss is inside the
compiled, gradient-synchronised forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from assets.lm.fused import FusedDecoder


def next_token_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of y given x; logits are upcast to float32 so bf16 autocast does not hurt the loss."""
    logits = model(input_ids=x, use_cache=False).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction=reduction)


class LinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T`` against ``targets``, ``chunk_rows`` rows at a time.

    Forward returns the summed loss (float32) and, when gradients are wanted, computes them chunk by chunk:
    d loss / d logits = softmax(logits) - one_hot(targets), so d hidden = that @ weight and
    d weight = that.T @ hidden. Backward only scales the stored gradients by the incoming one. Matmuls run in
    the autocast dtype when autocast is on (as the model's own head would); softmax and sums in float32.
    """

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int):
        want_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        for start in range(0, hidden.size(0), chunk_rows):
            h, t = hidden[start : start + chunk_rows], targets[start : start + chunk_rows]
            logits = (h @ weight.t()).float()
            log_z = torch.logsumexp(logits, dim=-1)
            total += (log_z - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if want_grad:  # softmax in place (one chunk of float32 logits alive), then minus the one-hot target
                d_logits = logits.sub_(log_z[:, None]).exp_()
                d_logits[torch.arange(t.size(0), device=t.device), t] -= 1.0
                d_logits = d_logits.to(weight.dtype)
                # under autocast these matmuls run in bf16, as the model's own head would
                if grad_hidden is not None:
                    grad_hidden[start : start + chunk_rows] = (d_logits @ weight).to(hidden.dtype)
                if grad_weight is not None:
                    grad_weight += (d_logits.t() @ h).float()
        ctx.save_for_backward(
            grad_hidden if grad_hidden is not None else torch.empty(0),
            grad_weight.to(weight.dtype) if grad_weight is not None else torch.empty(0),
        )
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_total.to(torch.float32)
        return (
            grad_hidden * scale.to(grad_hidden.dtype) if ctx.needs_input_grad[0] else None,
            grad_weight * scale.to(grad_weight.dtype) if ctx.needs_input_grad[1] else None,
            None,
            None,
        )


def chunked_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy of the logits ``hidden @ weight.T`` (rows x vocabulary) without holding them all at once.

    hidden: (..., d), weight: (vocabulary, d), targets: (...) of word ids; reduction "mean" or "sum".
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    hidden, targets = hidden.reshape(-1, hidden.size(-1)), targets.reshape(-1)
    total = LinearCrossEntropy.apply(hidden, weight, targets, chunk_rows)
    return total / targets.numel() if reduction == "mean" else total


class NextTokenLoss(nn.Module):
    """``forward(x, y, reduction)`` -> the next-token loss of ``model``.

    ``model`` is a Hugging Face causal LM or an `assets.lm.fused.FusedDecoder` (which returns final hidden
    states and exposes ``head_weight``). chunk_rows None: the plain loss (full logits, upcast to float32).
    chunk_rows N: the final hidden states go through `chunked_cross_entropy` with the model's output embedding
    (no bias), so the full logits are never built. Both give the same loss and gradients up to float rounding.
    """

    def __init__(self, model: nn.Module, chunk_rows: int | None = None):
        super().__init__()
        self.model, self.chunk_rows = model, chunk_rows
        self.fused = isinstance(model, FusedDecoder)
        if chunk_rows is not None and not self.fused:
            head = model.get_output_embeddings()
            if head is None or getattr(head, "bias", None) is not None:
                raise ValueError("the chunked loss needs a causal LM whose output head is a bias-free linear layer")

    def forward(self, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.fused:
            hidden, weight = self.model(x), self.model.head_weight
        elif self.chunk_rows is None:
            return next_token_loss(self.model, x, y, reduction=reduction)
        else:
            hidden = self.model.base_model(input_ids=x, use_cache=False).last_hidden_state
            weight = self.model.get_output_embeddings().weight
        if self.chunk_rows is None:
            logits = F.linear(hidden, weight)
            return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction=reduction)
        return chunked_cross_entropy(hidden, weight, y, self.chunk_rows, reduction=reduction)
