"""The random-walk attack of Zhang et al. 2023, batched over texts.

Each step, for every text: the perturbation oracle rewrites a random span (``"resample"``: the generator
re-samples ``span`` tokens at a random position given everything before it, without the watermark;
``"infill"``: the FIM in-filler of `assets.watermark.infill` writes them given the prefix and the suffix), the
quality oracle scores the candidate, and the step is taken only if the candidate's quality is not below the
original watermarked text's (minus ``quality_tolerance``). After ``backoff_after`` consecutive rejections a
text backs off to half the span (not below ``min_span``).

The paper's protocol (the default): every text walks the fixed budget of ``steps`` steps; the attacker never
queries the detector. Detection is measured by the key holder afterwards, and along the way for the curves:
every step of every text is recorded (whether the proposal was accepted, the span, the current text's detector
score, p-value, detection and quality), so `success_at` reads the attack's success at any step count, e.g.
the `checkpoints` 0, T/4, T/2, 3T/4 and T. Because the walk's randomness does not depend on detection, the
first t steps of a T-step walk are exactly a t-step walk.

``detector_in_the_loop`` (an option, not the paper's attack): a text stops walking as soon as the key-holder's
detector no longer flags it. It saves steps in an evaluation but gives the attacker an oracle it does not have.

The two oracles on the demo (24 texts per scheme, measured with the detector in the loop, before issue 16):
re-sampling freed 100/100/92/75/75% of KGW/KGW-strong/Unigram/EXP/EXP-edit texts (48-56% of proposals
accepted); the demo in-filler freed 100/92/83/75/75% (47-54% accepted) for ~1 s more. Its middle loss does not
beat the generator's, so the demo keeps re-sampling.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

QualityFn = Callable[[Any, Any], np.ndarray]  # (prompts [N, P], responses [N, m]) -> quality [N], higher better
DetectFn = Callable[[Any, np.ndarray], dict]  # (responses [n, m], row indices [n]) -> {"score", "p_value", "detected"}
# (prompts [n, P], responses [n, m], spans [n], rng, seed) -> (candidates [n, m], starts [n])
ProposeFn = Callable[[Any, Any, np.ndarray, np.random.Generator, int], tuple]
PERTURBATIONS = ("resample", "infill")


@dataclass(frozen=True)
class WalkSettings:
    steps: int = 40
    span: int = 4
    min_span: int = 1
    backoff_after: int = 5
    quality_tolerance: float = 0.0
    detector_in_the_loop: bool = False  # not the paper's protocol: stop a text once the detector lets it go
    temperature: float = 1.0
    seed: int = 0
    perturbation: str = "resample"

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> WalkSettings:
        """The settings named in ``values`` (e.g. a Config's ``model_dump()``); others keep their defaults."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def __post_init__(self) -> None:
        if self.steps < 0 or self.span < 1 or not 1 <= self.min_span <= self.span or self.backoff_after < 1:
            raise ValueError(f"WalkSettings need steps >= 0, span >= min_span >= 1, backoff_after >= 1; got {self}")
        if self.perturbation not in PERTURBATIONS:
            raise ValueError(f"WalkSettings.perturbation must be one of {PERTURBATIONS}, got {self.perturbation!r}")


def propose_spans(model: Any, prompts, responses, spans: np.ndarray, rng: np.random.Generator, *,
                  seed: int, temperature: float = 1.0):
    """Perturbation oracle: for row r, re-sample spans[r] tokens at a random start given the prompt and the
    response before it; returns (candidates [N, m], starts [N])."""
    import torch

    from assets.lm.inference import generate

    n, m = responses.shape
    p = prompts.size(1)
    spans = np.minimum(spans, m)
    starts = np.array([rng.integers(0, m - s + 1) for s in spans])
    width = p + int(starts.max())
    ids = torch.zeros(n, width, dtype=torch.long)
    mask = torch.zeros(n, width, dtype=torch.long)
    for r in range(n):  # left padding: every prefix ends at the last column
        prefix = torch.cat([prompts[r], responses[r, :starts[r]]])
        ids[r, width - len(prefix):] = prefix
        mask[r, width - len(prefix):] = 1
    new = generate(model, ids, int(spans.max()), attention_mask=mask, seed=seed,
                   temperature=temperature)[:, width:].cpu()
    candidates = responses.clone()
    for r in range(n):
        candidates[r, starts[r]:starts[r] + spans[r]] = new[r, :spans[r]]
    return candidates, starts


def resampler(model: Any, temperature: float = 1.0) -> ProposeFn:
    """The "resample" perturbation oracle: `propose_spans` with the generator."""
    def propose(prompts, responses, spans, rng, seed):
        return propose_spans(model, prompts, responses, spans, rng, seed=seed, temperature=temperature)
    return propose


def random_walk(generator_model: Any, prompts, responses, quality: QualityFn, detect: DetectFn,
                settings: WalkSettings, log: Callable[[str], None] | None = None, propose: ProposeFn | None = None):
    """Walk every row; returns (final responses [N, m], per-step records DataFrame, original quality [N],
    {"steps_taken": [N], "accepted": [N]}). ``propose`` is the perturbation oracle (default: the generator
    re-sampling spans)."""
    propose = propose or resampler(generator_model, settings.temperature)
    n = responses.size(0)
    rng = np.random.default_rng(settings.seed)
    current = responses.clone()
    q_orig = np.asarray(quality(prompts, current), dtype=float)
    q_now = q_orig.copy()
    first = detect(current, np.arange(n))
    score, pval, detected = (np.asarray(first[k], dtype=float) for k in ("score", "p_value", "detected"))
    detected = detected.astype(bool)
    span = np.full(n, settings.span)
    rejections = np.zeros(n, dtype=int)
    accepted_total = np.zeros(n, dtype=int)
    active = detected.copy() if settings.detector_in_the_loop else np.ones(n, dtype=bool)
    records = [_record(0, np.arange(n), np.zeros(n, bool), span, score, pval, detected, q_now, active)]
    started, every = time.time(), max(1, settings.steps // 10)
    for step in range(1, settings.steps + 1):
        rows = np.flatnonzero(active)
        if len(rows) == 0:  # only with the detector in the loop: every text already let go
            break
        cand, _ = propose(prompts[rows], current[rows], span[rows], rng, settings.seed * 100_003 + step)
        q_cand = np.asarray(quality(prompts[rows], cand), dtype=float)
        ok = q_cand >= q_orig[rows] - settings.quality_tolerance
        took = rows[ok]
        if len(took):
            current[took] = cand[ok]
            q_now[took] = q_cand[ok]
            res = detect(current[took], took)
            score[took], pval[took] = res["score"], res["p_value"]
            detected[took] = np.asarray(res["detected"], dtype=bool)
        accepted_total[took] += 1
        rejections[took] = 0
        refused = rows[~ok]
        rejections[refused] += 1
        backoff = refused[rejections[refused] >= settings.backoff_after]
        span[backoff] = np.maximum(settings.min_span, span[backoff] // 2)
        rejections[backoff] = 0
        accepted = np.zeros(n, dtype=bool)
        accepted[took] = True
        records.append(_record(step, rows, accepted[rows], span[rows], score[rows], pval[rows], detected[rows],
                               q_now[rows], np.ones(len(rows), bool)))
        if settings.detector_in_the_loop:
            active[took[~detected[took]]] = False
        if log and (step % every == 0 or step == settings.steps):
            eta = (time.time() - started) / step * (settings.steps - step)
            log(f"walk step {step}/{settings.steps}: {len(rows)} walking, {ok.mean():.0%} accepted, "
                f"{detected.mean():.0%} still detected, ETA {eta:.0f}s")
    frame = pd.concat(records, ignore_index=True)
    steps_taken = frame.groupby("row")["step"].max().reindex(range(n)).to_numpy()
    return current, frame, q_orig, {"steps_taken": steps_taken, "accepted": accepted_total}


def _record(step, rows, accepted, span, score, pval, detected, quality, walking) -> pd.DataFrame:
    return pd.DataFrame({"step": step, "row": rows, "accepted": accepted, "span": span, "score": score,
                         "p_value": pval, "detected": detected, "quality": quality, "walking": walking})


def detection_curve(walk: pd.DataFrame, n_rows: int, steps: int) -> pd.DataFrame:
    """Share of rows detected after each step, carrying a stopped row's last state forward."""
    wide = detected_at(walk, n_rows, steps)
    return pd.DataFrame({"step": wide.index, "detection_rate": wide.mean(axis=1).to_numpy()})


def checkpoints(steps: int) -> list[int]:
    """The step counts the attack's success is reported at: 0, T/4, T/2, 3T/4 and T (rounded, distinct)."""
    return sorted({round(steps * q) for q in (0, 0.25, 0.5, 0.75)} | {steps})


def detected_at(walk: pd.DataFrame, n_rows: int, steps: int) -> pd.DataFrame:
    """Whether each row was detected after each step [steps + 1, n_rows] (a row that stopped keeps its last
    state: with the detector in the loop, a text let go stays let go)."""
    wide = walk.pivot_table(index="step", columns="row", values="detected", aggfunc="last")
    return wide.reindex(index=range(steps + 1), columns=range(n_rows)).astype(float).ffill()


def success_at(walk: pd.DataFrame, n_rows: int, steps: int, at: list[int]) -> dict[int, np.ndarray]:
    """Per step count in ``at``: which rows were detected before the walk and no longer after that many steps
    (the walk keeps quality by construction: every accepted step passed the quality oracle)."""
    wide = detected_at(walk, n_rows, steps)
    before = wide.loc[0].to_numpy() > 0.5
    return {t: before & ~(wide.loc[min(t, steps)].to_numpy() > 0.5) for t in at}


def first_undetected_step(walk: pd.DataFrame, n_rows: int, steps: int) -> np.ndarray:
    """Per row, the first step after which the detector no longer flagged it (NaN: never, or not detected at
    the start)."""
    wide = detected_at(walk, n_rows, steps).to_numpy() > 0.5  # [steps + 1, n_rows]
    lost = ~wide & wide[0]
    return np.where(lost.any(0), lost.argmax(0), np.nan).astype(float)
