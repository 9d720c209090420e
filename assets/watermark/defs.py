"""Dagster side of the watermark study (Zhang, Edelman, Francati, Venturi, Ateniese & Barak 2023, "Watermarks
in the Sand"): three watermarks, their detectors, and the random-walk attack that removes them.

Text: the code family (byte-level BPE on Python sources; far more entropy per token than the templated facts
world, and a watermark needs entropy to hide in). ``lm_code_small`` is the watermarked generator and the
attack's "resample" perturbation oracle (it re-samples random spans); ``watermark_infiller``, a model of the
same family trained here on the code corpus in fill-in-the-middle form, is the "infill" oracle (it rewrites a
span given its prefix and suffix, as the paper's T5 span in-filler did); ``lm_code_large`` is the quality
oracle (a separate, larger model's mean log-probability); a byte n-gram model fitted here on the code corpus
is the independent judge of quality. ``watermark_texts`` / ``watermark_calibration``: KGW (γ=0.25, δ=2 and the
attack paper's γ=0.5, δ=4), Unigram and EXP-sampled texts, unwatermarked texts, every detector calibrated
at 1% FPR. ``watermark_walk`` / ``watermark_attack`` / ``watermark_summary``: the attack, step by step and
per text. ``watermark/findings``: the paper's claims side by side.
"""

import time

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.watermark.findings import CHECKS
from resources.compute import Compute
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import current_profile, pick
from resources.stages import stage
from resources.subsetting import yields_selected
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "watermark"
PAPER = "Zhang et al. 2023 (Watermarks in the Sand)"


def _load(record: dict, tracking: Tracking, device: str):
    from assets.lm.registry import load_model

    return load_model(record["model_uri"], tracking.resolved_tracking_uri, device=device)


# ------------------------------------------------------------------------------------------- generation
class WatermarkGenerationConfig(dg.Config):
    """Prompts, watermarked and unwatermarked generations, and the detectors' calibration."""

    prompt_tokens: int = pick(tiny=8, demo=16, gpu=32)
    response_tokens: int = Field(default=pick(tiny=24, demo=40, gpu=200), description="tokens per generated text")
    n_texts: int = Field(default=pick(tiny=6, demo=24, gpu=200), description="watermarked texts per scheme")
    n_null: int = Field(default=pick(tiny=100, demo=200, gpu=1000),
                        description="unwatermarked texts that calibrate each detector's 1% FPR threshold")
    fpr: float = 0.01
    z_threshold: float = Field(default=4.0, description="KGW's own z threshold (reported beside the calibrated one)")
    kgw_gamma: float = 0.25
    kgw_delta: float = 2.0
    strong_gamma: float = Field(default=0.5, description="KGW γ as the attack paper ran it")
    strong_delta: float = Field(default=4.0, description="KGW δ as the attack paper ran it")
    unique: bool = Field(default=False, description="score distinct (previous, token) pairs / distinct tokens only")
    unigram_gamma: float = 0.5
    unigram_delta: float = 2.0
    unigram_key: int = 0
    exp_key: int = 42
    exp_key_length: int = Field(default=pick(tiny=32, demo=256, gpu=256),
                                description="n: rows of the EXP key ξ (Kuditipudi et al. use 256; a short key "
                                            "makes texts share key rows, so their qualities correlate)")
    edit_gamma: float = Field(default=0.4, description="EXP-edit insertion/deletion cost γ")
    permutation_runs: int = Field(default=pick(tiny=9, demo=29, gpu=99),
                                  description="fresh keys in EXP / EXP-edit's permutation test")
    batch_size: int = pick(tiny=32, demo=64, gpu=256)
    seed: int = 0
    cpu_threads: int = Field(default=1, description="torch CPU threads (0: torch's default)")

    def settings(self):
        from assets.watermark.study import StudySettings

        return StudySettings(self.prompt_tokens, self.response_tokens, self.n_texts, self.n_null, self.fpr,
                             self.z_threshold, self.permutation_runs, self.batch_size, self.seed)


@dg.multi_asset(
    outs={"watermark_texts": dg.AssetOut(is_required=False, group_name=GROUP, code_version="1", tags=stage("evaluation"),
                                         description="Every generated text under every detector: score, p-value, "
                                                     "detection at 1% FPR, the oracle's quality, token ids."),
          "watermark_calibration": dg.AssetOut(is_required=False, group_name=GROUP, code_version="1", tags=stage("evaluation"),
                                               description="Per scheme: parameters, the threshold calibrated on "
                                                           "unwatermarked text, null p-values, detection rate.")},
    ins={"generator": dg.AssetIn("lm_code_small"), "oracle": dg.AssetIn("lm_code_large"),
         "documents": dg.AssetIn("code_corpus")},
    check_specs=[dg.AssetCheckSpec("texts_valid", asset="watermark_texts",
                                   description="p-values in [0, 1], known schemes and roles, finite scores"),
                 dg.AssetCheckSpec("calibration_holds", asset="watermark_calibration",
                                   description="each threshold flags at most 2x the target FPR of the null texts")],
    pool="gpu", can_subset=True)
@yields_selected
def watermark_generation(context: dg.AssetExecutionContext, config: WatermarkGenerationConfig, tracking: Tracking,
                         compute: Compute, generator: dict, oracle: dict, documents: pd.DataFrame):
    """Generate KGW-, Unigram- and EXP-watermarked continuations of code prompts with the small code model,
    unwatermarked ones for calibration, and score all of them with every detector."""
    from assets.lm.threads import torch_threads
    from assets.watermark.schemes import build_schemes
    from assets.watermark.study import decode, detection_tables, generate_texts, mean_logprob

    device, s, started = compute.torch_device(), config.settings(), time.time()
    compute.seed_everything(config.seed)
    val = documents.loc[documents["split"] == "validation", "text"].tolist()
    with torch_threads(config.cpu_threads, device):
        model, tokenizer = _load(generator, tracking, device)
        oracle_model, _ = _load(oracle, tracking, device)
        schemes = build_schemes(
            int(model.config.vocab_size), kgw_gamma=config.kgw_gamma, kgw_delta=config.kgw_delta,
            attack_paper_gamma=config.strong_gamma, attack_paper_delta=config.strong_delta, unique=config.unique,
            unigram_gamma=config.unigram_gamma, unigram_delta=config.unigram_delta, unigram_key=config.unigram_key,
            exp_key=config.exp_key, key_length=config.exp_key_length, edit_gamma=config.edit_gamma, device=device)
        gen = generate_texts(model, tokenizer, val, schemes, s, log=context.log.info)
        groups = {**{k: (gen["prompts"], v) for k, v in gen["tokens"].items()},
                  "null": (gen["null_prompts"], gen["null_tokens"])}
        quality = {k: mean_logprob(oracle_model, p, t, s.batch_size) for k, (p, t) in groups.items()}
        texts = {k: decode(tokenizer, t) for k, (_, t) in groups.items()}
        table, calibration = detection_tables(gen, schemes, s, quality, texts)
    context.log.info(f"generation and detection took {time.time() - started:.1f}s")
    lineage = {"generator_uri": generator["model_uri"], "oracle_uri": oracle["model_uri"]}
    table = table.assign(**lineage)
    calibration = calibration.assign(**lineage)
    shown = calibration[["scheme", "threshold", "null_false_positive_rate", "null_p_ks_pvalue", "detection_rate",
                         "p_below_fpr_rate", "z_threshold_rate"]]
    yield dg.Output(table, output_name="watermark_texts", metadata={"rows": len(table), **lineage})
    yield dg.Output(calibration, output_name="watermark_calibration",
                    metadata={"calibration": markdown_table(shown), "seconds": round(time.time() - started, 1)})
    gxe = expectations()
    yield gx_check(table, [
        gxe.ExpectColumnValuesToBeInSet(column="scheme", value_set=list(schemes)),
        gxe.ExpectColumnValuesToBeInSet(column="role", value_set=["watermarked", "unwatermarked"]),
        gxe.ExpectColumnValuesToBeBetween(column="p_value", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="score"),
        gxe.ExpectColumnValuesToBeBetween(column="oracle_logprob", max_value=0),
    ], name="watermark_texts", asset_key=dg.AssetKey("watermark_texts"), check_name="texts_valid")
    worst = float(calibration["null_false_positive_rate"].max())
    yield dg.AssetCheckResult(asset_key="watermark_calibration", check_name="calibration_holds",
                              passed=bool(worst <= 2 * config.fpr),
                              metadata={"worst_null_false_positive_rate": worst, "target_fpr": config.fpr})


# --------------------------------------------------------------------------------------------- in-filler
class WatermarkInfillerConfig(dg.Config):
    """The FIM in-filler: a family model trained on PSM- (or SPM-) rearranged windows of the code corpus.

    Demo settings were picked on held-out middle loss (nats/token; the generator scores 4.60 from the prefix
    alone): from scratch, PSM, 400 steps, plain loss: 5.48 (36 s of training); warm-started from the
    generator, context weight 0.1, 200 steps at lr 2e-3: PSM 5.41, SPM 4.97 (18 s); SPM at lr 4e-3: 4.82; SPM,
    300 steps at lr 5e-3: 4.70 (27 s; context weight 1: 5.51 and 0: 5.14 at 200-300 steps). No setting within
    the demo's budget beat the generator, so the demo attack re-samples (``WatermarkAttackConfig.perturbation``).
    """

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
    context_weight: float = Field(default=pick(tiny=1.0, demo=0.1, gpu=1.0), description="loss weight of prefix/suffix tokens against the "
                                                           "middle's 1 (0: middle only, as a T5 span in-filler)")
    layout: str = Field(default=pick(tiny="psm", demo="spm", gpu="psm"), description='"psm": <fim_prefix> prefix <fim_suffix> suffix <fim_middle> '
                                                   'middle; "spm": the suffix first, so the middle continues the prefix')
    init: str = Field(default=pick(tiny="scratch", demo="generator", gpu="scratch"), description='"scratch": fresh weights; "generator": start from lm_code_small '
                                                      "(same shape needed) and fine-tune it on FIM examples")
    seed: int = 0
    cpu_threads: int = 1
    aliases: list[str] = Field(default=["current"], description="MLflow registry aliases set on the new version")


@dg.asset(group_name=GROUP, code_version="1", tags=stage("training"), pool="gpu",
          ins={"documents": dg.AssetIn("code_corpus"), "tokenizer_record": dg.AssetIn("code_tokenizer"),
               "generator": dg.AssetIn("lm_code_small")})
def watermark_infiller(context: dg.AssetExecutionContext, config: WatermarkInfillerConfig, tracking: Tracking,
                       compute: Compute, documents: pd.DataFrame, tokenizer_record: dict, generator: dict) -> dict:
    """Train the attack's masked-span in-filler: a model of the code family on the corpus's training documents
    rearranged as <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle (sentinels appended after the code
    vocabulary, on a copy of its tokenizer), registered in MLflow as wm-infiller; with its held-out loss on the
    middles beside the generator's (prefix only)."""
    import tempfile

    from assets.corpora.tokenization import load_tokenizer
    from assets.lm.model import ModelSize, save_checkpoint
    from assets.lm.threads import torch_threads
    from assets.lm.training import TrainConfig
    from assets.watermark.infill import fit_infiller, progress

    device = compute.torch_device()
    compute.seed_everything(config.seed)
    tokenizer = load_tokenizer(tracking.download_model(tokenizer_record["tokenizer_uri"]))
    train_texts = documents.loc[documents["split"] == "train", "text"].tolist()
    val_texts = documents.loc[documents["split"] == "validation", "text"].tolist()
    size = ModelSize("infiller", config.d_model, config.n_layers, config.n_heads, config.d_ff, config.context_length)
    cfg = TrainConfig(max_steps=config.max_steps, batch_size=config.batch_size, learning_rate=config.learning_rate,
                      min_lr=config.min_lr, warmup_steps=config.warmup_steps, eval_interval=config.max_steps,
                      log_interval=max(1, config.max_steps // 10),
                      seed=config.seed, device=device, bf16=compute.use_bf16())
    params = {**config.model_dump(), "tokenizer_uri": tokenizer_record["tokenizer_uri"],
              "generator_uri": generator["model_uri"]}
    with torch_threads(config.cpu_threads, device):
        gen_model, _ = _load(generator, tracking, device)
        fitted = fit_infiller(size, tokenizer, train_texts, val_texts, cfg, window=config.window,
                              max_span=config.max_span, n_val=config.n_val, generator=gen_model, init=config.init,
                              context_weight=config.context_weight, layout=config.layout,
                              on_log=progress(context.log.info, config.max_steps))
    with tracking.start_run("watermark_infiller", dagster_run_id=context.run.run_id, asset_key="watermark_infiller",
                            params=params) as run_id, tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(fitted.model, fitted.tokenizer, tmp + "/model")
        tracking.log_metric_history(run_id, fitted.curve.to_dict("records"))
        tracking.log_metrics(run_id, {"middle_nll": fitted.middle_nll, "generator_middle_nll":
                                      fitted.generator_middle_nll})
        model = tracking.log_model(run_id, tmp + "/model", "wm-infiller", aliases=tuple(config.aliases))
    record = {**model, **fitted.record(), "window": config.window, "max_span": config.max_span, "init": config.init,
              "context_weight": config.context_weight, "tokenizer_uri": tokenizer_record["tokenizer_uri"],
              "generator_uri": generator["model_uri"]}
    context.log.info(f"in-filler: middle loss {fitted.middle_nll:.3f} nats vs the generator's "
                     f"{fitted.generator_middle_nll:.3f} (prefix only), {fitted.seconds:.1f}s")
    context.add_output_metadata({"model_uri": model["model_uri"], "mlflow": dg.MetadataValue.url(model["mlflow_link"]),
                                 "middle_nll": fitted.middle_nll, "generator_middle_nll": fitted.generator_middle_nll,
                                 "seconds": round(fitted.seconds, 1)})
    return record


# ----------------------------------------------------------------------------------------------- attack
class WatermarkAttackConfig(dg.Config):
    """The random walk: span rewriting by the perturbation oracle, acceptance by the larger model's quality.

    The paper's protocol: every text walks the fixed budget of ``steps``; detection is measured afterwards (and
    at T/4, T/2, 3T/4 for the curves). Demo, 24 texts per scheme, measured with the detector in the loop (before
    issue 16): re-sampling freed 100/100/92/75/75% of KGW/KGW-strong/Unigram/EXP/EXP-edit texts (48-56% of
    proposals accepted); the demo in-filler freed 100/92/83/75/75% (47-54% accepted) for ~1 s more. Its middle
    loss does not beat the generator's, so the demo keeps re-sampling; the tiny and gpu profiles walk with the
    in-filler, as the paper did.
    """

    perturbation: str = Field(default=pick(tiny="infill", demo="resample", gpu="infill"),
                              description='"resample": the generator re-samples the span given the text before '
                                          'it; "infill": the FIM in-filler rewrites it given prefix and suffix')

    steps: int = Field(default=pick(tiny=8, demo=60, gpu=200), description="T: the fixed step budget per text")
    earlier_budget: int | None = Field(default=pick(tiny=None, demo=40, gpu=None),
                                       description="a shorter budget whose success is reported beside T's (demo: the "
                                                   "40 steps it walked before being lengthened after seeing results)")
    span: int = Field(default=pick(tiny=3, demo=4, gpu=6), description="tokens re-sampled per step")
    min_span: int = 1
    backoff_after: int = Field(default=pick(tiny=3, demo=5, gpu=10),
                               description="consecutive rejections before the span halves")
    quality_tolerance: float = Field(default=0.0, description="accept if quality >= original - this (nats/token)")
    detector_in_the_loop: bool = Field(default=False, description="NOT the paper's attack: stop a text's walk as "
                                       "soon as the key-holder's detector no longer flags it")
    temperature: float = 1.0
    judge_order: int = Field(default=5, description="bytes of context + 1 in the independent n-gram judge")
    judge_max_bytes: int | None = pick(tiny=None, demo=2_000_000, gpu=None)
    seed: int = 0
    cpu_threads: int = 1

    def walk(self):
        from assets.watermark.attack import WalkSettings

        return WalkSettings(self.steps, self.span, self.min_span, self.backoff_after, self.quality_tolerance,
                            self.detector_in_the_loop, self.temperature, self.seed, self.perturbation)


ATTACK_OUTS = {
    "watermark_walk": "Every step of every attacked text: accepted or not, span, detector score, p-value (EXP / "
                      "EXP-edit: empirical, against the unwatermarked texts), detection at 1% FPR, quality-oracle "
                      "score.",
    "watermark_attack": "Per attacked text: score, p-value and detection before and after, steps, tokens changed, "
                        "oracle and judge quality before and after, attack success.",
    "watermark_summary": "Per scheme: detection rate before and after the attack, attack success after the fixed "
                         "budget T and at T/4, T/2, 3T/4 (and the demo's earlier 40-step budget), quality change.",
}


@dg.multi_asset(
    outs={k: dg.AssetOut(is_required=False, group_name=GROUP, code_version="2", tags=stage("evaluation"), description=v)
          for k, v in ATTACK_OUTS.items()},
    ins={"texts": dg.AssetIn("watermark_texts"), "calibration": dg.AssetIn("watermark_calibration"),
         "generator": dg.AssetIn("lm_code_small"), "oracle": dg.AssetIn("lm_code_large"),
         "documents": dg.AssetIn("code_corpus"), "infiller": dg.AssetIn("watermark_infiller")},
    check_specs=[dg.AssetCheckSpec("attack_valid", asset="watermark_attack",
                                   description="every accepted text keeps the oracle's quality; rates in [0, 1]")],
    pool="gpu", can_subset=True)
@yields_selected
def watermark_attack(context: dg.AssetExecutionContext, config: WatermarkAttackConfig, tracking: Tracking,
                     compute: Compute, warehouse: WarehousePaths, texts: pd.DataFrame, calibration: pd.DataFrame,
                     generator: dict, oracle: dict, documents: pd.DataFrame, infiller: dict):
    """Run the random-walk attack on every scheme's watermarked texts and measure what it costs in quality."""
    import numpy as np
    import torch

    from assets.lm.threads import torch_threads
    from assets.watermark import plots
    from assets.watermark.ngram import ByteNGram
    from assets.watermark.schemes import scheme_from_params
    from assets.watermark.study import StudySettings, run_attack, summarise

    device, started = compute.torch_device(), time.time()
    compute.seed_everything(config.seed)
    schemes = {r["scheme"]: scheme_from_params(r, device) for r in calibration.to_dict("records")}
    marked = texts[texts["role"] == "watermarked"]
    first = marked[marked["scheme"] == next(iter(schemes))].sort_values("text_id")
    gen = {"prompts": torch.tensor(np.stack(first["prompt_ids"].to_list()), dtype=torch.long),
           "tokens": {name: torch.tensor(np.stack(g.sort_values("text_id")["response_ids"].to_list()),
                                         dtype=torch.long)
                      for name, g in marked.groupby("scheme") if schemes[name].texts_from == name}}
    null = texts[texts["role"] == "unwatermarked"]
    null_scores = {name: g["score"].to_numpy() for name, g in null.groupby("scheme")}
    s = StudySettings(prompt_tokens=gen["prompts"].size(1), response_tokens=len(first["response_ids"].iloc[0]),
                      n_texts=len(first), n_null=len(null_scores[first["scheme"].iloc[0]]),
                      fpr=float(calibration["fpr"].iloc[0]),
                      permutation_runs=int(calibration["permutation_runs"].iloc[0]), seed=config.seed)
    train = documents.loc[documents["split"] == "train", "text"].tolist()
    judge = ByteNGram(config.judge_order).fit(train, max_bytes=config.judge_max_bytes)
    null_text = null[null["scheme"] == first["scheme"].iloc[0]]
    with torch_threads(config.cpu_threads, device):
        model, tokenizer = _load(generator, tracking, device)
        contexts = [tokenizer.decode(list(ids), skip_special_tokens=True) for ids in null_text["prompt_ids"]]
    null_bpb_each = judge.bits_per_byte(null_text["text"].tolist(), contexts)
    null_bpb = float(np.nanmean(null_bpb_each))
    same = null_text["text_id"].to_numpy() < s.n_texts  # unwatermarked answers to the watermarked prompts
    same_prompt_bpb = float(np.nanmean(null_bpb_each[same])) if same.any() else float("nan")
    with torch_threads(config.cpu_threads, device):
        oracle_model, _ = _load(oracle, tracking, device)
        fim = None
        if config.perturbation == "infill":
            from assets.watermark.infill import fim_ids

            fim_model, fim_tokenizer = _load(infiller, tracking, device)
            fim = (fim_model, fim_ids(fim_tokenizer, int(infiller["base_vocab"]), infiller.get("layout", "psm")))
        walk, results = run_attack(model, oracle_model, judge, tokenizer, gen, schemes, calibration, null_scores, s,
                                   config.walk(), log=context.log.info, infiller=fim)
    summary = summarise(results, calibration, null_bpb, same_prompt_bpb, walk, config.steps,
                        config.earlier_budget).assign(
        infiller_uri=infiller["model_uri"], infiller_middle_nll=infiller["middle_nll"],
        generator_middle_nll=infiller["generator_middle_nll"])
    context.log.info(f"attack took {time.time() - started:.1f}s")
    run_id, root = context.run.run_id, warehouse.root
    thresholds = dict(zip(calibration["scheme"], calibration["threshold"], strict=True))
    yield dg.Output(walk, output_name="watermark_walk", metadata={
        "rows": len(walk),
        "detection_vs_steps": figure_metadata(plots.detection_vs_steps(walk, config.steps),
                                              "watermark/detection_vs_steps", root, run_id),
        "score_trajectories": figure_metadata(plots.score_trajectories(walk, thresholds, config.steps),
                                              "watermark/score_trajectories", root, run_id)})
    yield dg.Output(results, output_name="watermark_attack", metadata={
        "rows": len(results), "quality": figure_metadata(plots.quality_before_after(results, null_bpb),
                                                         "watermark/quality_before_after", root, run_id)})
    yield dg.Output(summary, output_name="watermark_summary", metadata={
        "summary": markdown_table(summary), "seconds": round(time.time() - started, 1),
        "judge_bits_per_byte_unwatermarked": null_bpb})
    gxe = expectations()
    yield gx_check(results, [
        gxe.ExpectColumnValuesToBeInSet(column="quality_kept", value_set=[True]),
        gxe.ExpectColumnValuesToBeBetween(column="tokens_changed", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="p_value_after", min_value=0, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="steps", min_value=0, max_value=config.steps),
        gxe.ExpectColumnValuesToNotBeNull(column="judge_bits_per_byte_after"),
    ], name="watermark_attack", asset_key=dg.AssetKey("watermark_attack"), check_name="attack_valid")


# -------------------------------------------------------------------------------------------- findings
FINDINGS_KEY = dg.AssetKey([GROUP, "findings"])


@dg.asset(key_prefix=[GROUP], name="findings", group_name=GROUP, code_version="2", tags=stage("evaluation"),
          ins={"summary": dg.AssetIn("watermark_summary"), "calibration": dg.AssetIn("watermark_calibration")},
          check_specs=findings_check_specs(FINDINGS_KEY, {k: text for k, (_, text) in CHECKS.items()}))
def watermark_findings(summary: pd.DataFrame, calibration: pd.DataFrame):
    """Detection before the attack, attack success after the fixed step budget and quality cost per scheme,
    next to the paper's claims."""
    from assets.watermark.findings import build_findings, oracle_label

    cal = calibration.set_index("scheme")
    scale = (f"{current_profile()} profile: {int(summary['n_texts'].iloc[0])} texts per scheme, "
             f"{int(cal['n_null'].iloc[0])} unwatermarked for calibration, code LM family "
             f"(vocabulary {int(cal['vocab_size'].iloc[0])}), {int(summary['steps_budget'].iloc[0])}-step walk "
             f"({summary['protocol'].iloc[0]}); {oracle_label(summary.iloc[0])}")
    yield from findings_results(build_findings(summary, calibration, scale, study=GROUP),
                                {k: metric for k, (metric, _) in CHECKS.items()})


defs = dg.Definitions(assets=[watermark_generation, watermark_infiller, watermark_attack, watermark_findings])
