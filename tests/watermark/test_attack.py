"""Generation with the watermarks on a tiny model, and the random walk's bookkeeping with known oracles."""

import numpy as np
import pytest
import torch

from assets.watermark.attack import (
    WalkSettings,
    checkpoints,
    detection_curve,
    first_undetected_step,
    propose_spans,
    random_walk,
    success_at,
)
from assets.watermark.schemes import build_schemes, scheme_from_params, scheme_params


@pytest.fixture(scope="module")
def schemes():
    return build_schemes(120, key_length=32)


def test_tiny_model_watermarks_are_detected_and_plain_text_is_not(tiny_lm, schemes):
    from assets.lm.inference import generate

    prompts = torch.randint(120, (8, 4), generator=torch.Generator().manual_seed(0))
    # A fresh model's next-token law is near uniform, so a green token comes with probability
    # γe^δ / (γe^δ + 1 − γ): 0.71 for KGW (0.25, 2), 0.98 for (0.5, 4), 0.88 for Unigram (0.5, 2); over 60
    # tokens that is an expected z of 8.2, 12.5 and 5.9.
    plain = generate(tiny_lm, prompts, 60, seed=5)[:, 4:]
    for name in ("kgw", "kgw_strong", "unigram"):
        marked = schemes[name].generate(tiny_lm, prompts, 60, seed=1)
        assert marked.shape == (8, 60)
        z_marked, z_plain = schemes[name].detect(marked)["score"], schemes[name].detect(plain)["score"]
        assert (z_marked > 4).all(), (name, z_marked)  # the z threshold of Kirchenbauer et al.
        assert (np.abs(z_plain) < 4).all(), (name, z_plain)
    exp = schemes["exp"].detect(schemes["exp"].generate(tiny_lm, prompts, 30, seed=1))["score"]
    plain = plain[:, :30]
    assert exp.min() > schemes["exp"].detect(plain)["score"].max()


def test_scheme_parameters_round_trip(schemes):
    for scheme in schemes.values():
        again = scheme_from_params(scheme_params(scheme))
        assert (again.name, again.kind, again.gamma, again.delta, again.texts_from) == \
            (scheme.name, scheme.kind, scheme.gamma, scheme.delta, scheme.texts_from)
    tokens = torch.randint(120, (3, 20), generator=torch.Generator().manual_seed(2))
    for scheme in schemes.values():
        again = scheme_from_params(scheme_params(scheme))
        assert np.allclose(again.detect(tokens)["score"], scheme.detect(tokens)["score"])


def test_proposals_change_only_the_span(tiny_lm):
    prompts = torch.randint(120, (5, 6), generator=torch.Generator().manual_seed(0))
    responses = torch.randint(120, (5, 12), generator=torch.Generator().manual_seed(1))
    spans = np.array([1, 2, 3, 4, 12])
    cand, starts = propose_spans(tiny_lm, prompts, responses, spans, np.random.default_rng(0), seed=0)
    for r in range(5):
        outside = torch.ones(12, dtype=torch.bool)
        outside[starts[r]:starts[r] + spans[r]] = False
        assert torch.equal(cand[r, outside], responses[r, outside])
    assert starts[4] == 0  # a span as long as the text starts at 0


def _detector(threshold_green: int):
    """Detected while at least threshold_green tokens are even ids (a stand-in watermark)."""
    def detect(tokens, rows):
        score = (tokens % 2 == 0).sum(1).numpy().astype(float)
        return {"score": score, "p_value": np.full(len(rows), 0.5), "detected": score >= threshold_green}
    return detect


def _lenient(p, r):
    return np.zeros(len(r))


def test_the_paper_walk_never_asks_the_detector_and_walks_the_whole_budget(tiny_lm):
    prompts = torch.randint(120, (4, 4), generator=torch.Generator().manual_seed(0))
    responses = torch.full((4, 10), 2, dtype=torch.long)  # all even: score 10
    settings = WalkSettings(steps=30, span=3, seed=1)
    assert not settings.detector_in_the_loop  # the paper's protocol is the default
    final, walk, _, info = random_walk(tiny_lm, prompts, responses, _lenient, _detector(8), settings)
    # every text walks all 30 steps, also after the detector has let it go
    assert info["steps_taken"].tolist() == [30] * 4 and (info["accepted"] == 30).all()
    assert walk.groupby("row")["step"].nunique().eq(31).all()
    # a detector that never flags anything changes nothing in the walk: the attacker never queries it
    again, walk_blind, _, info_blind = random_walk(tiny_lm, prompts, responses, _lenient, _detector(99), settings)
    assert torch.equal(final, again) and (info_blind["accepted"] == info["accepted"]).all()
    assert (walk_blind["step"].to_numpy() == walk["step"].to_numpy()).all()
    assert not walk_blind["detected"].any()
    # the first t steps of a T-step walk are a t-step walk
    short, walk_short, _, _ = random_walk(tiny_lm, prompts, responses, _lenient, _detector(8),
                                          WalkSettings(steps=12, span=3, seed=1))
    head = walk[walk["step"] <= 12].reset_index(drop=True)
    assert head[["step", "row", "accepted", "score", "detected"]].equals(
        walk_short[["step", "row", "accepted", "score", "detected"]])
    # success at the checkpoints, read off the per-step records
    assert checkpoints(30) == [0, 8, 15, 22, 30] and checkpoints(8) == [0, 2, 4, 6, 8]
    freed = success_at(walk, 4, 30, [0, 12, 30])
    assert not freed[0].any()
    assert (freed[30] == ((final % 2 == 0).sum(1) < 8).numpy()).all()
    assert (freed[12] == ~walk_short.sort_values("step").groupby("row")["detected"].last().to_numpy()).all()
    first = first_undetected_step(walk, 4, 30)
    lost = walk[~walk["detected"]].groupby("row")["step"].min()
    assert np.allclose(first[lost.index], lost.to_numpy())


def test_detector_in_the_loop_stops_a_text_once_it_is_lost(tiny_lm):
    prompts = torch.randint(120, (4, 4), generator=torch.Generator().manual_seed(0))
    responses = torch.full((4, 10), 2, dtype=torch.long)  # all even: score 10
    final, walk, q0, info = random_walk(tiny_lm, prompts, responses, _lenient, _detector(8),
                                        WalkSettings(steps=30, span=3, seed=1, detector_in_the_loop=True))
    assert (walk.loc[walk["step"] > 0, "accepted"]).all()
    assert ((final % 2 == 0).sum(1) < 8).all()  # every text lost its "watermark"
    assert (info["steps_taken"] < 30).all() and (info["accepted"] == info["steps_taken"]).all()
    last = walk.sort_values("step").groupby("row").tail(1)
    assert (~last["detected"]).all()
    curve = detection_curve(walk, 4, 30)
    assert curve["detection_rate"].iloc[0] == 1.0 and curve["detection_rate"].iloc[-1] == 0.0
    assert curve["detection_rate"].is_monotonic_decreasing
    assert np.allclose(first_undetected_step(walk, 4, 30), info["steps_taken"])
    # a text the detector never flagged does not walk at all
    _, _, _, idle = random_walk(tiny_lm, prompts, responses, _lenient, _detector(99),
                                WalkSettings(steps=30, span=3, seed=1, detector_in_the_loop=True))
    assert (idle["steps_taken"] == 0).all()


def test_walk_backs_off_and_keeps_the_text_under_a_strict_oracle(tiny_lm):
    prompts = torch.randint(120, (3, 4), generator=torch.Generator().manual_seed(0))
    responses = torch.randint(120, (3, 10), generator=torch.Generator().manual_seed(1))

    def strict(p, r):  # only the original texts have quality 0; everything else is worse
        return np.where((r == responses[: len(r)]).all(1).numpy(), 0.0, -1.0) if len(r) == 3 else -np.ones(len(r))

    final, walk, _, info = random_walk(tiny_lm, prompts, responses, strict, _detector(0),
                                       WalkSettings(steps=12, span=4, backoff_after=3, seed=0))
    assert torch.equal(final, responses) and (info["accepted"] == 0).all()
    spans = walk[walk["row"] == 0].set_index("step")["span"]
    assert spans[1] == 4 and spans[3] == 2 and spans[6] == 1 and spans[12] == 1  # halves every 3 rejections
    assert info["steps_taken"].tolist() == [12, 12, 12]


def test_the_attack_reads_back_the_generations_its_tables_hold(tiny_lm, schemes):
    """The generation step's tables turn back into the tensors, scores and settings the attack needs."""
    from assets.watermark.study import (
        SPLIT_SEED_OFFSET,
        StudySettings,
        attack_inputs,
        detection_tables,
        null_split,
    )

    s = StudySettings(prompt_tokens=4, response_tokens=12, n_texts=3, n_null=100, permutation_runs=3)
    prompts = torch.randint(120, (3, 4), generator=torch.Generator().manual_seed(3))
    null_prompts = torch.randint(120, (100, 4), generator=torch.Generator().manual_seed(4))
    tokens = {name: scheme.generate(tiny_lm, prompts, 12, seed=7) for name, scheme in schemes.items()
              if scheme.texts_from == name}
    null = torch.randint(120, (100, 12), generator=torch.Generator().manual_seed(5))
    gen = {"prompts": prompts, "tokens": tokens, "null_prompts": null_prompts, "null_tokens": null}
    keys = [*tokens, "null"]
    table, calibration = detection_tables(gen, schemes, s, {k: -np.ones(100 if k == "null" else 3) for k in keys},
                                          {k: ["x"] * (100 if k == "null" else 3) for k in keys})
    shuffled = table.sample(frac=1.0, random_state=0)  # the warehouse keeps no row order
    inputs = attack_inputs(shuffled, calibration, seed=9)
    assert list(inputs.schemes) == list(schemes)
    assert set(inputs.gen["tokens"]) == set(tokens) == {"kgw", "kgw_strong", "unigram", "exp"}
    assert torch.equal(inputs.gen["prompts"], prompts)
    for name, generated in tokens.items():
        assert torch.equal(inputs.gen["tokens"][name], generated), name
    held_out = null_split(100, s.seed + SPLIT_SEED_OFFSET)
    assert held_out.sum() == 50 and (calibration["n_held_out"] == 50).all() and (calibration["split_seed"] == 17).all()
    for name, scheme in schemes.items():  # empirical p-values along the walk: against the calibration half only
        assert np.allclose(np.sort(inputs.null_scores[name]), np.sort(scheme.detect(null[~held_out])["score"])), name
        rows = table[(table["scheme"] == name) & (table["role"] == "unwatermarked")].sort_values("text_id")
        assert (rows["held_out"].to_numpy() == held_out).all(), name
    assert (inputs.settings.prompt_tokens, inputs.settings.response_tokens, inputs.settings.n_texts,
            inputs.settings.n_null, inputs.settings.permutation_runs, inputs.settings.seed) == (4, 12, 3, 100, 3, 9)
    assert len(inputs.null_texts) == 100 and (inputs.null_texts["scheme"] == "kgw").all()
    assert WalkSettings.of({"steps": 5, "span": 2, "unrelated": 1}) == WalkSettings(steps=5, span=2)


def test_a_threshold_that_fails_on_held_out_texts_fails_the_calibration_check(tiny_lm, schemes):
    """The threshold is set on the calibration half only, and the check reads the held-out half: plant
    KGW-watermarked texts among the held-out unwatermarked ones (a null the calibration never saw) and the check
    fails; on plain random tokens it holds."""
    from assets.watermark import validity
    from assets.watermark.study import (
        SPLIT_SEED_OFFSET,
        StudySettings,
        calibrated_threshold,
        detection_tables,
        null_split,
    )

    s = StudySettings(prompt_tokens=4, response_tokens=24, n_texts=2, n_null=200, permutation_runs=2)
    held_out = null_split(200, s.seed + SPLIT_SEED_OFFSET)
    prompts = torch.randint(120, (2, 4), generator=torch.Generator().manual_seed(3))
    null_prompts = torch.randint(120, (200, 4), generator=torch.Generator().manual_seed(4))
    plain = torch.randint(120, (200, 24), generator=torch.Generator().manual_seed(5))
    tokens = {name: scheme.generate(tiny_lm, prompts, 24, seed=7) for name, scheme in schemes.items()
              if scheme.texts_from == name}
    planted = np.flatnonzero(held_out)[:10]  # 10 of the 100 held-out texts carry the KGW watermark
    shifted = plain.clone()
    shifted[planted] = schemes["kgw"].generate(tiny_lm, null_prompts[planted], 24, seed=8)

    def calibrate(null):
        gen = {"prompts": prompts, "tokens": tokens, "null_prompts": null_prompts, "null_tokens": null}
        keys = [*tokens, "null"]
        return detection_tables(gen, schemes, s, {k: -np.ones(200 if k == "null" else 2) for k in keys},
                                {k: ["x"] * (200 if k == "null" else 2) for k in keys})[1].set_index("scheme")

    calibration = calibrate(plain)
    assert validity.calibration_holds(calibration.reset_index(), s.fpr)[0]
    assert (calibration["n_held_out"] == 100).all() and (calibration["calibration_false_positive_rate"] <= 0.01).all()
    shifted_calibration = calibrate(shifted)
    kgw = shifted_calibration.loc["kgw"]
    # the calibration half is untouched, so its threshold is the plain texts' one
    assert kgw["threshold"] == calibration.loc["kgw", "threshold"] == calibrated_threshold(
        schemes["kgw"].detect(plain[~held_out])["score"], s.fpr)
    assert kgw["held_out_false_positives"] >= 10 and kgw["calibration_false_positive_rate"] <= 0.01
    holds, numbers = validity.calibration_holds(shifted_calibration.reset_index(), s.fpr)
    assert not holds and numbers["n_held_out"] == 100
