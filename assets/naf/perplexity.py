"""The cost of protection: held-out perplexity of each model and combination on unprotected text.

Every model is scored on the same fixed windows of the validation stream (documents back to back, as in
training), so the numbers are directly comparable; a combination's perplexity is that of its normalised
token-level distribution (`assets.naf.combine`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from assets.naf.combine import Rule
from assets.naf.sampling import score_tokens

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


def heldout_windows(tokenizer: Any, texts: Sequence[str], context_length: int, n_windows: int) -> torch.Tensor:
    """``n_windows`` evenly spaced windows of ``context_length + 1`` tokens over the encoded texts."""
    import torch

    from assets.corpora.tokenization import encode_documents
    from assets.lm.data import TokenStream

    if not len(texts):
        raise ValueError("texts must hold at least one held-out document")
    stream = TokenStream(encode_documents(tokenizer, list(texts)), context_length, field="held-out tokens")
    x, y = stream.fixed_windows(n_windows)
    return torch.cat([x, y[:, -1:]], dim=1)


def heldout_perplexity(models: Mapping[str, Any], windows: torch.Tensor,
                       rules: Mapping[str, tuple[Sequence[str], Rule]] | None = None,
                       batch_size: int = 64) -> pd.DataFrame:
    """Mean next-token loss (nats) and perplexity of every model and rule on the same windows.

    Every token of a window after its first is predicted from the tokens before it in the window.
    Columns: model, nll_nats, perplexity, n_tokens.
    """
    scores = score_tokens(models, windows, 1, rules=rules, batch_size=batch_size)
    rows = []
    for name, logprob in scores.logprob.items():
        nll = float(-logprob.double().mean())
        rows.append({"model": name, "nll_nats": nll, "perplexity": math.exp(nll), "n_tokens": int(logprob.numel())})
    return pd.DataFrame(rows, columns=["model", "nll_nats", "perplexity", "n_tokens"])
