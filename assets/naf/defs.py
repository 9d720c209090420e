"""Dagster side of the NAF study (Vyas, Kakade & Barak 2023): provable copyright protection by combining
models trained on disjoint shards.

``naf_models`` shards the facts world's training documents so that every copy of a protected document lands
in one shard, and trains three models of the LM family: q1 and q2 on the two shards and the baseline p on
everything (registered in MLflow as naf-q1, naf-q2, naf-p). ``naf_evaluation`` prompts every model and the
combinations CP-Δ (∝ min(q1, q2)), CP-KL (∝ √(q1·q2)) and CP-k (p's samples kept only if k_x ≤ k) with the
start of each protected document, and measures how much of its true continuation comes back, by duplication
count; the k_x of every sample; and the held-out perplexity that protection costs. ``naf/findings`` puts
the headline numbers next to the paper's claims.
"""

import dataclasses
import time
from functools import partial

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.lm.config import ModelShape, Optimiser
from assets.lm.registration import (
    DatasetInput,
    Display,
    load_registered,
    load_tokenizer_of,
    train_and_register,
)
from assets.naf.findings import CHECKS
from resources.compute import Compute
from resources.config import StudyConfig
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import current_profile, pick, step_threads
from resources.stages import stage
from resources.subsetting import yields_selected
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "naf"
PAPER = "Vyas, Kakade & Barak 2023"
# role -> (shard it trains on (None: every shard), registered MLflow name); never lm-<corpus>-<size>
ROLES = {"q1": (0, "naf-q1"), "q2": (1, "naf-q2"), "p": (None, "naf-p")}


# ----------------------------------------------------------------------------------------------- models
class NafModelsConfig(ModelShape, Optimiser, StudyConfig):
    """Shards and the three models. All three share one architecture and training recipe; only the data
    differs. The demo trains on a subset of the unprotected documents so that p sees each protected copy
    often enough to memorise it within a CPU budget."""

    n_public_documents: int | None = Field(
        default=pick(tiny=None, demo=500, gpu=None),
        description="unprotected train documents used (None: all); every protected document is always used")
    shard_seed: int = Field(default=0, description="seed of the document subset and of the split into the "
                            "two disjoint shards (copies of a text share a shard)")
    d_model: int = pick(tiny=32, demo=96, gpu=384)
    n_layers: int = pick(tiny=1, demo=2, gpu=6)
    n_heads: int = pick(tiny=2, demo=4, gpu=6)
    d_ff: int = pick(tiny=64, demo=288, gpu=1536)
    context_length: int = pick(tiny=32, demo=64, gpu=128)
    max_steps: int = pick(tiny=60, demo=150, gpu=4000)
    batch_size: int = pick(tiny=8, demo=32, gpu=64)
    learning_rate: float = pick(tiny=5e-3, demo=6e-3, gpu=1e-3)
    min_lr: float = pick(tiny=5e-4, demo=6e-4, gpu=1e-4)
    warmup_steps: int = pick(tiny=3, demo=15, gpu=200)
    eval_batches: int = pick(tiny=1, demo=2, gpu=10)
    cpu_threads: int = Field(default=step_threads(), description="torch CPU threads while training (0: torch's default)")
    aliases: list[str] = Field(default=["current"], description="MLflow registry aliases set on each new version")


MODEL_OUTS = {
    "naf_shards": "Which shard every training document went to (all copies of a text in one shard), with its "
                  "protected flag and duplication count.",
    "naf_q1": "q1: the LM trained on shard 0 only (MLflow record, registered as naf-q1).",
    "naf_q2": "q2: the LM trained on shard 1 only (MLflow record, registered as naf-q2).",
    "naf_p": "p: the baseline LM trained on both shards, i.e. every copy of every protected document "
             "(MLflow record, registered as naf-p).",
}


@dg.multi_asset(
    outs={name: dg.AssetOut(is_required=False, group_name=GROUP, code_version="1", tags=stage("training"), description=text)
          for name, text in MODEL_OUTS.items()},
    ins={"documents": dg.AssetIn("facts_documents"), "tokenizer_record": dg.AssetIn("facts_tokenizer")},
    check_specs=[dg.AssetCheckSpec("shards_keep_copies_together", asset="naf_shards",
                                   description="every text (all copies of a protected document) sits in exactly "
                                               "one shard; both shards hold protected documents; ids unique, "
                                               "shards 0/1, at least one copy each")],
    pool="gpu",
    can_subset=True,
)
@yields_selected
def naf_models(context: dg.AssetExecutionContext, config: NafModelsConfig, tracking: Tracking, compute: Compute,
               warehouse: WarehousePaths, documents: pd.DataFrame, tokenizer_record: dict):
    """Shard the training documents (protected copies kept together) and train q1, q2 on the shards and p on
    everything with the LM family's trainer; each is logged and registered in MLflow."""
    from assets.lm.family import fit_language_model
    from assets.lm.threads import torch_threads
    from assets.naf.plots import training_curves
    from assets.naf.sharding import assign_shards, select_training_documents, shard_training_texts

    selected = select_training_documents(documents, config.n_public_documents, seed=config.shard_seed)
    available = int(((documents["split"] == "train") & ~documents["protected"].astype(bool)).sum())
    shards = assign_shards(selected, n_shards=2, seed=config.shard_seed)
    tokenizer = load_tokenizer_of(tokenizer_record, tracking)
    val_texts = documents.loc[documents["split"] == "validation", "text"].tolist()
    validation = DatasetInput.of_texts("naf-validation", val_texts, "validation", "facts_documents")
    size, cfg = config.model_size("naf"), config.train_config(compute, eval_interval=config.max_steps)
    display = Display(dg.MetadataValue.url, partial(figure_metadata, warehouse_root=warehouse.root,
                                                    run_id=context.run.run_id))
    outputs, curves = {}, {}
    with torch_threads(config.cpu_threads, compute.torch_device()):
        for role, (shard, registered) in ROLES.items():
            compute.seed_everything(config.seed)
            texts = shard_training_texts(selected, shards, shard, seed=config.seed)
            held = shards if shard is None else shards[shards["shard"] == shard]
            params = {**config.model_dump(), "role": role, "shard": "all" if shard is None else shard,
                      "train_texts": len(texts), "tokenizer_uri": tokenizer_record["tokenizer_uri"]}
            fitted, record, metadata = train_and_register(
                context, tracking, compute, lambda workdir, on_log, texts=texts: fit_language_model(
                    size, tokenizer, texts, val_texts, cfg, workdir / "model", on_log=on_log),
                run_name=f"naf-{role}", asset_key=f"naf_{role}", params=params, steps=cfg.max_steps,
                registered=registered, aliases=config.aliases, plot_name=f"naf/{role}_loss_curve", display=display,
                datasets=[DatasetInput.of_texts(f"naf-{role}-train", texts, "train", "naf_shards"), validation])
            curves[role], final_train_loss = fitted.curve, float(fitted.curve["train_loss"].iloc[-1])
            record |= {"role": role, "shard": -1 if shard is None else shard, "train_texts": len(texts),
                       "train_documents": len(held), "protected_documents": int(held["protected"].sum()),
                       "final_train_loss": final_train_loss, "model_size": dataclasses.asdict(size),
                       "tokenizer_uri": tokenizer_record["tokenizer_uri"], "max_steps": config.max_steps,
                       "n_public_documents": config.n_public_documents, "public_documents_available": available}
            outputs[role] = (record, {**metadata, "final_train_loss": final_train_loss, "train_texts": len(texts)})

    by_shard = shards.groupby(["shard", "protected"]).agg(documents=("doc_id", "size"), copies=("n_copies", "sum"))
    curve_plot = figure_metadata(training_curves(curves), "naf/training_curves", warehouse.root, context.run.run_id)
    yield dg.Output(shards, output_name="naf_shards",
                    metadata={"by_shard": markdown_table(by_shard.reset_index()), "documents": len(shards),
                              "training_curves": curve_plot})
    for role, (record, metadata) in outputs.items():
        yield dg.Output(record, output_name=f"naf_{role}", metadata={**metadata, "training_curves": curve_plot})
    yield _shards_check(selected, shards)


def _shards_check(selected: pd.DataFrame, shards: pd.DataFrame) -> dg.AssetCheckResult:
    from assets.naf import validity
    from assets.naf.sharding import shard_integrity

    integrity = shard_integrity(selected, shards)
    valid = gx_check(shards, validity.shards(expectations()), name="naf_shards")
    protected = integrity["shards_with_protected_documents"]
    return dg.AssetCheckResult(check_name="shards_keep_copies_together", asset_key="naf_shards",
                               passed=bool(valid.passed and integrity["texts_split_across_shards"] == 0
                                           and protected == [0, 1]),
                               metadata={**valid.metadata, **integrity, "shards_with_protected_documents": str(protected)})


# ------------------------------------------------------------------------------------------- evaluation
class NafEvaluationConfig(StudyConfig):
    """How the models and their combinations are probed with the protected documents."""

    prompt_words: int = Field(default=pick(tiny=4, demo=8, gpu=16), description="words of the document in the prompt")
    continuation_words: int = Field(default=pick(tiny=6, demo=16, gpu=32),
                                    description="words of the true continuation that a sample must reproduce")
    max_documents: int | None = Field(default=None, description="protected documents probed (None: all)")
    n_samples: int = Field(default=pick(tiny=4, demo=24, gpu=128), description="continuations sampled per prompt")
    temperature: float = 1.0
    near_exact_threshold: float = Field(default=0.1, description="near-exact: normalised token edit distance <= this")
    k_bits: float = Field(default=pick(tiny=8.0, demo=12.0, gpu=16.0),
                          description="CP-k keeps a sample of p only if k_x = max_i log2 p(y|x)/q_i(y|x) <= k_bits")
    cp_k_max_tries: int = Field(default=pick(tiny=4, demo=6, gpu=16),
                                description="CP-k proposals per output before it gives up (abstains)")
    perplexity_windows: int = Field(default=pick(tiny=8, demo=64, gpu=512), description="evenly spaced "
                                    "context-length windows of unprotected validation text scored for perplexity")
    batch_size: int = pick(tiny=32, demo=128, gpu=512)
    seed: int = 0
    cpu_threads: int = Field(default=step_threads(), description="torch CPU threads (0: torch's default)")

    def settings(self):
        from assets.naf.study import EvaluationSettings

        names = {f.name for f in dataclasses.fields(EvaluationSettings)}
        return EvaluationSettings(**{k: v for k, v in self.model_dump().items() if k in names})


EVALUATION_OUTS = {
    "naf_regurgitation": "Per model and protected document: log2-probability of the true continuation, exact-"
                         "extraction probability, sampled exact / near-exact rates, greedy match, k_x of the truth.",
    "naf_regurgitation_by_duplication": "Regurgitation by model and duplication count (means over documents).",
    "naf_k_values": "k_x = max_i log2 p(y|x)/q_i(y|x) of every sampled continuation of p, CP-Δ, CP-KL and CP-k.",
    "naf_perplexity": "Held-out perplexity of p, q1, q2, CP-Δ and CP-KL on unprotected validation text.",
}
EVALUATION_CHECKS = [
    dg.AssetCheckSpec("regurgitation_valid", asset="naf_regurgitation",
                      description="probabilities and rates in [0, 1], log-probabilities <= 0, every model present"),
    dg.AssetCheckSpec("regurgitation_by_duplication_valid", asset="naf_regurgitation_by_duplication",
                      description="rates in [0, 1], one row per (model, duplication count)"),
    dg.AssetCheckSpec("k_values_valid", asset="naf_k_values", description="k_x finite, CP-Δ k_x <= its bound"),
    dg.AssetCheckSpec("perplexity_valid", asset="naf_perplexity", description="perplexities finite and >= 1"),
]


@dg.multi_asset(
    outs={name: dg.AssetOut(is_required=False, group_name=GROUP, code_version="1", tags=stage("evaluation"), description=text)
          for name, text in EVALUATION_OUTS.items()},
    ins={"q1_record": dg.AssetIn("naf_q1"), "q2_record": dg.AssetIn("naf_q2"), "p_record": dg.AssetIn("naf_p"),
         "shards": dg.AssetIn("naf_shards"), "documents": dg.AssetIn("facts_documents")},
    check_specs=EVALUATION_CHECKS,
    pool="gpu",
    can_subset=True,
)
@yields_selected
def naf_evaluation(context: dg.AssetExecutionContext, config: NafEvaluationConfig, tracking: Tracking,
                   compute: Compute, warehouse: WarehousePaths, q1_record: dict, q2_record: dict, p_record: dict,
                   shards: pd.DataFrame, documents: pd.DataFrame):
    """Prompt p, q1, q2, CP-Δ, CP-KL and CP-k with the start of every protected document: probability and
    sampling rate of its true continuation by duplication count, k_x of every sample, held-out perplexity."""
    from assets.lm.threads import torch_threads
    from assets.naf import plots
    from assets.naf.study import evaluate_naf

    device = compute.torch_device()
    compute.seed_everything(config.seed)
    started = time.time()
    with torch_threads(config.cpu_threads, device):
        loaded = {role: load_registered(record, tracking, device) for role, record in
                  (("p", p_record), ("q1", q1_record), ("q2", q2_record))}
        tokenizer = loaded["p"][1]
        models = {role: model for role, (model, _) in loaded.items()}
        context_length = int(models["p"].config.max_position_embeddings)
        tables = evaluate_naf(models, tokenizer, documents, shards, config.settings(), context_length,
                              log=context.log.info)
    context.log.info(f"evaluation took {time.time() - started:.1f}s")
    lineage = {"p_model_uri": p_record["model_uri"], "q1_model_uri": q1_record["model_uri"],
               "q2_model_uri": q2_record["model_uri"]}
    run_id = context.run.run_id
    reg, summary = tables["regurgitation"], tables["regurgitation_by_duplication"]
    k_values, perplexity = tables["k_values"], tables["perplexity"]
    for frame in (reg, summary, k_values, perplexity):
        for column, uri in lineage.items():
            frame[column] = uri

    yield dg.Output(reg, output_name="naf_regurgitation", metadata={"rows": len(reg), **lineage})
    yield dg.Output(summary, output_name="naf_regurgitation_by_duplication", metadata={
        "by_duplication": markdown_table(summary.drop(columns=list(lineage)), max_rows=60),
        "plot": figure_metadata(plots.extraction_plot(summary, config.near_exact_threshold),
                                "naf/extraction_vs_duplication", warehouse.root, run_id)})
    k_summary = k_values.groupby(["model", "duplicate_count"])["k_bits"].describe()[["mean", "50%", "max"]]
    yield dg.Output(k_values, output_name="naf_k_values", metadata={
        "rows": len(k_values), "k_bits_threshold": config.k_bits,
        "k_summary": markdown_table(k_summary.reset_index()),
        "plot": figure_metadata(plots.k_histogram(k_values, config.k_bits), "naf/k_histogram", warehouse.root, run_id)})
    yield dg.Output(perplexity, output_name="naf_perplexity", metadata={
        "perplexity": markdown_table(perplexity.drop(columns=list(lineage))),
        "plot": figure_metadata(plots.perplexity_vs_protection(perplexity), "naf/perplexity_vs_protection",
                                warehouse.root, run_id)})
    yield from _evaluation_checks(reg, summary, k_values, perplexity)


def _evaluation_checks(reg: pd.DataFrame, summary: pd.DataFrame, k_values: pd.DataFrame, perplexity: pd.DataFrame):
    from assets.naf import validity

    gxe = expectations()
    yield gx_check(reg, validity.regurgitation(gxe), name="naf_regurgitation",
                   asset_key=dg.AssetKey("naf_regurgitation"), check_name="regurgitation_valid")
    yield gx_check(summary, validity.regurgitation_by_duplication(gxe), name="naf_regurgitation_by_duplication",
                   asset_key=dg.AssetKey("naf_regurgitation_by_duplication"),
                   check_name="regurgitation_by_duplication_valid")
    slack = validity.cp_delta_slack(k_values)
    result = gx_check(k_values, validity.k_values(gxe), name="naf_k_values")
    yield dg.AssetCheckResult(asset_key=dg.AssetKey("naf_k_values"), check_name="k_values_valid",
                              passed=bool(result.passed and slack <= 1e-3),
                              metadata={**result.metadata, "max_cp_delta_k_minus_bound_bits": slack})
    yield gx_check(perplexity, validity.perplexity(gxe), name="naf_perplexity",
                   asset_key=dg.AssetKey("naf_perplexity"), check_name="perplexity_valid")


# -------------------------------------------------------------------------------------------- findings
FINDINGS_KEY = dg.AssetKey([GROUP, "findings"])


@dg.asset(key_prefix=[GROUP], name="findings", group_name=GROUP, code_version="2", tags=stage("evaluation"),
          ins={"summary": dg.AssetIn("naf_regurgitation_by_duplication"), "reg": dg.AssetIn("naf_regurgitation"),
               "k_values": dg.AssetIn("naf_k_values"), "perplexity": dg.AssetIn("naf_perplexity"),
               "p_record": dg.AssetIn("naf_p")},
          check_specs=findings_check_specs(FINDINGS_KEY, {k: text for k, (_, text) in CHECKS.items()}))
def naf_findings(summary: pd.DataFrame, reg: pd.DataFrame, k_values: pd.DataFrame, perplexity: pd.DataFrame,
                 p_record: dict):
    """Headline results next to the paper's claims: how much less the combined models regurgitate than p
    (the factor), what that costs in held-out perplexity, and how large k_x gets."""
    from assets.naf.findings import build_findings, corpus_post_hoc, scale_note

    scale = scale_note(summary, reg, p_record, current_profile())
    post_hoc = corpus_post_hoc(p_record.get("n_public_documents"), p_record.get("public_documents_available"))
    findings = build_findings(summary, reg, k_values, perplexity, scale, post_hoc, study=GROUP)
    yield from findings_results(findings, {k: metric for k, (metric, _) in CHECKS.items()})


defs = dg.Definitions(assets=[naf_models, naf_evaluation, naf_findings])
