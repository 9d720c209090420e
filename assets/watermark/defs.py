"""Dagster side of the watermark study (Zhang, Edelman, Francati, Venturi, Ateniese & Barak 2023, "Watermarks
in the Sand"): three watermarks, their detectors, and the random-walk attack that removes them, on the code
family (a watermark needs entropy to hide in). Models: ``lm_code_small`` generates and re-samples spans (the
"resample" perturbation oracle); ``watermark_infiller``, trained here in fill-in-the-middle form, rewrites a
span given prefix and suffix (the "infill" oracle, as the paper's T5 in-filler); ``lm_code_large`` is the
quality oracle; a byte n-gram model of the corpus is the independent judge. ``watermark_texts`` /
``watermark_calibration``: KGW (γ=0.25, δ=2 and the attack paper's γ=0.5, δ=4), Unigram and EXP texts, every
detector calibrated at 1% FPR; ``watermark_walk`` / ``watermark_attack`` / ``watermark_summary``: the attack;
``watermark/findings``: the paper's claims side by side.
"""

import time
from functools import partial

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.lm.config import ModelShape, train_config
from assets.lm.family import corpus_texts
from assets.lm.registration import (
    DatasetInput,
    Display,
    load_registered,
    load_tokenizer_of,
    train_and_register,
)
from assets.lm.threads import torch_threads
from assets.watermark import plots, study, validity
from assets.watermark.attack import WalkSettings
from assets.watermark.findings import CHECKS, build_findings, scale_note
from assets.watermark.infill import fim_oracle, fit_infiller
from assets.watermark.ngram import ByteNGram
from assets.watermark.schemes import build_schemes
from resources.compute import Compute
from resources.config import StudyConfig
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import current_profile, pick, step_threads
from resources.stages import stage
from resources.subsetting import yields_selected
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "watermark"


def _figure(context: dg.AssetExecutionContext, warehouse: WarehousePaths, fig, name: str):
    return figure_metadata(fig, f"{GROUP}/{name}", warehouse.root, context.run.run_id)


def _check(name: str, asset: str) -> dg.AssetCheckSpec:
    """The data check ``name`` of ``asset``, described by what it holds the table to (validity.DESCRIPTIONS)."""
    return dg.AssetCheckSpec(name, asset=asset, description=validity.DESCRIPTIONS[name])


class WatermarkGenerationConfig(StudyConfig):
    """Prompts, watermarked and unwatermarked generations, and the detectors' calibration."""

    prompt_tokens: int = Field(default=pick(tiny=8, demo=16, gpu=32), description="tokens per prompt: a window "
                               "of a code text starting at a random line")
    response_tokens: int = Field(default=pick(tiny=24, demo=40, gpu=200), description="tokens per generated text")
    n_texts: int = Field(default=pick(tiny=6, demo=24, gpu=200), description="watermarked texts per scheme")
    n_null: int = Field(default=pick(tiny=200, demo=400, gpu=1000),
                        description="unwatermarked texts: a seeded half calibrates each detector's 1% FPR threshold, "
                                    "the other half is held out to test it (calibration_holds)")
    fpr: float = Field(default=0.01, description="false-positive rate: detection threshold = the (1 - fpr) "
                       "quantile of the calibration half's unwatermarked scores")
    z_threshold: float = Field(default=4.0, description="KGW's own z threshold (reported beside the calibrated one)")
    kgw_gamma: float = Field(default=0.25, description="KGW γ: share of the vocabulary in each green list "
                             "(seeded by the previous token)")
    kgw_delta: float = Field(default=2.0, description="KGW δ: bias added to the green tokens' logits")
    strong_gamma: float = Field(default=0.5, description="KGW γ as the attack paper ran it")
    strong_delta: float = Field(default=4.0, description="KGW δ as the attack paper ran it")
    unique: bool = Field(default=False, description="score distinct (previous, token) pairs / distinct tokens only")
    unigram_gamma: float = Field(default=0.5, description="Unigram γ: share of the vocabulary in its one fixed "
                                 "green list")
    unigram_delta: float = Field(default=2.0, description="Unigram δ: bias added to the green tokens' logits")
    unigram_key: int = Field(default=0, description="key that seeds Unigram's green list")
    exp_key: int = Field(default=42, description="key that seeds EXP's key ξ (shared by EXP-edit)")
    exp_key_length: int = Field(default=pick(tiny=32, demo=256, gpu=256),
                                description="n: rows of the EXP key ξ (Kuditipudi et al. use 256; a short key "
                                            "makes texts share key rows, so their qualities correlate)")
    edit_gamma: float = Field(default=0.4, description="EXP-edit insertion/deletion cost γ")
    permutation_runs: int = Field(default=pick(tiny=9, demo=29, gpu=99),
                                  description="fresh keys in EXP / EXP-edit's permutation test")
    batch_size: int = pick(tiny=32, demo=64, gpu=256)
    seed: int = 0
    cpu_threads: int = Field(default=step_threads(), description="torch CPU threads (0: torch's default)")


@dg.multi_asset(
    outs={name: dg.AssetOut(is_required=False, group_name=GROUP, code_version="2", tags=stage("evaluation"),
                            description=validity.TABLES[name]) for name in ("watermark_texts", "watermark_calibration")},
    ins={"generator": dg.AssetIn("lm_code_small"), "oracle": dg.AssetIn("lm_code_large"),
         "documents": dg.AssetIn("code_corpus")},
    check_specs=[_check("texts_valid", "watermark_texts"), _check("calibration_holds", "watermark_calibration")],
    pool="gpu", can_subset=True)
@yields_selected
def watermark_generation(context: dg.AssetExecutionContext, config: WatermarkGenerationConfig, tracking: Tracking,
                         compute: Compute, generator: dict, oracle: dict, documents: pd.DataFrame):
    """Generate KGW-, Unigram- and EXP-watermarked continuations of code prompts with the small code model,
    unwatermarked ones for calibration, and score all of them with every detector."""
    device, started = compute.torch_device(), time.time()
    compute.seed_everything(config.seed)
    _, val = corpus_texts("code", documents)
    with torch_threads(config.cpu_threads, device):
        model, tokenizer = load_registered(generator, tracking, device)
        oracle_model, _ = load_registered(oracle, tracking, device)
        schemes = build_schemes(
            int(model.config.vocab_size), kgw_gamma=config.kgw_gamma, kgw_delta=config.kgw_delta,
            attack_paper_gamma=config.strong_gamma, attack_paper_delta=config.strong_delta, unique=config.unique,
            unigram_gamma=config.unigram_gamma, unigram_delta=config.unigram_delta, unigram_key=config.unigram_key,
            exp_key=config.exp_key, key_length=config.exp_key_length, edit_gamma=config.edit_gamma, device=device)
        settings = study.StudySettings.of(config.model_dump())
        table, calibration = study.generate_and_detect(model, oracle_model, tokenizer, val, schemes, settings,
                                                       log=context.log.info)
    context.log.info(f"generation and detection took {time.time() - started:.1f}s")
    lineage = {"generator_uri": generator["model_uri"], "oracle_uri": oracle["model_uri"]}
    table, calibration = table.assign(**lineage), calibration.assign(**lineage)
    shown = calibration[list(study.CALIBRATION_SHOWN)]
    yield dg.Output(table, output_name="watermark_texts", metadata={"rows": len(table), **lineage})
    yield dg.Output(calibration, output_name="watermark_calibration",
                    metadata={"calibration": markdown_table(shown), "seconds": round(time.time() - started, 1)})
    yield gx_check(*validity.texts(expectations(), table, list(schemes)), name="watermark_texts",
                   asset_key=dg.AssetKey("watermark_texts"), check_name="texts_valid")
    holds, numbers = validity.calibration_holds(calibration, config.fpr)
    yield dg.AssetCheckResult(asset_key="watermark_calibration", check_name="calibration_holds", passed=holds,
                              metadata=numbers)


class WatermarkInfillerConfig(ModelShape, StudyConfig):
    """The FIM in-filler: a family model trained on PSM- (or SPM-) rearranged windows of the code corpus. Demo
    settings: the best held-out middle loss of the search recorded in `assets.watermark.infill`; none beat the
    generator within the demo's budget, so the demo attack re-samples (``WatermarkAttackConfig.perturbation``)."""

    d_model: int = pick(tiny=32, demo=64, gpu=384)
    n_layers: int = pick(tiny=1, demo=2, gpu=6)
    n_heads: int = pick(tiny=2, demo=4, gpu=6)
    d_ff: int = pick(tiny=64, demo=192, gpu=1536)
    context_length: int = pick(tiny=64, demo=128, gpu=512)
    window: int = Field(default=pick(tiny=32, demo=56, gpu=232),
                        description="tokens per training window (prefix + middle + suffix): the generation's "
                                    "prompt + response length")
    max_span: int = Field(default=pick(tiny=3, demo=4, gpu=6),
                          description="middles are 1..max_span tokens (the attack's span and its halvings)")
    max_steps: int = pick(tiny=30, demo=300, gpu=5000)
    batch_size: int = pick(tiny=8, demo=32, gpu=64)
    learning_rate: float = pick(tiny=3e-3, demo=5e-3, gpu=6e-4)
    min_lr: float = pick(tiny=3e-4, demo=5e-4, gpu=6e-5)
    warmup_steps: int = pick(tiny=5, demo=20, gpu=300)
    n_val: int = Field(default=pick(tiny=64, demo=256, gpu=2000), description="held-out examples scored on middles")
    context_weight: float = Field(default=pick(tiny=1.0, demo=0.1, gpu=1.0), description="loss weight of "
                                  "prefix/suffix tokens against the middle's 1 (0: middle only, as a T5 span in-filler)")
    layout: str = Field(default=pick(tiny="psm", demo="spm", gpu="psm"), description='"psm": <fim_prefix> prefix <fim_suffix> suffix <fim_middle> '
                                                   'middle; "spm": the suffix first, so the middle continues the prefix')
    init: str = Field(default=pick(tiny="scratch", demo="generator", gpu="scratch"), description='"scratch": fresh weights; "generator": start from lm_code_small '
                                                      "(same shape needed) and fine-tune it on FIM examples")
    seed: int = 0
    cpu_threads: int = step_threads()
    aliases: list[str] = Field(default=["current"], description="MLflow registry aliases set on the new version")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("training"), pool="gpu",
          ins={"documents": dg.AssetIn("code_corpus"), "generator": dg.AssetIn("lm_code_small")})
def watermark_infiller(context: dg.AssetExecutionContext, config: WatermarkInfillerConfig, tracking: Tracking,
                       compute: Compute, warehouse: WarehousePaths, documents: pd.DataFrame,
                       generator: dict) -> dg.Output:
    """Train the attack's masked-span in-filler: a model of the code family on the corpus's training documents
    rearranged as <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle (sentinels appended after the code
    vocabulary, on a copy of its tokenizer), registered in MLflow as wm-infiller; with its held-out loss on the
    middles beside the generator's (prefix only). The tokenizer is the generator's (its record's
    ``tokenizer_uri``: the code tokenizer, or an imported checkpoint's own)."""
    device = compute.torch_device()
    compute.seed_everything(config.seed)
    tokenizer = load_tokenizer_of(generator, tracking)
    train_texts, val_texts = corpus_texts("code", documents)
    datasets = [DatasetInput.of_texts(f"wm-infiller-{split}", texts, split, "code_corpus")
                for split, texts in (("train", train_texts), ("validation", val_texts))]
    cfg = train_config(config, compute, eval_interval=config.max_steps, log_interval=max(1, config.max_steps // 10))
    lineage = {"tokenizer_uri": generator["tokenizer_uri"], "generator_uri": generator["model_uri"]}
    with torch_threads(config.cpu_threads, device):
        gen_model, _ = load_registered(generator, tracking, device)
        fitted, record, metadata = train_and_register(
            context, tracking, compute, lambda workdir, on_log: fit_infiller(
                config.model_size("infiller"), tokenizer, train_texts, val_texts, cfg, window=config.window,
                max_span=config.max_span, n_val=config.n_val, generator=gen_model, init=config.init,
                context_weight=config.context_weight, layout=config.layout, out_dir=workdir / "model", on_log=on_log),
            run_name="watermark_infiller", params={**config.model_dump(), **lineage}, steps=config.max_steps,
            registered="wm-infiller", aliases=config.aliases, plot_name="infiller_loss_curve", datasets=datasets,
            display=Display(dg.MetadataValue.url, partial(_figure, context, warehouse)))
    context.log.info(f"in-filler: middle loss {fitted.middle_nll:.3f} nats vs the generator's "
                     f"{fitted.generator_middle_nll:.3f} (prefix only), {fitted.seconds:.1f}s")
    record |= {"window": config.window, "max_span": config.max_span, "init": config.init,
               "context_weight": config.context_weight, **lineage}
    return dg.Output(record, metadata=metadata)


class WatermarkAttackConfig(StudyConfig):
    """The random walk: span rewriting by the perturbation oracle, acceptance by the larger model's quality.
    The paper's protocol: every text walks the fixed budget of ``steps``; detection is measured afterwards (and
    at T/4, T/2, 3T/4 for the curves). The demo re-samples (its in-filler does not beat the generator; both
    oracles compared in `assets.watermark.attack`); the tiny and gpu profiles walk with the in-filler, as the
    paper did."""

    perturbation: str = Field(default=pick(tiny="infill", demo="resample", gpu="infill"),
                              description='"resample": the generator re-samples the span given the text before '
                                          'it; "infill": the FIM in-filler rewrites it given prefix and suffix')
    steps: int = Field(default=pick(tiny=8, demo=60, gpu=200), description="T: the fixed step budget per text")
    earlier_budget: int | None = Field(default=pick(tiny=None, demo=40, gpu=None),
                                       description="a shorter budget whose success is reported beside T's (demo: the "
                                                   "40 steps it walked before being lengthened after seeing results)")
    span: int = Field(default=pick(tiny=3, demo=4, gpu=6), description="tokens re-sampled per step")
    min_span: int = Field(default=1, description="backing off never halves the span below this (tokens)")
    backoff_after: int = Field(default=pick(tiny=3, demo=5, gpu=10),
                               description="consecutive rejections before the span halves")
    quality_tolerance: float = Field(default=0.0, description="accept if quality >= original - this (nats/token)")
    detector_in_the_loop: bool = Field(default=False, description="NOT the paper's attack: stop a text's walk as "
                                       "soon as the key-holder's detector no longer flags it")
    temperature: float = 1.0
    judge_order: int = Field(default=5, description="bytes of context + 1 in the independent n-gram judge")
    judge_max_bytes: int | None = Field(default=pick(tiny=None, demo=2_000_000, gpu=None),
                                        description="the judge is fit on the first this many bytes of the code "
                                                    "corpus (None: all)")
    seed: int = 0
    cpu_threads: int = step_threads()


@dg.multi_asset(
    outs={name: dg.AssetOut(is_required=False, group_name=GROUP, code_version="2", tags=stage("evaluation"),
                            description=validity.TABLES[name])
          for name in ("watermark_walk", "watermark_attack", "watermark_summary")},
    ins={"texts": dg.AssetIn("watermark_texts"), "calibration": dg.AssetIn("watermark_calibration"),
         "generator": dg.AssetIn("lm_code_small"), "oracle": dg.AssetIn("lm_code_large"),
         "documents": dg.AssetIn("code_corpus"), "infiller": dg.AssetIn("watermark_infiller")},
    check_specs=[_check("attack_valid", "watermark_attack")],
    pool="gpu", can_subset=True)
@yields_selected
def watermark_attack(context: dg.AssetExecutionContext, config: WatermarkAttackConfig, tracking: Tracking,
                     compute: Compute, warehouse: WarehousePaths, texts: pd.DataFrame, calibration: pd.DataFrame,
                     generator: dict, oracle: dict, documents: pd.DataFrame, infiller: dict):
    """Run the random-walk attack on every scheme's watermarked texts and measure what it costs in quality."""
    device, started = compute.torch_device(), time.time()
    compute.seed_everything(config.seed)
    inputs = study.attack_inputs(texts, calibration, config.seed, device)
    judge = ByteNGram(config.judge_order).fit(corpus_texts("code", documents)[0], max_bytes=config.judge_max_bytes)
    with torch_threads(config.cpu_threads, device):
        model, tokenizer = load_registered(generator, tracking, device)
        null_bpb, same_prompt_bpb = study.unwatermarked_quality(judge, tokenizer, inputs.null_texts,
                                                                inputs.settings.n_texts)
        oracle_model, _ = load_registered(oracle, tracking, device)
        fim = fim_oracle(*load_registered(infiller, tracking, device), infiller) \
            if config.perturbation == "infill" else None
        walk, results = study.run_attack(model, oracle_model, judge, tokenizer, inputs.gen, inputs.schemes,
                                         calibration, inputs.null_scores, inputs.settings,
                                         WalkSettings.of(config.model_dump()), log=context.log.info, infiller=fim)
    summary = study.summarise(results, calibration, null_bpb, same_prompt_bpb, walk, config.steps,
                              config.earlier_budget).assign(
        infiller_uri=infiller["model_uri"], infiller_middle_nll=infiller["middle_nll"],
        generator_middle_nll=infiller["generator_middle_nll"])
    context.log.info(f"attack took {time.time() - started:.1f}s")
    yield dg.Output(walk, output_name="watermark_walk", metadata={
        "rows": len(walk),
        "detection_vs_steps": _figure(context, warehouse, plots.detection_vs_steps(walk, config.steps),
                                      "detection_vs_steps"),
        "score_trajectories": _figure(context, warehouse, plots.score_trajectories(walk, calibration, config.steps),
                                      "score_trajectories")})
    yield dg.Output(results, output_name="watermark_attack", metadata={"rows": len(results), "quality": _figure(
        context, warehouse, plots.quality_before_after(results, null_bpb), "quality_before_after")})
    yield dg.Output(summary, output_name="watermark_summary", metadata={
        "summary": markdown_table(summary), "seconds": round(time.time() - started, 1),
        "judge_bits_per_byte_unwatermarked": null_bpb})
    yield gx_check(*validity.attack(expectations(), results, config.steps), name="watermark_attack",
                   asset_key=dg.AssetKey("watermark_attack"), check_name="attack_valid")


FINDINGS_KEY = dg.AssetKey([GROUP, "findings"])


@dg.asset(key_prefix=[GROUP], name="findings", group_name=GROUP, code_version="2", tags=stage("evaluation"),
          ins={"summary": dg.AssetIn("watermark_summary"), "calibration": dg.AssetIn("watermark_calibration")},
          check_specs=findings_check_specs(FINDINGS_KEY, {k: text for k, (_, text) in CHECKS.items()}))
def watermark_findings(summary: pd.DataFrame, calibration: pd.DataFrame):
    """Detection before the attack, attack success after the fixed step budget and quality cost per scheme,
    next to the paper's claims."""
    note = scale_note(summary, calibration, current_profile())
    yield from findings_results(build_findings(summary, calibration, note, study=GROUP),
                                {k: metric for k, (metric, _) in CHECKS.items()})


defs = dg.Definitions(assets=[watermark_generation, watermark_infiller, watermark_attack, watermark_findings])
