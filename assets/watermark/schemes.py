"""The watermarking schemes under study behind one interface: generate a batch, detect a batch.

Every detector reports ``score`` with one orientation, higher = more watermarked (KGW and Unigram: the
z-score; EXP and EXP-edit: minus the alignment statistic), and a ``p_value`` (the normal tail for the
z-tests; the permutation test for EXP / EXP-edit when ``runs`` > 0, else NaN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assets.watermark import exp_sampling as exp_mod
from assets.watermark.greenlist import (
    HASH_KEY,
    KGWGreenLists,
    UnigramGreenList,
    kgw_detect,
    kgw_logits_processor,
    unigram_detect,
    unigram_logits_processor,
)

KINDS = ("kgw", "unigram", "exp", "exp_edit")


@dataclass
class Scheme:
    """One watermark with its parameters. ``texts_from`` names the scheme whose generations it detects
    (EXP-edit reads the EXP texts: the two differ only in the detector)."""

    name: str
    kind: str
    vocab_size: int
    gamma: float = 0.25
    delta: float = 2.0
    unique: bool = False
    key: int = HASH_KEY
    key_length: int = 256
    edit_gamma: float = 0.4
    block: int | None = None
    texts_from: str = ""
    device: str = field(default="cpu", compare=False)  # where EXP / EXP-edit's alignment runs
    _state: Any = field(default=None, repr=False)
    # EXP: (device, ξ there), copied once; not an __init__ field, so dataclasses.replace starts a new cache
    _key_placed: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Scheme.kind must be one of {KINDS}, got {self.kind!r}")
        self.texts_from = self.texts_from or self.name
        if self.kind == "kgw":
            self._state = KGWGreenLists(self.vocab_size, self.gamma, self.key)
        elif self.kind == "unigram":
            self._state = UnigramGreenList(self.vocab_size, self.gamma, self.key)
        else:
            self._state = exp_mod.exp_key(self.key, self.key_length, self.vocab_size)

    @property
    def state(self) -> Any:
        """The green lists (KGW), the green list (Unigram) or the key ξ (EXP)."""
        return self._state

    def generate(self, model: Any, prompts, new_tokens: int, *, seed: int, temperature: float = 1.0):
        """Watermarked continuations [B, new_tokens] of prompts [B, P]."""
        import torch

        from assets.lm.inference import generate

        if self.kind == "kgw":
            out = generate(model, prompts, new_tokens, seed=seed, temperature=temperature,
                           logits_processors=[kgw_logits_processor(self._state, self.delta)])
        elif self.kind == "unigram":
            out = generate(model, prompts, new_tokens, seed=seed, temperature=temperature,
                           logits_processors=[unigram_logits_processor(self._state, self.delta)])
        else:
            shifts = torch.randint(self.key_length, (prompts.size(0),),
                                   generator=torch.Generator().manual_seed(seed))
            out = generate(model, prompts, new_tokens, seed=seed, temperature=temperature,
                           sampler=exp_mod.exp_sampler(self._state, shifts))
        return out[:, prompts.size(1):].cpu()

    def detect(self, tokens, *, runs: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
        """score (higher: watermarked), p_value, and the raw statistic for a batch tokens [B, m]."""
        if self.kind == "kgw":
            r = kgw_detect(tokens, self._state, unique_pairs=self.unique)
            return {"score": r["z"], "p_value": r["p_value"], "statistic": r["z"]}
        if self.kind == "unigram":
            r = unigram_detect(tokens, self._state, unique_tokens=self.unique)
            return {"score": r["z"], "p_value": r["p_value"], "statistic": r["z"]}
        edit, xi = self.kind == "exp_edit", self._key_on_device()
        stat = exp_mod.statistic(tokens, xi, edit=edit, gamma=self.edit_gamma, block=self.block, device=self.device)
        p = np.full(len(stat), np.nan)
        if runs > 0:
            p = exp_mod.permutation_pvalues(tokens, xi, edit=edit, runs=runs, gamma=self.edit_gamma,
                                            block=self.block, seed=seed, observed=stat, device=self.device)["p_value"]
        return {"score": -stat, "p_value": p, "statistic": stat}

    def _key_on_device(self):
        """ξ on ``device``: copied there on the first detection, not at every one (the attack detects at each
        of its steps; at the gpu profile ξ is 16 MB)."""
        if self._key_placed is None or self._key_placed[0] != self.device:
            self._key_placed = (self.device, self._state.to(self.device))
        return self._key_placed[1]


def build_schemes(vocab_size: int, *, kgw_gamma: float = 0.25, kgw_delta: float = 2.0,
                  attack_paper_gamma: float = 0.5, attack_paper_delta: float = 4.0, unique: bool = False,
                  unigram_gamma: float = 0.5, unigram_delta: float = 2.0, unigram_key: int = 0,
                  exp_key: int = 42, key_length: int = 256, edit_gamma: float = 0.4,
                  block: int | None = None, device: str = "cpu") -> dict[str, Scheme]:
    """The study's five detectors over four generations: KGW at its defaults and at the attack paper's
    γ/δ, Unigram, EXP and EXP-edit (the latter two read the same EXP-sampled texts)."""
    schemes = [
        Scheme("kgw", "kgw", vocab_size, kgw_gamma, kgw_delta, unique),
        Scheme("kgw_strong", "kgw", vocab_size, attack_paper_gamma, attack_paper_delta, unique),
        Scheme("unigram", "unigram", vocab_size, unigram_gamma, unigram_delta, unique, key=unigram_key),
        Scheme("exp", "exp", vocab_size, key=exp_key, key_length=key_length, block=block),
        Scheme("exp_edit", "exp_edit", vocab_size, key=exp_key, key_length=key_length, edit_gamma=edit_gamma,
               block=block, texts_from="exp"),
    ]
    for s in schemes:
        s.device = device
    return {s.name: s for s in schemes}


PARAMS = ("name", "kind", "vocab_size", "gamma", "delta", "unique", "key", "key_length", "edit_gamma", "block",
          "texts_from")


def scheme_params(scheme: Scheme) -> dict:
    """The fields that rebuild ``scheme`` (stored with the calibration; block None is stored as 0)."""
    out = {k: getattr(scheme, k) for k in PARAMS}
    out["scheme"] = out.pop("name")
    out["block"] = out["block"] or 0
    return out


def scheme_from_params(row: dict, device: str = "cpu") -> Scheme:
    """Inverse of `scheme_params` (accepts a calibration-table row as a dict)."""
    kwargs = {k: row[k] for k in PARAMS if k != "name"}
    ints = ("vocab_size", "key", "key_length", "block")
    kwargs.update({k: int(kwargs[k]) for k in ints})
    kwargs.update(gamma=float(kwargs["gamma"]), delta=float(kwargs["delta"]), edit_gamma=float(kwargs["edit_gamma"]),
                  unique=bool(kwargs["unique"]), block=kwargs["block"] or None)
    return Scheme(name=row["scheme"], device=device, **kwargs)
