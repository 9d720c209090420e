"""Presentation helpers every study uses: plots and tables in the UI, and findings next to the paper's.

- ``figure_metadata``: a matplotlib figure saved as PNG under ``<warehouse>/_plots`` and embedded (base64)
  in ``MetadataValue.md`` so the Dagster UI shows it.
- ``markdown_table``: a DataFrame as a markdown table for metadata.
- ``Finding`` / ``findings_frame``: one row per headline result (metric, our value, the paper's value, scale,
  verdict); each study materializes them as its ``<group>.findings`` table, and the catalog unions those into
  one ``findings`` view across studies.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

VERDICTS = ("reproduced", "partially reproduced", "not reproduced", "not comparable")


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def figure_metadata(fig: Any, name: str, warehouse_root: str | Path, run_id: str = "adhoc") -> dg.MetadataValue:
    """Save ``fig`` under ``<root>/_plots/<name>/<run_id>.png`` and return it embedded as markdown."""
    png = figure_png(fig)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    path = Path(warehouse_root) / "_plots" / safe / f"{run_id}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    encoded = base64.b64encode(png).decode()
    return dg.MetadataValue.md(f"![{safe}](data:image/png;base64,{encoded})\n\n`{path}`")


def markdown_table(df: pd.DataFrame, max_rows: int = 30, floatfmt: str = ".4g") -> dg.MetadataValue:
    """A DataFrame as a markdown table (first ``max_rows`` rows) for asset metadata."""
    shown = df.head(max_rows)
    text = shown.to_markdown(index=False, floatfmt=floatfmt)
    if len(df) > max_rows:
        text += f"\n\n… {len(df) - max_rows} more rows"
    return dg.MetadataValue.md(text)


@dataclass(frozen=True)
class Finding:
    """One headline result of a study, side by side with the paper's."""

    study: str
    metric: str
    ours: float
    paper: float | None
    scale: str  # e.g. "demo profile: 4M-param models, 2M tokens" — what our number was measured at
    verdict: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"Finding.verdict={self.verdict!r}; expected one of {VERDICTS}")


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    """Findings as the rows of a study's ``findings`` table."""
    columns = list(Finding.__dataclass_fields__)
    return pd.DataFrame([asdict(f) for f in findings], columns=columns)


def findings_metadata(findings: list[Finding]) -> dict[str, dg.MetadataValue]:
    """Each finding's our-vs-paper pair as metadata, plus the whole table."""
    meta: dict[str, dg.MetadataValue] = {"findings": markdown_table(findings_frame(findings))}
    for f in findings:
        meta[f"{f.metric} (ours)"] = dg.MetadataValue.float(float(f.ours))
        if f.paper is not None:
            meta[f"{f.metric} (paper)"] = dg.MetadataValue.float(float(f.paper))
    return meta
