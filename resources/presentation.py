"""Presentation helpers every study uses: plots and tables in the UI, and findings next to the paper's.

- ``figure_metadata``: a matplotlib figure saved as PNG under ``<warehouse>/_plots`` (the report shows it), and
  a thumbnail of it embedded (base64) in ``MetadataValue.md`` so the Dagster UI shows it inline.
- ``markdown_table``: a DataFrame as a markdown table for metadata.
- ``findings_results`` / ``findings_check_specs``: a study's list of `assets.findings.Finding` (the contract:
  ours, the reference and its source, the rule, the verdict computed from it, post-hoc choices) as its
  ``<group>.findings`` table and its WARN checks; the catalog unions those tables into one ``findings`` view.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from assets import findings as contract

THUMBNAIL_DPI = 36  # the UI's inline picture: about a tenth of the full PNG's bytes in the event log


def figure_metadata(fig: Any, name: str, warehouse_root: str | Path, run_id: str = "adhoc") -> dg.MetadataValue:
    """Save ``fig`` at full size under ``<root>/_plots/<name>/<run_id>.png`` (what the report shows) and return
    a small thumbnail of it embedded as markdown, with the file's path: the event log keeps kilobytes per
    plot, not the full picture."""
    import matplotlib.pyplot as plt

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    path = Path(warehouse_root) / "_plots" / safe / f"{run_id}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=THUMBNAIL_DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    encoded = base64.b64encode(buf.getvalue()).decode()
    return dg.MetadataValue.md(f"![{safe}](data:image/png;base64,{encoded})\n\nfull size: `{path}`")


def markdown_table(df: pd.DataFrame, max_rows: int = 30, floatfmt: str = ".4g") -> dg.MetadataValue:
    """A DataFrame as a markdown table (first ``max_rows`` rows) for asset metadata."""
    shown = df.head(max_rows)
    text = shown.to_markdown(index=False, floatfmt=floatfmt)
    if len(df) > max_rows:
        text += f"\n\n… {len(df) - max_rows} more rows"
    return dg.MetadataValue.md(text)


# ------------------------------------------------------------------------- the findings contract's factory
def contract_metadata(findings: list[contract.Finding]) -> dict[str, dg.MetadataValue]:
    """Each finding's ours-vs-reference pair as metadata, plus the whole table."""
    table = contract.findings_frame(findings)[["metric", "ours", "reference", "source", "rule", "verdict",
                                               "post_hoc"]]
    meta: dict[str, dg.MetadataValue] = {"findings": markdown_table(table)}
    for f in findings:
        meta[f"{f.metric} (ours)"] = dg.MetadataValue.float(float(f.ours))
        if f.reference is not None:
            meta[f"{f.metric} ({f.source})"] = dg.MetadataValue.float(float(f.reference))
    return meta


def findings_check_specs(key: dg.AssetKey | str, checks: dict[str, str]) -> list[dg.AssetCheckSpec]:
    """WARN checks on a study's findings asset: ``checks`` maps check name -> what it claims."""
    return [dg.AssetCheckSpec(name, asset=key, description=f"{text} (WARN: a finding, not a bug)")
            for name, text in checks.items()]


def findings_results(findings: list[contract.Finding], checks: dict[str, str]):
    """The findings asset's output and its WARN checks; ``checks`` maps check name -> the metric it reads.

    Yields the ``Output`` (the findings table of `assets.findings`, both numbers in metadata) and one
    ``AssetCheckResult`` per check, passed when that finding's verdict is "reproduced" (or "verified").
    """
    frame = contract.findings_frame(findings)
    problems = contract.check_findings_frame(frame)
    if problems:  # Finding computes its verdict, so this guards only against a changed table
        raise ValueError("findings break their own rules: " + "; ".join(problems))
    yield dg.Output(frame, metadata=contract_metadata(findings))
    by_metric = {f.metric: f for f in findings}
    for name, metric in checks.items():
        if metric not in by_metric:
            raise KeyError(f"check {name!r} reads finding {metric!r}, which is not among {sorted(by_metric)}")
        f = by_metric[metric]
        yield dg.AssetCheckResult(
            check_name=name, severity=dg.AssetCheckSeverity.WARN, passed=f.passed,
            metadata={"metric": f.metric, "ours": f.ours,
                      "reference": f.reference if f.reference is not None else "none (qualitative)",
                      "source": f.source, "rule": f.rule_text(), "verdict": f.verdict,
                      "post_hoc": f.post_hoc or "none", "note": f.note})
