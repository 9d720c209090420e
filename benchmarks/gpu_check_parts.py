"""GPU-check parts for the studies' own entry points: each calls a study's public science functions, on a model
already on the device, at shapes read from the rooms' `gpu` Config defaults (``check.pick(quick, full)``).

Chat GRPO (`assets.chat.rl.grpo`), SFT through `fine_tune` with validation and a checkpoint, the royalties game
(coalition models fine-tuned from deep copies of a base model on the device, pieces, exact Shapley values), the
safety battery asked through `model_responder`, the ICLT (`assets.uncertainty.iclt.iclt`), the SGD-noise LM
sweep (`sweep_source`: online/offline `train_lm`, `heldout_loss`, `next_token_probabilities`, distances), a
scaling grid cell with epoch sampling (`train_cell`) and the parity finite-sample runs (`run_groups`). Full
shapes are cut to a few steps each (the step counts below): every part aims at 5-30 s on one H100/H200.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd
from gpu_check_base import Check, part, sentences, words_tokenizer

CHAT_SHAPE = (384, 6, 6, 1536, 256)  # ChatBaseConfig at gpu: d_model, n_layers, n_heads, d_ff, context_length


def _arithmetic(check: Check, n_train: int, n_validation: int = 0):
    """(problems, chat tokenizer over their words) for the chat parts."""
    from assets.chat.arithmetic import ArithmeticSpec, arithmetic_problems
    from assets.chat.tasks import task_words

    problems = arithmetic_problems(ArithmeticSpec(n_train=n_train, n_validation=n_validation, n_test=0))
    return problems, words_tokenizer(0, [*task_words(problems), *map(str, range(100))], chat=True)


def _train_config(check: Check, steps: int, batch: int, **kw):
    from assets.lm.training import TrainConfig

    return TrainConfig(**{"max_steps": steps, "batch_size": batch, "warmup_steps": 1, "eval_interval": 10**6,
                          "eval_batches": 1, "device": check.device, "bf16": check.cuda, "divergence_factor": None,
                          **kw})


@part("chat.grpo", "GRPO (assets.chat.rl.grpo): 32 prompts x 8 rollouts at budget 256, update with the KL term")
def chat_grpo(check: Check) -> tuple[float, str]:
    from assets.chat.rl import GRPOConfig, grpo
    from assets.chat.tasks import verifiable_reward

    problems, tokenizer = _arithmetic(check, check.pick(8, 256))
    policy = check.model(len(tokenizer), *CHAT_SHAPE)
    cfg = GRPOConfig(steps=check.pick(1, 2), prompts_per_step=check.pick(2, 32), group_size=check.pick(2, 8),
                     budget=check.pick(8, 256), learning_rate=2e-5, device=check.device,
                     bf16=check.cuda)  # ChatRLConfig at gpu
    result = grpo(policy, tokenizer, problems, verifiable_reward, cfg)
    if not np.isfinite(result.curve["loss"]).all():
        raise RuntimeError("a GRPO loss is not finite")
    return float(cfg.steps * cfg.prompts_per_step * cfg.group_size), "rollouts"


@part("chat.fine_tune", "SFT via assets.chat.sft.fine_tune on a model already on the device: validation, checkpoint")
def chat_fine_tune(check: Check) -> tuple[float, str]:
    from assets.chat.sft import fine_tune, sft_data
    from assets.chat.tasks import conversation
    from assets.lm.model import load_checkpoint

    problems, tokenizer = _arithmetic(check, check.pick(8, 1024), n_validation=check.pick(4, 256))
    model = check.model(len(tokenizer), *CHAT_SHAPE)  # as load_registered(record, tracking, device) gives it
    context = model.config.max_position_embeddings
    train, val = (sft_data(tokenizer, [conversation(r) for _, r in problems[problems["split"] == s].iterrows()],
                           context) for s in ("train", "validation"))
    # compiled SFT is timed by chat.sft; this part checks the device placement of fine-tune, validation and save
    cfg = _train_config(check, check.pick(3, 30), check.pick(4, 64), eval_interval=check.pick(2, 15))
    with tempfile.TemporaryDirectory() as tmp:
        fitted = fine_tune(model, tokenizer, train, cfg, f"{tmp}/model", val)
        if not np.isfinite(fitted.final_val_loss):
            raise RuntimeError("the SFT validation loss is not finite")
        load_checkpoint(f"{tmp}/model")
    return float(fitted.tokens_seen / fitted.seconds), "SFT tokens/s"


def _owner_documents(owners: list[str], n_docs: int, n_words: int) -> pd.DataFrame:
    """Documents of a public author and each owner (own words), train and validation splits."""
    rows = []
    for a, author in enumerate(["public", *owners]):
        for i, text in enumerate(sentences(n_docs, n_words, 12, seed=a)):
            rows.append({"author": author, "is_owner": author != "public", "text": " ".join([text] * 8),
                         "split": "validation" if i % 5 == 0 else "train", "duplicate_count": 1})
    return pd.DataFrame(rows)


@part("royalties.game", "royalties: coalition models fine-tuned from deep copies of a base on the device, exact Shapley")
def royalties_game(check: Check) -> tuple[float, str]:
    from assets.royalties.coalitions import CoalitionTraining, fit_coalition_model
    from assets.royalties.game import play_game
    from assets.royalties.pieces import generate_pieces, piece_log_likelihoods
    from assets.royalties.royalty_shares import value_lookup
    from assets.royalties.shapley import exact_shapley, royalty_shares

    owners = [f"owner_{i}" for i in range(1, check.pick(2, 3) + 1)]
    n_words = check.pick(40, 4000)
    tokenizer = words_tokenizer(n_words)
    documents = _owner_documents(owners, check.pick(10, 60), n_words)
    base = check.model(len(tokenizer), 256, 4, 4, 1024, 128)  # RoyaltiesBaseConfig at gpu
    steps = check.pick(2, 30)  # finetune_steps at gpu: 300
    training = CoalitionTraining(train=_train_config(check, steps, check.pick(4, 64), warmup_steps=1))

    def fit_for_seed(seed):
        return lambda coalition: fit_coalition_model(base, tokenizer, documents, coalition, training)

    def make_pieces(fitted):
        prompts = {o: [f"w{i}" for i in range(check.pick(2, 16))] for o in owners}
        return generate_pieces(fitted.model, tokenizer, prompts, check.pick(8, 60), seed=0)

    game = play_game(owners, fit_for_seed, [0], make_pieces,
                     lambda fitted, texts: piece_log_likelihoods(fitted.model, tokenizer, texts), estimator="exact")
    value, _ = value_lookup(game.values, game.pieces["piece_id"].tolist())
    shares = royalty_shares(exact_shapley(owners, value))
    if not np.isfinite(shares).all():
        raise RuntimeError("a royalty share is not finite")
    return float((2 ** len(owners) - 1) * steps), "coalition steps"


@part("safety.responders", "the safety battery asked through model_responder (budget 'medium', batch 256), graded")
def safety_responders(check: Check) -> tuple[float, str]:
    import json

    from assets.corpora.facts_world import FactsWorldSpec, build_world, generate_documents
    from assets.safety.battery import SuiteSpec, build_suite
    from assets.safety.policy import REFUSAL
    from assets.safety.responders import model_responder, run_model

    world = build_world(FactsWorldSpec(seed=5, n_people=60, n_cities=6, n_organisations=8, n_professions=5,
                                       n_owners=2, n_train_documents=0, n_validation_documents=0,
                                       n_test_documents=0, n_protected=4, protected_duplicates=(1, 4)))
    items = build_suite(world, SuiteSpec(seed=1, people_pool=20, n_per_template=check.pick(1, 8)),
                        documents=generate_documents(world))
    words = sorted({w for m in items["messages"] for x in json.loads(m) for w in x["content"].split()})
    tokenizer = words_tokenizer(0, words + REFUSAL.split(), chat=True)
    model = check.model(len(tokenizer), *CHAT_SHAPE)
    respond = model_responder(model, tokenizer, budget=check.pick(4, "medium"), max_answer_tokens=check.pick(4, 32),
                              batch_size=check.pick(16, 256))  # ResultsConfig at gpu
    results = run_model(respond, items, model="check", model_uri="", batch_size=check.pick(16, 256))
    if results.empty or "outcome" not in results:
        raise RuntimeError("the battery returned no graded rows")
    return float(len(results)), "items answered"


@part("uncertainty.iclt", "ICLT (assets.uncertainty.iclt): top-10 candidates, greedy continuations, in-context passes")
def uncertainty_iclt(check: Check) -> tuple[float, str]:
    from assets.uncertainty.iclt import IcltSettings, iclt, sentence_end_ids

    n_words = check.pick(40, 4000)
    tokenizer = words_tokenizer(n_words)
    model = check.model(len(tokenizer), 256, 4, 4, 1024, 256)  # the facts family's small model at gpu
    text = " ".join(sentences(check.pick(20, 2500), n_words, 12))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    n, length = check.pick(8, 256), check.pick(12, 100)
    prompts = [ids[i * length:(i + 1) * length] for i in range(n)]
    settings = IcltSettings(top_k=check.pick(4, 10), max_continuation=check.pick(4, 16), batch_size=check.pick(8, 512))
    scores = iclt(model, prompts, bos_id=tokenizer.bos_token_id, eos_id=tokenizer.eos_token_id,
                  pad_id=tokenizer.pad_token_id, end_ids=sentence_end_ids(tokenizer, ["."]),
                  context_length=model.config.max_position_embeddings, settings=settings)
    if not np.isfinite(scores["mi"]).all():
        raise RuntimeError("an ICLT mutual information is not finite")
    return float(n * settings.top_k), "candidates"


@part("sgd_noise.lm_sweep", "SGD-noise LM sweep (assets.sgd_noise.lm_sweep.sweep_source): online/offline, branch, distances")
def sgd_noise_lm_sweep(check: Check) -> tuple[float, str]:
    from assets.sgd_noise.language import CorpusSource
    from assets.sgd_noise.lm_sweep import lm_builder, sweep_source, sweep_specs

    size = check.size(256, 4, 4, 1024, 128)  # LMSweepConfig at gpu
    vocab, steps = check.pick(64, 16384), check.pick(6, 40)
    rng = np.random.default_rng(0)
    documents = [rng.integers(3, vocab, check.pick(300, 4000)).astype(np.int32) for _ in range(check.pick(40, 200))]
    source = CorpusSource(documents, rng.integers(3, vocab, check.pick(2000, 70_000)).astype(np.int32),
                          offline_tokens=check.pick(2000, 200_000))
    batches = check.pick([2, 4], [16, 64])
    specs = sweep_specs(("online", "offline"), batches, [1e-3], [0, 1], steps // 2, cut_batch_factor=4)
    runs, _, distances = sweep_source(source, lm_builder(size, vocab, check.device), specs, steps,
                                      [steps // 4, steps // 2, 3 * steps // 4], warmup_steps=2,
                                      context_length=size.context_length, eval_windows=check.pick(8, 512),
                                      distance_windows=4, loss_levels=2, device=check.device)
    if not np.isfinite(runs["final_eval_loss"]).all():
        raise RuntimeError("an LM sweep run has a non-finite held-out loss")
    return float(len(runs) * steps), "run-steps"


@part("scaling.epochs", "a scaling grid cell (assets.scaling.grid.train_cell), 20m at U_D=2^17 x 4 epochs, sampling='epochs'")
def scaling_epochs(check: Check) -> tuple[float, str]:
    from assets.scaling.grid import GridCell, RunSettings, token_chunks, train_cell

    tokenizer = words_tokenizer(check.pick(40, 16000))
    vocab = len(tokenizer)
    rng = np.random.default_rng(0)
    chunks = token_chunks(rng.integers(3, vocab, check.pick(4096, 2**18)), rng.integers(3, vocab, check.pick(2048, 2**18)),
                          check.pick(512, 4096), seed=0)
    cell = GridCell(check.size(384, 6, 6, 1536, 256), check.pick(1024, 2**17), 4)
    settings = RunSettings(batch_size=check.pick(4, 32), learning_rate=1e-3, eval_windows=check.pick(8, 512),
                           evaluations=check.pick(1, 4), device=check.device, bf16=check.cuda, compile=False,
                           sampling="epochs")  # ScalingRunConfig at gpu
    result = train_cell(cell, chunks, tokenizer, settings)
    if not np.isfinite(result.held_out_loss):
        raise RuntimeError("the grid cell's held-out loss is not finite")
    return float(result.tokens / result.seconds), "train tokens/s"


@part("parity.finite_sample", "parity finite-sample runs (assets.parity.sweep.run_groups): n=20 k=3 w=1000, 500 samples, wd 0.01/0")
def parity_finite_sample(check: Check) -> tuple[float, str]:
    from assets.parity.sweep import finite_sample_plan, run_groups

    steps = check.pick(20, 1000)
    groups, spec = finite_sample_plan({  # ParityFiniteSampleConfig at gpu, cut to `steps`
        "n": check.pick(10, 20), "k": check.pick(2, 3), "width": check.pick(16, 1000),
        "train_set_size": check.pick(64, 500), "weight_decay": [0.01, 0.0], "batch_size": 32, "learning_rate": 0.1,
        "loss": "hinge", "seeds": check.pick(2, 32), "max_steps": steps, "eval_every": 10,
        "eval_size": check.pick(256, 8192), "accuracy_target": 0.99})
    result = run_groups(groups, spec, device=check.device)
    if result.runs.empty:
        raise RuntimeError("the finite-sample runs returned no rows")
    return float(sum(len(g.seeds) for g in groups) * steps), "network-steps"
