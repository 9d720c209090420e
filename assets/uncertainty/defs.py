"""Dagster side of the uncertainty study (Ahdritz, Qin, Vyas, Barak & Edelman 2024, "Distinguishing the
Knowable from the Unknowable with Language Models").

``uncertainty_tokens``: small/large pairs of the LM family (or local Hugging Face checkpoint pairs) read
held-out text: both entropies, the small model's hidden states, and on the facts world the true entropy.
``uncertainty_labels``: the paper's epistemic/aleatoric labels, balanced per token id, and the truth's labels.
``uncertainty_probe_auc`` / ``uncertainty_probe_scores``: linear and MLP probes per layer vs the entropy
baseline, held out, across domains, and against the truth. ``uncertainty_iclt``: the unsupervised
in-context learning test. ``uncertainty_auc``: every method side by side; ``uncertainty/findings``.
"""

import math
import time

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.uncertainty.findings import CHECKS
from resources.compute import Compute
from resources.config import StudyConfig
from resources.presentation import figure_metadata, findings_check_specs, findings_results, markdown_table
from resources.profiles import current_profile, pick, step_threads
from resources.stages import stage
from resources.subsetting import yields_selected
from resources.tracking import Tracking
from resources.validation import expectations, gx_check
from resources.warehouse import WarehousePaths

GROUP = "uncertainty"


# ---------------------------------------------------------------------------------------------- tokens
class UncertaintyTokensConfig(StudyConfig):
    """Which pairs read which held-out text, how much of it, and which small-model layers are kept."""

    layers: list[int] | None = Field(default=pick(tiny=None, demo=None, gpu=[0, 2, 4, -1]),
                                     description="hidden-state layers kept (0 = embeddings, -1 = last); None: all")
    max_tokens: int = Field(default=pick(tiny=700, demo=20000, gpu=40000), description="predicted tokens per dataset "
                            "(demo: every held-out facts token; code files are capped by windows per document)")
    max_windows_per_document: int = Field(default=pick(tiny=4, demo=2, gpu=8), description="code files: at most "
                                          "this many context-length windows read per file (facts: all)")
    cross_domain: bool = Field(default=True, description="also let the code pair read the facts documents")
    facts_small_checkpoint: str | None = Field(default=None, description="local HF checkpoint dir replacing lm_facts_small")
    facts_large_checkpoint: str | None = Field(default=None, description="local HF checkpoint dir replacing lm_facts_large")
    code_small_checkpoint: str | None = Field(default=None, description="local HF checkpoint dir replacing lm_code_small")
    code_large_checkpoint: str | None = Field(default=None, description="local HF checkpoint dir replacing lm_code_large")
    top_k_features: int = Field(default=8, description="small-model top-k log-probs kept (the output probe's features)")
    batch_size: int = pick(tiny=32, demo=64, gpu=256)
    seed: int = 0
    cpu_threads: int = Field(default=step_threads(), description="torch CPU threads (0: torch's default)")


@dg.asset(
    group_name=GROUP, code_version="1", tags=stage("evaluation"), pool="gpu",
    ins={"facts_small": dg.AssetIn("lm_facts_small"), "facts_large": dg.AssetIn("lm_facts_large"),
         "code_small": dg.AssetIn("lm_code_small"), "code_large": dg.AssetIn("lm_code_large"),
         "facts_documents": dg.AssetIn("facts_documents"), "facts_token_truth": dg.AssetIn("facts_token_truth"),
         "code_corpus": dg.AssetIn("code_corpus")},
    check_specs=[dg.AssetCheckSpec("token_table_valid", asset="uncertainty_tokens",
                                   description="entropies finite in [0, log V], ids and positions valid, truth "
                                               "present and in range on the facts dataset (Great Expectations)")],
)
def uncertainty_tokens(context: dg.AssetExecutionContext, config: UncertaintyTokensConfig, tracking: Tracking,
                       compute: Compute, facts_small: dict, facts_large: dict, code_small: dict, code_large: dict,
                       facts_documents: pd.DataFrame, facts_token_truth: pd.DataFrame, code_corpus: pd.DataFrame):
    """Token table on held-out documents: per predicted token both models' entropies and log-probs, the small
    model's top-k log-probs and hidden states (list columns ``hidden_l<layer>``), and on the facts world the
    true entropy, slot and is-fact flag. Datasets: facts, code, and the code pair reading facts text."""
    from assets.lm.threads import torch_threads
    from assets.uncertainty.tokens import read_pairs

    device, started = compute.torch_device(), time.time()
    records = {"facts": (facts_small, facts_large), "code": (code_small, code_large)}
    sources = {pair: tuple(getattr(config, f"{pair}_{size}_checkpoint") or record["model_uri"]
                           for size, record in zip(("small", "large"), records[pair], strict=True))
               for pair in records}
    plan = [("facts", "facts"), ("code", "code")] + ([("code", "facts")] if config.cross_domain else [])
    with torch_threads(config.cpu_threads, device):
        tokens, summary = read_pairs(
            plan, sources, {"facts": facts_documents, "code": code_corpus}, facts_token_truth,
            tracking_uri=tracking.resolved_tracking_uri, device=device, layers=config.layers,
            max_tokens=config.max_tokens, top_k=config.top_k_features, batch_size=config.batch_size,
            max_windows_per_document=config.max_windows_per_document, seed=config.seed, log=context.log.info)
    yield dg.Output(tokens, metadata={"datasets": markdown_table(summary),
                                      "seconds": round(time.time() - started, 1)})
    gxe = expectations()
    scalar = tokens.drop(columns=[c for c in tokens.columns if c.startswith("hidden_l") or c == "small_topk_logprobs"])
    facts = scalar[scalar["dataset"] == "facts"]
    result = gx_check(scalar, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("small_entropy", "large_entropy", "token_id",
                                                                 "small_logprob", "position", "split")],
        *[gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=float(math.log(tokens["vocab_size"].max())) + 1e-3)
          for c in ("small_entropy", "large_entropy")],
        gxe.ExpectColumnValuesToBeBetween(column="small_logprob", max_value=1e-5),
        gxe.ExpectColumnValuesToBeBetween(column="position", min_value=0),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "test"]),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["dataset", "doc_id", "position"]),
    ], name="uncertainty_tokens")
    truth_share = float(facts["true_entropy"].notna().mean()) if len(facts) else 0.0
    yield dg.AssetCheckResult(check_name="token_table_valid", passed=bool(result.passed and truth_share > 0.99),
                              metadata={**result.metadata, "facts_truth_share": truth_share})


# ---------------------------------------------------------------------------------------------- labels
class UncertaintyLabelsConfig(StudyConfig):
    """The paper's thresholds are 2.0 / 0.2 / 0.1 nats (LLaMA, log V = 10.4). Read off the demo facts token
    table (log V = 6.9): a 1.0-nat floor keeps the upper ~65% of small-model entropies; the large model is
    better than the small on every slot, names included (4.25 vs 4.85 nats, truth 4.16), so |dH| <= 0.1 finds
    68 aleatoric tokens in 7000 and 0.5 gives both classes hundreds (proxy-truth agreement 0.97 -> 0.89). The
    demo code pair is barely trained (median small entropy 6.3 nats of log V = 7.6; its large model is never
    below 1 nat), so its thresholds come from quantiles (``quantile_pairs``)."""

    facts_entropy_min: float = Field(default=1.0, description="small-model entropy floor, facts pair (nats)")
    code_entropy_min: float = Field(default=2.0, description="small-model entropy floor, code pair (nats)")
    entropy_max: float | None = Field(default=None, description="small-model entropy ceiling (None: none)")
    zero_entropy: float = Field(default=0.2, description="large model counts as confident below this (paper 0.2)")
    entropy_delta: float = Field(default=0.5, description="aleatoric: |H_large - H_small| <= this (paper 0.1)")
    balanced_classes: bool = Field(default=pick(tiny=False, demo=True, gpu=True),
                                   description="balance classes per token id (tiny: its barely trained models "
                                               "label by token id alone, so balancing would keep nothing)")
    truth_aleatoric_min: float | None = Field(default=None, description="truth-aleatoric floor on the true "
                                              "entropy (None: the facts entropy floor)")
    quantile_pairs: list[str] = Field(default=pick(tiny=["facts", "code"], demo=["code"], gpu=[]),
                                      description="pairs whose thresholds come from entropy quantiles (models "
                                                  "too little trained for absolute thresholds)")
    seed: int = 0

    def thresholds(self, dataset: str, tokens: pd.DataFrame):
        from assets.uncertainty.labels import Thresholds, quantile_thresholds

        if dataset.split("_pair_on_")[0] in self.quantile_pairs:
            rows = tokens[tokens["dataset"] == dataset]
            return quantile_thresholds(rows["small_entropy"].to_numpy(), rows["large_entropy"].to_numpy())
        floor = self.facts_entropy_min if dataset.split("_pair_on_")[0] == "facts" else self.code_entropy_min
        return Thresholds(floor, math.inf if self.entropy_max is None else self.entropy_max,
                          self.zero_entropy, self.entropy_delta)


@dg.asset(group_name=GROUP, code_version="2", tags=stage("evaluation"),
          check_specs=[dg.AssetCheckSpec("classes_balanced_per_token", asset="uncertainty_labels",
                                         description="after balancing, every token id has as many epistemic as "
                                                     "aleatoric examples, and both classes are present")])
def uncertainty_labels(context: dg.AssetExecutionContext, config: UncertaintyLabelsConfig, warehouse: WarehousePaths,
                       uncertainty_tokens: pd.DataFrame):
    """Epistemic / aleatoric labels per token (large model as proxy for the truth), ``kept`` after per-token-id
    class balancing, and on the facts world the ground-truth label; with the small-vs-large entropy scatter."""
    from assets.uncertainty.labels import balance_holds, label_counts
    from assets.uncertainty.plots import entropy_scatter
    from assets.uncertainty.study import label_all

    thresholds = {d: config.thresholds(d, uncertainty_tokens) for d in sorted(uncertainty_tokens["dataset"].unique())}
    labels = label_all(uncertainty_tokens, thresholds, config.balanced_classes, config.seed, config.truth_aleatoric_min)
    labels = labels.merge(uncertainty_tokens[["dataset", "doc_id", "position", "small_model"]].drop_duplicates(),
                          on=["dataset", "doc_id", "position"])
    table = label_counts(labels, thresholds)
    context.log.info(f"class counts:\n{table.to_string()}")
    plot = entropy_scatter(labels, thresholds)
    yield dg.Output(labels, metadata={
        "class_counts": markdown_table(table),
        "thresholds": dg.MetadataValue.json({d: vars(t) | {"entropy_max": str(t.entropy_max)}
                                             for d, t in thresholds.items()}),
        "threshold_note": "paper: 2.0 / 0.2 / 0.1 nats (LLaMA, 32k vocabulary). Facts pair: floor 1.0 and delta 0.5 "
                          "read off the demo token table (see the config's description); pairs in quantile_pairs "
                          f"({config.quantile_pairs}) take thresholds from their own entropy quantiles (floor = median "
                          "H_small, confident = lowest quartile of H_large, as unsure = lowest quartile of |dH|).",
        "entropy_scatter": figure_metadata(plot, "uncertainty/entropy_scatter", warehouse.root, context.run.run_id)})
    passed, numbers = balance_holds(labels, config.balanced_classes)
    yield dg.AssetCheckResult(check_name="classes_balanced_per_token", passed=passed, metadata=numbers)


# ---------------------------------------------------------------------------------------------- probes
class UncertaintyProbeConfig(StudyConfig):
    """Probe kinds, the layer used across domains and against the truth, and the MLP's size."""

    kinds: list[str] = Field(default=["linear", "mlp"], description="probes trained: linear (logistic "
                             "regression) and/or mlp (one hidden layer)")
    probe_layer: int = Field(default=-1, description="index into the kept layers: the chosen layer (-1: last)")
    hidden_units: int = Field(default=pick(tiny=32, demo=64, gpu=256), description="hidden units of the MLP probe")
    max_iter: int = Field(default=pick(tiny=100, demo=200, gpu=400), description="most training epochs of the "
                          "MLP probe (early stopping); the linear probe gets 3x this many iterations")
    blas_threads: int = Field(default=pick(tiny=1, demo=1, gpu=0), description="BLAS threads (0: library default)")
    seed: int = 0


CROSS = [("code", "code_pair_on_facts"), ("code_pair_on_facts", "code"), ("facts", "code"), ("code", "facts")]


@dg.multi_asset(
    outs={"uncertainty_probe_auc": dg.AssetOut(is_required=False, group_name=GROUP, code_version="1", tags=stage("evaluation"),
                                               description="AUC per (train dataset, test dataset, method, layer, "
                                                           "target): held out, across domains, against the truth."),
          "uncertainty_probe_scores": dg.AssetOut(is_required=False, group_name=GROUP, code_version="1", tags=stage("evaluation"),
                                                  description="Held-out scores per token of the entropy baseline and "
                                                              "the probes at the chosen layer (ROC curves).")},
    ins={"tokens": dg.AssetIn("uncertainty_tokens"), "labels": dg.AssetIn("uncertainty_labels")},
    can_subset=True,
)
@yields_selected
def uncertainty_probes(context: dg.AssetExecutionContext, config: UncertaintyProbeConfig, warehouse: WarehousePaths,
                       tokens: pd.DataFrame, labels: pd.DataFrame):
    """Train linear and MLP probes per layer on balanced labelled tokens of the train split, compare with the
    small-model entropy baseline on the test split; transfer across domains; score against the facts truth."""
    from threadpoolctl import threadpool_limits

    from assets.uncertainty.plots import auc_by_layer
    from assets.uncertainty.study import run_probes

    started = time.time()
    with threadpool_limits(config.blas_threads or None):  # small matrices: one BLAS thread avoids spinning
        auc, scores = run_probes(tokens, labels, kinds=config.kinds, probe_layer=config.probe_layer, cross=CROSS,
                                 seed=config.seed, hidden_units=config.hidden_units, max_iter=config.max_iter,
                                 log=context.log.info)
    context.log.info(f"probes took {time.time() - started:.1f}s")
    yield dg.Output(auc, output_name="uncertainty_probe_auc", metadata={
        "auc": markdown_table(auc, max_rows=80), "seconds": round(time.time() - started, 1),
        "auc_by_layer": figure_metadata(auc_by_layer(auc), "uncertainty/auc_by_layer", warehouse.root,
                                        context.run.run_id)})
    yield dg.Output(scores, output_name="uncertainty_probe_scores", metadata={"rows": len(scores)})


# ------------------------------------------------------------------------------------------------ ICLT
class UncertaintyIcltConfig(StudyConfig):
    """The in-context learning test on a sample of labelled tokens (its forward passes are batched)."""

    datasets: list[str] = Field(default=pick(tiny=["facts"], demo=["facts", "code"], gpu=["facts", "code"]),
                                description="datasets whose labelled tokens the test scores")
    max_tokens: int = Field(default=pick(tiny=40, demo=600, gpu=4000), description="tokens scored per dataset")
    top_k: int = Field(default=pick(tiny=4, demo=10, gpu=10), description="candidates per prompt (paper 10)")
    facts_max_continuation: int = Field(default=16, description="greedy tokens after a candidate, facts pair")
    code_max_continuation: int = Field(default=pick(tiny=12, demo=16, gpu=48), description="the same, code pair")
    facts_sentence_end: list[str] = Field(default=["."], description="tokens ending a sentence, facts pair")
    code_sentence_end: list[str] = Field(default=["\n"], description="tokens ending a 'sentence', code pair")
    batch_size: int = pick(tiny=64, demo=128, gpu=512)
    seed: int = 0
    cpu_threads: int = step_threads()


@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"), pool="gpu",
          ins={"labels": dg.AssetIn("uncertainty_labels"), "facts_documents": dg.AssetIn("facts_documents"),
               "code_corpus": dg.AssetIn("code_corpus")})
def uncertainty_iclt(context: dg.AssetExecutionContext, config: UncertaintyIcltConfig, tracking: Tracking,
                     compute: Compute, labels: pd.DataFrame, facts_documents: pd.DataFrame, code_corpus: pd.DataFrame):
    """ICLT scores per sampled token: the small model's top-k candidates, each continued greedily to a
    sentence end and put in context before the prompt repeats; mutual information between the original
    top-k distribution and the in-context ones (``mi``), with H(Y), H(Y|X) and the labels."""
    from assets.lm.threads import torch_threads
    from assets.uncertainty.study import iclt_auc, run_iclt

    device, started = compute.torch_device(), time.time()
    with torch_threads(config.cpu_threads, device):
        scored = run_iclt(labels, {"facts": facts_documents, "code": code_corpus}, config.datasets,
                          tracking_uri=tracking.resolved_tracking_uri, device=device, max_tokens=config.max_tokens,
                          top_k=config.top_k, batch_size=config.batch_size, seed=config.seed,
                          max_continuation={"facts": config.facts_max_continuation,
                                            "code": config.code_max_continuation},
                          sentence_end={"facts": config.facts_sentence_end, "code": config.code_sentence_end},
                          log=context.log.info, warn=context.log.warning)
    summary = pd.DataFrame(iclt_auc(scored))
    return dg.Output(scored, metadata={"auc": markdown_table(summary), "seconds": round(time.time() - started, 1),
                                       "tokens": len(scored)})


# --------------------------------------------------------------------------------------------- summary
@dg.asset(group_name=GROUP, code_version="1", tags=stage("evaluation"),
          ins={"probe_auc": dg.AssetIn("uncertainty_probe_auc"), "probe_scores": dg.AssetIn("uncertainty_probe_scores"),
               "iclt": dg.AssetIn("uncertainty_iclt")})
def uncertainty_auc(context: dg.AssetExecutionContext, warehouse: WarehousePaths, probe_auc: pd.DataFrame,
                    probe_scores: pd.DataFrame, iclt: pd.DataFrame) -> dg.Output:
    """Every method side by side: probes, entropy baseline and ICLT, against the proxy labels and the truth,
    with ROC curves per method on each dataset's held-out tokens."""
    from assets.uncertainty.plots import roc_figure
    from assets.uncertainty.study import method_table

    table = method_table(probe_auc, iclt)
    plot = figure_metadata(roc_figure(probe_scores, iclt), "uncertainty/roc", warehouse.root, context.run.run_id)
    return dg.Output(table, metadata={"auc": markdown_table(table, max_rows=80), "roc": plot})


# -------------------------------------------------------------------------------------------- findings
FINDINGS_KEY = dg.AssetKey([GROUP, "findings"])


@dg.asset(key_prefix=[GROUP], name="findings", group_name=GROUP, code_version="2", tags=stage("evaluation"),
          ins={"auc": dg.AssetIn("uncertainty_auc"), "labels": dg.AssetIn("uncertainty_labels"),
               "facts_small": dg.AssetIn("lm_facts_small"), "facts_large": dg.AssetIn("lm_facts_large")},
          check_specs=findings_check_specs(FINDINGS_KEY, {k: text for k, (_, text) in CHECKS.items()}))
def uncertainty_findings(auc: pd.DataFrame, labels: pd.DataFrame, facts_small: dict, facts_large: dict):
    """Headline results next to the paper's: probes vs the entropy baseline, transfer across domains, the
    ICLT, and (beyond the paper) every method against the facts world's ground truth."""
    from assets.uncertainty.findings import build_findings, scale_note

    scale = scale_note(labels, facts_small["parameters"], facts_large["parameters"], current_profile())
    findings = build_findings(auc, labels, scale, CROSS, study=GROUP)
    yield from findings_results(findings, {k: metric for k, (metric, _) in CHECKS.items()})


defs = dg.Definitions(assets=[uncertainty_tokens, uncertainty_labels, uncertainty_probes, uncertainty_iclt,
                              uncertainty_auc, uncertainty_findings])
