"""Kuditipudi et al. 2023: the EXP (exponential minimum sampling) watermark and its EXP-edit detector.

Key: ξ ∈ [0,1]^{n×V}, drawn by ``torch.rand((n, V))`` from a CPU generator seeded with the key. A text is
generated at a random shift s: token i is argmax_v ξ_{(s+i) mod n, v}^{1/p_v} (an exact sample from p, made
deterministic by ξ). Detection aligns a text y of length m with the key at every offset j (and, for blocks
k < m, every window of k tokens): with cost c(a, b) = log(1 − ξ_{(j+b) mod n, y_a}),

- EXP: the aligned sum Σ_a c(a, a), minimised over windows and offsets;
- EXP-edit: the Levenshtein distance between the window and the key segment with these substitution costs
  and insertion/deletion cost γ, minimised over windows and offsets (robust to inserted/deleted tokens).

Lower is more watermarked; the functions here return it as is and ``score = −statistic`` upstream. The
p-value is the authors' permutation test: the statistic of the same text under ``runs`` fresh keys ξ',
p = (1 + #{null ≤ observed}) / (runs + 1). Only the columns of ξ' at the text's own tokens matter, so each
null key draws just those (equal in distribution to a full fresh key). Everything is batched: leading
dimensions carry texts and null runs, the edit-distance dynamic programme runs one text row at a time with
a cumulative-minimum for the insertion chain.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def exp_key(key: int, key_length: int, vocab_size: int):
    """ξ [n, V] float32 from a CPU torch.Generator seeded with ``key``."""
    import torch

    if key_length < 1 or vocab_size < 2:
        raise ValueError(f"key_length must be >= 1 and vocab_size >= 2, got {key_length}, {vocab_size}")
    generator = torch.Generator(device="cpu").manual_seed(int(key))
    return torch.rand((key_length, vocab_size), generator=generator)


def exp_sampler(xi, shifts):
    """A sampler for ``assets.lm.inference.generate``: row b's token at step i is
    argmax_v log(ξ_{(s_b+i) mod n, v}) / p_v, i.e. argmax ξ^{1/p}. ξ and the shifts are copied to the logits'
    device once, on the first call (ξ itself is drawn where `exp_key` drew it, so the samples do not change)."""
    import torch

    shifts = torch.as_tensor(shifts, dtype=torch.long).view(-1)
    placed: dict[Any, tuple] = {}  # device -> (ξ, shifts) there

    def sample(logits, step: int):
        if logits.device not in placed:
            with torch.inference_mode(False):
                placed[logits.device] = (xi.to(logits.device), shifts.to(logits.device))
        key, start = placed[logits.device]
        probs = logits.float().softmax(-1)
        rows = key[(start + step) % key.size(0)][:, : probs.size(-1)]
        with torch.no_grad():
            ratio = rows.log() / probs  # p = 0 gives -inf: never chosen
        return ratio.nan_to_num(nan=-float("inf")).argmax(-1)

    return sample


def cost_tensor(tokens, xi):
    """c [B, m, n]: log(1 − ξ_{j, y_a}) for every text position a and key row j."""
    import torch

    tokens = torch.as_tensor(tokens, dtype=torch.long)
    return torch.log1p(-xi[:, tokens].clamp(max=1 - 1e-7)).permute(1, 2, 0).contiguous()


def null_cost_tensors(tokens, key_length: int, runs: int, generator, device: str = "cpu"):
    """c' [runs, B, m, n] under ``runs`` fresh keys: one uniform per (run, text, key row, distinct token).

    The uniforms are drawn on the CPU by ``generator`` (the same keys on every device); on CUDA they are copied
    from pinned memory without waiting, and the gather and the log run on ``device``."""
    import torch

    tokens = torch.as_tensor(tokens, dtype=torch.long)
    inverse = torch.stack([row.unique(return_inverse=True)[1] for row in tokens])  # [B, m] local ids
    b, m = tokens.shape
    u = torch.rand((runs, b, key_length, m), generator=generator)
    if torch.device(device).type == "cuda":
        u, inverse = (t.pin_memory().to(device, non_blocking=True) for t in (u, inverse))
    picked = u.gather(3, inverse[None, :, None, :].expand(runs, b, key_length, m))  # [R, B, n, m]
    return torch.log1p(-picked.clamp(max=1 - 1e-7)).transpose(2, 3)


def _windows(cost, block: int):
    """[..., m, n] -> [..., W, k, n] windows of k consecutive text positions."""
    m = cost.size(-2)
    if not 1 <= block <= m:
        raise ValueError(f"block must be in [1, {m}] (the text length), got {block}")
    return cost.unfold(-2, block, 1).transpose(-1, -2)


def exp_statistic(cost, block: int | None = None):
    """min over windows and offsets of Σ_a c(a, (j+a) mod n); cost [..., m, n] -> [...]."""
    import torch

    block = cost.size(-2) if block is None else block
    w = _windows(cost, block)
    n = cost.size(-1)
    dev = cost.device
    idx = (torch.arange(n, device=dev)[None, :] + torch.arange(block, device=dev)[:, None]) % n  # [k, n]
    aligned = w.gather(-1, idx.expand(*w.shape[:-2], block, n)).sum(-2)  # [..., W, n]
    return aligned.flatten(-2).min(-1).values


def edit_statistic(cost, gamma: float = 0.4, block: int | None = None):
    """min over windows and offsets of the Levenshtein alignment cost (substitution c, insert/delete γ)."""
    import torch

    if gamma < 0:
        raise ValueError(f"gamma (insertion/deletion cost) must be >= 0, got {gamma}")
    block = cost.size(-2) if block is None else block
    w = _windows(cost, block)  # [..., W, k, n]
    n, k = cost.size(-1), block
    dev = cost.device
    idx = (torch.arange(n, device=dev)[:, None] + torch.arange(k, device=dev)[None, :]) % n  # [n, k]: key pos
    ramp = gamma * torch.arange(k + 1, dtype=cost.dtype, device=dev)
    dist = ramp.expand(*w.shape[:-2], n, k + 1).clone()  # row a = 0: b deletions
    for a in range(k):
        c = w[..., a, :][..., idx]  # [..., W, n, k]
        inner = torch.minimum(dist[..., 1:] + gamma, dist[..., :-1] + c)
        first = torch.full_like(dist[..., :1], (a + 1) * gamma)
        row = torch.cat([first, inner], dim=-1) - ramp
        dist = row.cummin(-1).values + ramp
    return dist[..., k].flatten(-2).min(-1).values


def levenshtein_reference(tokens: list[int], key_rows: Any, gamma: float) -> float:
    """The authors' scalar dynamic programme for one window against one key segment (tests compare)."""
    n, m = len(tokens), len(key_rows)
    table = np.zeros((n + 1, m + 1))
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0:
                table[i][j] = j * gamma
            elif j == 0:
                table[i][j] = i * gamma
            else:
                cost = np.log(1 - float(key_rows[j - 1][tokens[i - 1]]))
                table[i][j] = min(table[i - 1][j] + gamma, table[i][j - 1] + gamma, table[i - 1][j - 1] + cost)
    return float(table[n][m])


def statistic(tokens, xi, *, edit: bool, gamma: float = 0.4, block: int | None = None, chunk: int = 64,
              device: str = "cpu"):
    """EXP or EXP-edit statistic of a batch tokens [B, m] under key xi; numpy [B] (lower: watermarked).
    The dynamic programme runs on ``device``."""
    import torch

    tokens = torch.as_tensor(tokens, dtype=torch.long).cpu()
    xi = xi.to(device)
    if tokens.dim() != 2 or tokens.size(1) < 1:
        raise ValueError(f"tokens must be [B, m] with m >= 1, got shape {tuple(tokens.shape)}")
    out = []
    for start in range(0, tokens.size(0), chunk):
        c = cost_tensor(tokens[start:start + chunk].to(device), xi)
        out.append((edit_statistic(c, gamma, block) if edit else exp_statistic(c, block)).cpu())
    return torch.cat(out).numpy().astype(float)


def permutation_pvalues(tokens, xi, *, edit: bool, runs: int, gamma: float = 0.4, block: int | None = None,
                        seed: int = 0, observed: np.ndarray | None = None, chunk_elements: int = 4_000_000,
                        device: str = "cpu") -> dict:
    """Statistic and permutation-test p-value (1 + #{null ≤ observed}) / (runs + 1) per text."""
    import torch

    tokens = torch.as_tensor(tokens, dtype=torch.long).cpu()
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if observed is None:
        observed = statistic(tokens, xi, edit=edit, gamma=gamma, block=block, device=device)
    obs = np.asarray(observed)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    b, m = tokens.shape
    n = xi.size(0)
    k = m if block is None else block
    per_text = n * (m - k + 1) * (k + 1) * max(k, 1)
    texts_per_chunk = max(1, chunk_elements // max(per_text * runs, 1))
    bar = torch.tensor(obs).to(device) + 1e-9  # in obs's dtype, as numpy adds it
    below = []  # counts stay on the device: one read-back after the last chunk
    for start in range(0, b, texts_per_chunk):
        part = tokens[start:start + texts_per_chunk]
        null_cost = null_cost_tensors(part, n, runs, generator, device)  # [R, b', m, n]
        null = edit_statistic(null_cost, gamma, block) if edit else exp_statistic(null_cost, block)
        below.append((null <= bar[None, start:start + len(part)]).sum(0))
    count = torch.cat(below).cpu().numpy().astype(float)
    return {"statistic": obs, "p_value": (1.0 + count) / (runs + 1.0)}
