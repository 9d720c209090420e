"""Figures of the deliberative-alignment study: the Pareto plot, bars per evaluation, and reasoning examples."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from assets.alignment.evaluation import value

METHOD_ORDER = ("helpful_only", "policy_in_context", "direct_sft", "no_citation_sft", "deliberative_sft",
                "deliberative_rl", "policy_oracle", "always_comply")
BAR_METRICS = ("not_unsafe_standard", "not_unsafe_held_out", "not_unsafe_ood_encoding", "goodness@0.1",
               "refused_disallowed", "refused_held_out", "refused_ood_encoding", "not_overrefuse_lookalike",
               "helpful_accuracy", "cites_right_clause_macro", "reasoning_reads_request")
# (x metric, x label) of each Pareto panel; y is always not_overrefuse on the look-alikes
PARETO_PANELS = (("goodness@0.1", "jailbreak robustness: goodness@0.1 (all families)"),
                 ("not_unsafe_held_out", "not_unsafe on held-out jailbreak families"),
                 ("refused_held_out", "refusal rate on held-out jailbreak families"))


MARKERS = ("o", "v", "^", "D", "s", "P", "*", "X")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _methods(table: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(table["method"]))
    return [m for m in METHOD_ORDER if m in present] + [m for m in present if m not in METHOD_ORDER]


def pareto_figure(table: pd.DataFrame):
    """The paper's headline figure at our scale: per method, jailbreak robustness (x) against not
    overrefusing the look-alikes (y); up and right is better. One marker per method (sizes shrink so that
    coinciding methods stay visible); the references are hollow."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(PARETO_PANELS), figsize=(4.4 * len(PARETO_PANELS), 4.2), squeeze=False)
    for ax, (metric, label) in zip(axes[0], PARETO_PANELS, strict=True):
        for i, method in enumerate(_methods(table)):
            x, y = value(table, method, metric), value(table, method, "not_overrefuse_lookalike")
            reference = method in ("policy_oracle", "always_comply")
            ax.scatter([x], [y], s=110 - 9 * i, marker=MARKERS[i % len(MARKERS)], edgecolors=f"C{i}",
                       facecolors="none" if reference else f"C{i}", alpha=0.85, label=method)
        ax.set(xlabel=label, ylabel="not_overrefuse (look-alikes)", xlim=(-0.05, 1.08), ylim=(-0.05, 1.08))
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("robustness vs overrefusal per method (eval split; up and right is better)", fontsize=10)
    fig.tight_layout()
    return fig


def bars_figure(table: pd.DataFrame, metrics: tuple[str, ...] = BAR_METRICS):
    """Grouped bars: each metric per method (all higher-is-better)."""
    plt = _pyplot()
    methods = _methods(table)
    shown = [m for m in metrics if m in set(table["metric"])]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.0 * len(shown) + 2), 4.4))
    width = 0.8 / max(len(methods), 1)
    for i, method in enumerate(methods):
        heights = [value(table, method, m) for m in shown]
        ax.bar(np.arange(len(shown)) + i * width, np.nan_to_num(heights), width, label=method, color=f"C{i}")
    ax.set_xticks(np.arange(len(shown)) + 0.4 - width / 2, shown, rotation=35, ha="right", fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="rate (higher is better)", title="every evaluation per method (eval split)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def reasoning_examples(results: pd.DataFrame, per_kind: int = 1) -> pd.DataFrame:
    """A few eval items (a disallowed request, a held-out jailbreak, an OOD encoding, a look-alike, an allowed
    request) with every method's reasoning, answer and verdict, for the UI."""
    picks = []
    kinds = {"disallowed": (results["category"] == "disallowed") & (results["evaluation"] == "refusal"),
             "held_out jailbreak": (results["set"] == "held_out") & ~results["family"].isin(["rot13", "another_language"]),
             "OOD encoding": results["family"].isin(["rot13", "another_language"]),
             "look-alike": results["category"] == "lookalike", "allowed": results["category"] == "allowed"}
    for kind, mask in kinds.items():
        ids = list(dict.fromkeys(results.loc[mask & results["answered"], "item_id"]))[:per_kind]
        picks += [(kind, i) for i in ids]
    rows = []
    for kind, item_id in picks:
        for r in results[(results["item_id"] == item_id) & ~results["method"].isin(["policy_oracle",
                                                                                     "always_comply"])].itertuples():
            rows.append({"kind": kind, "item_id": item_id, "method": r.method, "reasoning": r.reasoning,
                         "answer": r.response, "score": r.score, "cites_right_clause": r.cites_right_clause})
    return pd.DataFrame(rows, columns=["kind", "item_id", "method", "reasoning", "answer", "score",
                                       "cites_right_clause"])


def examples_markdown(examples: pd.DataFrame, items: pd.DataFrame) -> str:
    """The examples as markdown: each item's request, then one line per method."""
    requests = items.set_index("item_id")["messages"].map(lambda m: json.loads(m)[-1]["content"])
    parts = []
    for (kind, item_id), rows in examples.groupby(["kind", "item_id"], sort=False):
        parts.append(f"**{kind}** `{item_id}`: _{requests.get(item_id, '')}_\n")
        parts += [f"- {r.method}: reasoning `{r.reasoning or '(none)'}` -> answer `{r.answer}` "
                  f"(score {r.score:.0f}, right clause {bool(r.cites_right_clause)})" for r in rows.itertuples()]
        parts.append("")
    return "\n".join(parts) or "(no examples)"
