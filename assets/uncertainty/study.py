"""The study end to end on token tables: labels per dataset, probes per layer (held out, across domains,
against the truth), and the ICLT on a sample of labelled tokens.

Datasets: ``facts`` (the facts pair on held-out facts documents, with ground truth), ``code`` (the code pair on
held-out code) and ``code_pair_on_facts`` (the same code pair reading facts documents: the paper's cross-domain
test needs one model reading two domains). Embedding probes transfer between datasets read by the same pair;
the output probe (the small model's top-k log-probabilities, model-agnostic) also transfers between pairs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from assets.uncertainty.labels import ALEATORIC, EPISTEMIC, UNLABELLED, Thresholds, label_table
from assets.uncertainty.probes import KINDS, evaluate, probe_scores, roc_auc, stack_column

KEY = ["dataset", "doc_id", "position"]
OUTPUT_FEATURE = "small_topk_logprobs"
TRUTH_TRAIN_MAX = 2000  # tokens for the probe trained on truth labels


def hidden_layers(tokens: pd.DataFrame) -> list[int]:
    """Layers with a hidden-state column (some datasets leave deeper columns empty)."""
    return sorted(int(c.removeprefix("hidden_l")) for c in tokens.columns if c.startswith("hidden_l"))


def label_all(tokens: pd.DataFrame, thresholds: dict[str, Thresholds], balanced: bool, seed: int,
              truth_aleatoric_min: float | None) -> pd.DataFrame:
    """Labels of every dataset (thresholds per dataset); rows keyed by (dataset, doc_id, position)."""
    frames = []
    for dataset, group in tokens.groupby("dataset", sort=True):
        if dataset not in thresholds:
            raise ValueError(f"no thresholds for dataset {dataset!r}; have {sorted(thresholds)}")
        labels = label_table(group, thresholds[dataset], balanced=balanced, seed=seed,
                             truth_aleatoric_min=truth_aleatoric_min)
        cols = ["dataset", "doc_id", "split", "position", "token_id", "small_entropy", "large_entropy"]
        extra = [c for c in ("true_entropy", "is_fact", "slot") if c in group.columns]
        th = thresholds[dataset]
        frames.append(pd.concat([group[cols + extra], labels], axis=1).assign(
            entropy_min=th.entropy_min, zero_entropy=th.zero_entropy, entropy_delta=th.entropy_delta,
            # only quantile_thresholds makes overlapping thresholds: they were read off this run's entropies
            threshold_source="quantiles" if th.allow_overlap else "fixed"))
    out = pd.concat(frames, ignore_index=True)
    if "is_fact" in out.columns:
        out["is_fact"] = out["is_fact"].astype("boolean")
    return out


def _features(frame: pd.DataFrame, feature: str) -> np.ndarray:
    if feature == "small_entropy":
        return frame[["small_entropy"]].to_numpy(float)
    return stack_column(frame[feature].tolist())


def _usable(frame: pd.DataFrame, feature: str) -> pd.DataFrame:
    return frame[frame[feature].notna()] if feature in frame.columns else frame.iloc[0:0]


def run_probes(tokens: pd.DataFrame, labels: pd.DataFrame, *, kinds: Sequence[str] = KINDS, probe_layer: int = -1,
               cross: Sequence[tuple[str, str]] = (), seed: int = 0, hidden_units: int = 64, max_iter: int = 300,
               log: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(AUC table, held-out scores). AUC rows: train/test dataset, method, feature, layer, target
    ("proxy" labels or "truth"), auc, n_train, n_test. Scores: per held-out token and method, for ROC curves."""
    data = tokens.merge(labels[KEY + ["label", "kept", "truth_label"]], on=KEY, how="inner")
    options = {"hidden_units": hidden_units, "max_iter": max_iter}
    rows, scores = [], []

    def fit_and_score(kind, train, test, feature, train_set, test_set, layer, record_scores):
        tr, te = _usable(train, feature), _usable(test, feature)
        if min(len(tr), len(te)) == 0 or tr["label"].nunique() < 2 or te["label"].nunique() < 2:
            rows.append({"train_dataset": train_set, "test_dataset": test_set, "method": kind, "feature": feature,
                         "layer": layer, "target": "proxy", "auc": math.nan, "n_train": len(tr), "n_test": len(te)})
            return None
        try:
            auc, s, probe = evaluate("linear" if kind == "entropy" else kind, _features(tr, feature),
                                     tr["label"].to_numpy(), _features(te, feature), te["label"].to_numpy(),
                                     seed, **options)
        except ValueError:  # a class too small to fit this probe
            auc, s, probe = math.nan, None, None
        rows.append({"train_dataset": train_set, "test_dataset": test_set, "method": kind, "feature": feature,
                     "layer": layer, "target": "proxy", "auc": auc, "n_train": len(tr), "n_test": len(te)})
        if record_scores and s is not None:
            scores.append(te[KEY + ["label", "truth_label"]].assign(method=kind, feature=feature, layer=layer, score=s))
        return probe

    by_set = {name: group for name, group in data.groupby("dataset", sort=True)}
    for name, group in by_set.items():
        train = group[group["kept"] & (group["split"] == "train")]
        test = group[group["kept"] & (group["split"] == "test")]
        layers = [layer for layer in hidden_layers(group) if group[f"hidden_l{layer}"].notna().any()]
        chosen = layers[probe_layer] if layers else None
        has_truth = bool((group["truth_label"] != UNLABELLED).any())
        probe = fit_and_score("entropy", train, test, "small_entropy", name, name, -1, True)
        if probe is not None and has_truth:
            rows.extend(_truth_rows(probe, "entropy", group, "small_entropy", -1, train, seed, options))
        fit_and_score("linear", train, test, OUTPUT_FEATURE, name, name, -1, False)
        for layer in layers:
            for kind in kinds:
                probe = fit_and_score(kind, train, test, f"hidden_l{layer}", name, name, layer, layer == chosen)
                if layer == chosen and probe is not None and has_truth:
                    rows.extend(_truth_rows(probe, kind, group, f"hidden_l{layer}", layer, train, seed, options))
        if log:
            log(f"probes on {name}: {len(train)} train / {len(test)} test labelled tokens, layers {layers}")

    for source, target in cross:
        if source not in by_set or target not in by_set:
            continue
        train = by_set[source][by_set[source]["kept"] & (by_set[source]["split"] == "train")]
        test = by_set[target][by_set[target]["kept"] & (by_set[target]["split"] == "test")]
        fit_and_score("entropy", train, test, "small_entropy", source, target, -1, False)
        fit_and_score("linear", train, test, OUTPUT_FEATURE, source, target, -1, False)
        if pair_of(source) == pair_of(target):
            layers = [la for la in hidden_layers(train) if train[f"hidden_l{la}"].notna().any()
                      and test[f"hidden_l{la}"].notna().any()]
            if layers:
                for kind in kinds:
                    fit_and_score(kind, train, test, f"hidden_l{layers[probe_layer]}", source, target,
                                  layers[probe_layer], False)
    auc = pd.DataFrame(rows)
    score_frame = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(
        columns=KEY + ["label", "truth_label", "method", "feature", "layer", "score"])
    return auc, score_frame


def pair_of(dataset: str) -> str:
    """The model pair that read a dataset ("code_pair_on_facts" -> "code")."""
    return dataset.split("_pair_on_")[0]


def corpus_of(dataset: str) -> str:
    """The corpus a dataset read ("code_pair_on_facts" -> "facts")."""
    return dataset.split("_pair_on_")[-1]


def _truth_rows(probe: Any, kind: str, group: pd.DataFrame, feature: str, layer: int, proxy_train: pd.DataFrame,
                seed: int, options: dict) -> list[dict]:
    """The proxy-trained probe scored against the ground truth on every uncertain held-out token, and a probe
    trained on truth labels (the ceiling the proxy labels could reach)."""
    truth = group[(group["truth_label"] != UNLABELLED) & group[feature].notna()]
    train, test = truth[truth["split"] == "train"], truth[truth["split"] == "test"]
    if len(train) > TRUTH_TRAIN_MAX:  # the ceiling needs no more: a seeded subsample keeps the step fast
        train = train.sample(n=TRUTH_TRAIN_MAX, random_state=seed)
    y_test = test["truth_label"].to_numpy()
    rows = [{"train_dataset": group["dataset"].iat[0], "test_dataset": group["dataset"].iat[0], "method": kind,
             "feature": feature, "layer": layer, "target": "truth", "n_train": len(proxy_train), "n_test": len(test),
             "auc": roc_auc(y_test, probe_scores(probe, _features(test, feature))) if len(test) else math.nan}]
    try:
        auc, _, _ = evaluate("linear" if kind == "entropy" else kind, _features(train, feature),
                             train["truth_label"].to_numpy(),
                             _features(test, feature), y_test, seed, **options)
    except ValueError:
        auc = math.nan
    rows.append({**rows[0], "method": f"{kind}_truth_trained", "n_train": len(train), "auc": auc})
    return rows


def iclt_sample(labels: pd.DataFrame, dataset: str, max_tokens: int, seed: int = 0) -> pd.DataFrame:
    """Rows the ICLT scores: balanced proxy-labelled tokens and (facts) truth-labelled uncertain tokens, up to
    ``max_tokens``, half the budget for each kind where both exist."""
    rows = labels[labels["dataset"] == dataset]
    kept = rows[rows["kept"]]
    truth_only = rows[(rows["truth_label"] != UNLABELLED) & ~rows["kept"]]
    n_kept = min(len(kept), max_tokens if truth_only.empty else max(max_tokens // 2, max_tokens - len(truth_only)))
    n_truth = min(len(truth_only), max_tokens - n_kept)
    picked = pd.concat([kept.sample(n=n_kept, random_state=seed), truth_only.sample(n=n_truth, random_state=seed)])
    return picked.sort_values(KEY).reset_index(drop=True)


def iclt_auc(scored: pd.DataFrame) -> list[dict]:
    """AUC of the ICLT score: the 1-D logistic classifier fitted on the train split, evaluated on the test
    split, against the proxy labels (kept rows) and the truth; plus the raw score's in-sample AUC."""
    from assets.uncertainty.iclt import fit_score_classifier

    rows = []
    for dataset, group in scored.groupby("dataset", sort=True):
        proxy = group[group["kept"]]
        train, test = proxy[proxy["split"] == "train"], proxy[proxy["split"] == "test"]
        base = {"train_dataset": dataset, "test_dataset": dataset, "method": "iclt", "feature": "mutual_information",
                "layer": -1}
        try:
            p_test, slope = fit_score_classifier(train["mi"], train["label"], test["mi"])
            auc = roc_auc(test["label"].to_numpy(), p_test)
        except ValueError:
            slope, auc = math.nan, math.nan
        rows.append({**base, "target": "proxy", "auc": auc, "n_train": len(train), "n_test": len(test),
                     "slope": slope, "auc_in_sample": roc_auc(proxy["label"].to_numpy(), proxy["mi"].to_numpy()),
                     "mean_mi_epistemic": float(proxy.loc[proxy["label"] == EPISTEMIC, "mi"].mean()),
                     "mean_mi_aleatoric": float(proxy.loc[proxy["label"] == ALEATORIC, "mi"].mean()),
                     "mean_h_x": float(group["h_x"].mean())})
        truth = group[group["truth_label"] != UNLABELLED]
        t_train, t_test = truth[truth["split"] == "train"], truth[truth["split"] == "test"]
        if len(truth):
            try:
                p_truth, t_slope = fit_score_classifier(t_train["mi"], t_train["truth_label"], t_test["mi"])
                t_auc = roc_auc(t_test["truth_label"].to_numpy(), p_truth)
            except ValueError:
                t_slope, t_auc = math.nan, math.nan
            rows.append({**base, "target": "truth", "auc": t_auc, "n_train": len(t_train), "n_test": len(t_test),
                         "slope": t_slope, "auc_in_sample": roc_auc(truth["truth_label"].to_numpy(),
                                                                    truth["mi"].to_numpy()),
                         "mean_mi_epistemic": float(truth.loc[truth["truth_label"] == EPISTEMIC, "mi"].mean()),
                         "mean_mi_aleatoric": float(truth.loc[truth["truth_label"] == ALEATORIC, "mi"].mean()),
                         "mean_h_x": float(group["h_x"].mean())})
    return rows


def run_iclt(labels: pd.DataFrame, documents: dict[str, pd.DataFrame], datasets: Sequence[str], *,
             tracking_uri: str, device: str = "cpu", max_tokens: int, top_k: int, batch_size: int,
             max_continuation: dict[str, int], sentence_end: dict[str, Sequence[str]], seed: int = 0,
             log: Callable[[str], None] = print, warn: Callable[[str], None] | None = None) -> pd.DataFrame:
    """The ICLT on a sample of each dataset's labelled tokens (`iclt_sample`), read by the small model that
    labelled them; ``max_continuation`` and ``sentence_end`` per pair. Rows: the sample with the scores."""
    from assets.lm.registry import load_model
    from assets.uncertainty.iclt import IcltSettings, iclt, sentence_end_ids
    from assets.uncertainty.tokens import encode_document

    texts = {corpus: frame.set_index("doc_id")["text"] for corpus, frame in documents.items()}
    frames, started = [], time.time()
    for dataset in datasets:
        sample = iclt_sample(labels, dataset, max_tokens, seed)
        if sample.empty:
            (warn or log)(f"{dataset}: no labelled tokens to score")
            continue
        pair = pair_of(dataset)
        model, tokenizer = load_model(sample["small_model"].iat[0], tracking_uri, device=device)
        encoded = {d: encode_document(tokenizer, texts[corpus_of(dataset)][d]) for d in sample["doc_id"].unique()}
        prompts = [encoded[d][:p + 1] for d, p in zip(sample["doc_id"], sample["position"], strict=True)]
        scores = iclt(model, prompts, bos_id=tokenizer.bos_token_id, eos_id=tokenizer.eos_token_id,
                      pad_id=tokenizer.pad_token_id or 0, context_length=int(model.config.max_position_embeddings),
                      end_ids=sentence_end_ids(tokenizer, sentence_end[pair]),
                      settings=IcltSettings(top_k, max_continuation[pair], batch_size),
                      log=lambda m, n=dataset: log(f"{n}: {m}"))
        frames.append(sample.drop(columns=["small_model"]).assign(
            mi=scores["mi"], h_y=scores["h_y"], h_y_given_x=scores["h_y_given_x"], h_x=scores["h_x"],
            continuation_length=scores["continuation_length"]))
        log(f"{dataset}: ICLT on {len(sample)} tokens, {time.time() - started:.1f}s so far")
    return pd.concat(frames, ignore_index=True)


def method_table(probe_auc: pd.DataFrame, iclt_scored: pd.DataFrame) -> pd.DataFrame:
    """Every method side by side: the probes' and the entropy baseline's AUC rows, then the ICLT's."""
    return pd.concat([probe_auc, pd.DataFrame(iclt_auc(iclt_scored))], ignore_index=True)


__all__ = ["ALEATORIC", "EPISTEMIC", "UNLABELLED", "label_all", "run_probes", "iclt_sample", "iclt_auc", "pair_of", "corpus_of",
           "run_iclt", "method_table"]
