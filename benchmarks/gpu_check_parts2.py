"""GPU-check parts for the last studies' own code paths, each on a model already on the device, at shapes read
from the rooms' `gpu` Config defaults (``check.pick(quick, full)``), cut to a few steps each so that every part
aims at 5-30 s on one H100/H200.

- ``robustness.defender``: the defender's data path (`format_conversations` in the study's conversation shape,
  `fitting`, `sft_data`), its SFT through `fine_tune` as `robustness_defender` trains it, then the many-shot
  attack asked at two compute levels through `assets.robustness.grid.run_attacks` and `model_defender`.
- ``alignment.sft_data``: the spec-citing data generation with the policy in context (`generate_candidates`),
  the policy-aware judge's filter (`judge_candidates`, `keep_best`), the policy stripped (`sft_table`,
  `fit_context`) and the deliberative method's SFT through `fine_tune`, as `alignment_sft_models` trains it.
- ``alignment.judge_rl``: GRPO with the policy-aware judge's reward on the final answer (`judge_reward`,
  `judge_rows`), a frozen reference on the device, as `train_deliberative_rl` runs it.
- ``watermark.permutation``: the EXP and EXP-edit permutation tests (`Scheme.detect(..., runs=99)`): the null
  keys drawn on the CPU, their costs copied over, the alignment's dynamic programme on the device. Its rate
  (null alignments per second) times the gpu-profile estimate's permutation-test jobs.
"""

from __future__ import annotations

import functools
import json
import tempfile

import numpy as np
from gpu_check_base import Check, part, words_tokenizer

CHAT_SHAPE = (384, 6, 6, 1536, 256)  # ChatBaseConfig at gpu: d_model, n_layers, n_heads, d_ff, context_length
QUICK_CONTEXT = 256  # quick shapes keep the chat context: the study's conversations do not fit in 64 positions


def _chat_model(check: Check, vocab: int, seed: int = 0):
    """A chat-shaped model on the device (as `load_registered` hands it over); at quick shapes one small layer
    with the chat context, since the defender's and the alignment data's conversations need its positions."""
    from assets.lm.model import ModelSize, build_model

    if not check.quick:
        return check.model(vocab, *CHAT_SHAPE, seed=seed)
    return build_model(ModelSize("check", 32, 1, 2, 64, QUICK_CONTEXT), vocab, seed=seed).to(check.device).eval()


def _train_config(check: Check, steps: int, batch: int):
    """The SFT settings the rooms derive from their Optimiser fields, cut to ``steps``; compiled SFT is timed by
    chat.sft, so these parts check the data path and device placement without compile warm-up."""
    from assets.lm.training import TrainConfig

    return TrainConfig(max_steps=steps, batch_size=batch, warmup_steps=1, eval_interval=steps, eval_batches=1,
                       device=check.device, bf16=check.cuda, divergence_factor=None, seed=0)


# --- robustness: the defender's data, its SFT, one text attack at two compute levels ---------------------------------
def _robustness_tasks(check: Check):
    """The three task tables the study attacks (arithmetic, multi-hop facts, the instruction tasks) over a small
    facts world, and a chat tokenizer over their words, the attack templates and the developer messages."""
    from assets.chat.tasks import (
        ArithmeticSpec,
        FactsQuestionSpec,
        InstructionSpec,
        arithmetic_problems,
        facts_questions,
        instruction_problems,
        task_words,
    )
    from assets.corpora.facts_world import FactsWorldSpec, build_world
    from assets.robustness.attacks import END_WORD, INJECTION, THINK_LESS
    from assets.robustness.items import AMBIGUOUS_SYSTEM, UNAMBIGUOUS_SYSTEM

    world = build_world(FactsWorldSpec(seed=3, n_people=check.pick(30, 200), n_cities=5, n_organisations=6,
                                       n_professions=4, n_owners=1, n_train_documents=0, n_validation_documents=0,
                                       n_test_documents=0, n_protected=0))
    n = check.pick((40, 8, 20), (600, 100, 100))  # train, validation, test problems per task: enough for 30 x 64
    arithmetic = arithmetic_problems(ArithmeticSpec(seed=0, chain_ops=(1, 3), sum_digits=(1, 2), n_train=n[0],
                                                    n_validation=n[1], n_test=n[2]))
    facts = facts_questions(world, FactsQuestionSpec(seed=0, n_train=n[0], n_validation=n[1], n_test=n[2]))
    frames = {"arithmetic": arithmetic, "facts": facts, "ambiguous": instruction_problems(facts, InstructionSpec())}
    extra = [str(i) for i in range(100)] + " ".join([*INJECTION, *END_WORD, *THINK_LESS, UNAMBIGUOUS_SYSTEM,
                                                     AMBIGUOUS_SYSTEM]).split()
    return frames, words_tokenizer(0, [*task_words(*frames.values()), *extra], chat=True)


@part("robustness.defender", "robustness: the defender's clean format tuning (format_conversations, fitting, SFT "
      "via fine_tune), then many-shot asked at compute 16 and 128 through run_attacks and model_defender")
def robustness_defender(check: Check) -> tuple[float, str]:
    from assets.chat.sft import fine_tune, sft_data
    from assets.robustness.defender import model_defender
    from assets.robustness.format_tuning import fitting, format_conversations
    from assets.robustness.grid import GridSpec, run_attacks
    from assets.robustness.items import attack_items

    frames, tokenizer = _robustness_tasks(check)
    model = _chat_model(check, len(tokenizer))
    length = model.config.max_position_embeddings
    train, val = (sft_data(tokenizer, fitting(tokenizer, format_conversations(frames, split, benign_share=0.5,
                                                                              seed=0), length), length)
                  for split in ("train", "validation"))  # DefenderConfig: benign_share 0.5, original_share 0
    cfg = _train_config(check, check.pick(3, 30), check.pick(4, 64))  # DefenderConfig at gpu: batch 64
    with tempfile.TemporaryDirectory() as tmp:
        fitted = fine_tune(model, tokenizer, train, cfg, f"{tmp}/model", val)
    if not np.isfinite(fitted.final_val_loss):
        raise RuntimeError("the defender's validation loss is not finite")
    model.eval()
    items = attack_items(frames, check.pick(2, 32), check.pick(1, 4), seed=0)  # ItemsConfig at gpu: max_shots 4
    # many-shot only (the other attacks at budget 0), at two of RunsConfig's gpu compute levels [0, 16, 64, 128]
    levels = check.pick((0, 4), (16, 128))
    spec = GridSpec(compute_levels=levels, many_shot=(0, check.pick(1, 4)), injection=(0,),
                    soft_tokens=(0,), adaptive=(0,), think_less=(0,))
    defender = model_defender(model, tokenizer, max_answer_tokens=6, batch_size=check.pick(8, 64))  # RunsConfig
    runs, _ = run_attacks(defender, items, spec, name="check")
    if set(runs["compute_level"]) != set(levels) or not (runs["attack"] == "many_shot").any():
        raise RuntimeError("run_attacks did not ask many-shot at both compute levels")
    if not runs["answered"].any():
        raise RuntimeError("no conversation left room for the reasoning budget")
    return float(runs["answered"].sum()), "responses"


# --- alignment: the spec-citing data, the judge's filter, SFT; GRPO on the judge's reward ----------------------------
@functools.lru_cache(maxsize=2)
def _alignment_data(check: Check):
    """(battery items, judged candidates, the SFT table with the policy stripped, chat tokenizer): the data
    path of `alignment_candidates` and `alignment_sft_data`, built once per check (the second part reuses it)."""
    from assets.alignment.generator import GeneratorSpec, generate_candidates, train_items
    from assets.alignment.policy_judge import judge_candidates, keep_best
    from assets.alignment.sft_data import sft_table
    from assets.corpora.facts_world import FactsWorldSpec, build_world, vocabulary
    from assets.safety.battery import SuiteSpec, build_suite
    from assets.safety.items import vocabulary_table
    from assets.safety.policy import ABSTENTION, REFUSAL, UNKNOWN, render_policy

    world = build_world(FactsWorldSpec(seed=3, n_people=check.pick(40, 200), n_cities=5, n_organisations=6,
                                       n_professions=4, n_owners=2, n_train_documents=0, n_validation_documents=0,
                                       n_test_documents=0, n_protected=0))
    suite = build_suite(world, SuiteSpec(seed=2, people_pool=check.pick(16, None), n_per_template=check.pick(1, 16),
                                         evaluations=("refusal", "jailbreak")))  # SuiteConfig at gpu
    items = train_items(suite)
    judged = keep_best(judge_candidates(generate_candidates(items, GeneratorSpec(seed=0, n_candidates=check.pick(
        2, 8))), items))  # GenerationConfig at gpu: 8 candidates per prompt
    words = set(vocabulary_table(suite, render_policy(), (REFUSAL, ABSTENTION, UNKNOWN))["word"])
    words |= set(vocabulary(world)) | {str(i) for i in range(100)}
    tokenizer = words_tokenizer(0, sorted(words), chat=True)
    return suite, judged, sft_table(judged, suite), tokenizer


@part("alignment.sft_data", "alignment: spec-citing candidates written with the policy in context, judged and "
      "filtered, the policy stripped, the deliberative SFT via fine_tune")
def alignment_sft_data(check: Check) -> tuple[float, str]:
    from assets.alignment.sft_data import conversations, fit_context, prompts_with_policy
    from assets.chat.sft import fine_tune, sft_data

    _, judged, table, tokenizer = _alignment_data(check)
    if not judged["kept"].any() or prompts_with_policy(table):
        raise RuntimeError("the filter kept nothing, or a prompt still holds the policy")
    model = _chat_model(check, len(tokenizer))
    length = model.config.max_position_embeddings
    table, _ = fit_context(table, tokenizer, length)
    data = sft_data(tokenizer, conversations(table, "deliberative"), length)
    cfg = _train_config(check, check.pick(3, 30), check.pick(4, 64))  # AlignmentSFTConfig at gpu: batch 64
    with tempfile.TemporaryDirectory() as tmp:
        fitted = fine_tune(model, tokenizer, data, cfg, f"{tmp}/model")
    if not np.isfinite(fitted.curve["train_loss"].dropna()).all():
        raise RuntimeError("the deliberative SFT loss is not finite")
    return float(fitted.tokens_seen / fitted.seconds), "SFT tokens/s"


@part("alignment.judge_rl", "alignment: GRPO rewarded by the policy-aware judge on the final answer (judge_reward), "
      "32 prompts x 8 rollouts at budget 64, frozen reference on the device")
def alignment_judge_rl(check: Check) -> tuple[float, str]:
    from assets.alignment.policy_judge import judge_reward
    from assets.alignment.sft_data import judge_rows
    from assets.chat.rl import GRPOConfig, grpo

    _, _, table, tokenizer = _alignment_data(check)
    policy = _chat_model(check, len(tokenizer))  # the deliberative SFT model, loaded twice as the room does
    reference = _chat_model(check, len(tokenizer))
    cfg = GRPOConfig(steps=check.pick(1, 2), prompts_per_step=check.pick(2, 32), group_size=check.pick(2, 8),
                     budget=check.pick(8, 64), max_answer_tokens=10, learning_rate=2e-5, beta=0.04,
                     device=check.device, bf16=check.cuda)  # AlignmentRLConfig at gpu, cut to `steps`
    result = grpo(policy, tokenizer, judge_rows(table), judge_reward(), cfg, reference=reference)
    if not np.isfinite(result.curve["loss"]).all() or not result.curve["mean_reward"].between(0, 1).all():
        raise RuntimeError("a GRPO loss is not finite or a judge reward left [0, 1]")
    return float(cfg.steps * cfg.prompts_per_step * cfg.group_size), "rollouts"


# --- watermark: the EXP / EXP-edit permutation tests -----------------------------------------------------------------
@part("watermark.permutation", "watermark: EXP and EXP-edit permutation tests (99 null keys per text, key length "
      "256, 200 tokens): null uniforms on the CPU, the alignment on the device")
def watermark_permutation(check: Check) -> tuple[float, str]:
    import torch

    from assets.watermark.schemes import build_schemes

    vocab, runs = check.pick(64, 16384), check.pick(3, 99)  # WatermarkGenerationConfig at gpu: runs 99
    schemes = build_schemes(vocab, key_length=check.pick(16, 256), device=check.device)  # exp_key_length at gpu
    texts = torch.randint(vocab, (check.pick(4, 48), check.pick(12, 200)), generator=torch.Generator().manual_seed(0))
    exp = [scheme for scheme in schemes.values() if scheme.kind in ("exp", "exp_edit")]
    for scheme in exp:
        p = scheme.detect(texts, runs=runs, seed=0)["p_value"]
        if not ((p > 0) & (p <= 1)).all():
            raise RuntimeError(f"{scheme.name}: a permutation p-value outside (0, 1]: {json.dumps(p.tolist())}")
    return float(len(exp) * len(texts) * runs), "null alignments"
