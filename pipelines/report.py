"""The lab report: one static HTML page built from the DuckDB catalog, with no network assets.

Per study (catalog schema): its findings next to the paper's, when and from which runs they were computed,
the trend of each headline metric over materializations, its tables, and its latest plots (embedded PNGs).
"""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from resources.catalog import list_views, query

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2.5rem;border-bottom:1px solid #aaa}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .5rem}
th{background:#f2f2f2}.verdict-reproduced{color:#176117}.verdict-not{color:#a11}.muted{color:#777;font-size:.85rem}
img{max-width:100%;border:1px solid #ddd;margin:.5rem 0}
"""


def _table(df: pd.DataFrame, max_rows: int = 20) -> str:
    shown = df.head(max_rows).copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    return shown.to_html(index=False, escape=True, border=0) + (
        f'<p class="muted">{len(df) - max_rows} more rows</p>' if len(df) > max_rows else "")


def _plots(root: Path, group: str) -> list[tuple[str, Path]]:
    """The newest PNG of every plot of a group (plots live at ``_plots/<group>_<name>/<run>.png``)."""
    found = []
    for folder in sorted((root / "_plots").glob(f"{group}_*")):
        pngs = sorted(folder.glob("*.png"), key=lambda p: p.stat().st_mtime)
        if pngs:
            found.append((folder.name.removeprefix(f"{group}_"), pngs[-1]))
    return found


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption class="muted">{html.escape(alt)}</figcaption></figure>'


def build_report(root: str | Path) -> str:
    """The report as one HTML string."""
    root = Path(root)
    views = list_views(root)
    groups = sorted(set(views.loc[views["schema"] != "main", "schema"]))
    has_findings = ((views["schema"] == "main") & (views["view"] == "findings")).any()
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>reprolab report</title><style>{_CSS}</style></head><body>",
             "<h1>reprolab report</h1>",
             f"<p class='muted'>built {datetime.now(UTC):%Y-%m-%d %H:%M UTC} from {html.escape(str(root.resolve()))}</p>"]
    if has_findings:
        findings = query(root, "SELECT study, metric, ours, paper, verdict, scale, note, materialized_at, run_id FROM findings ORDER BY study, metric")
        parts += ["<h2>Findings: ours next to the papers'</h2>", _table(findings, 200)]
    for group in groups:
        parts.append(f"<h2 id='{html.escape(group)}'>{html.escape(group)}</h2>")
        names = views.loc[(views["schema"] == group) & ~views["view"].str.endswith("_history"), "view"].tolist()
        if "findings" in names:
            trend = query(root, f'SELECT metric, materialized_at, ours, paper, verdict FROM "{group}".findings_history ORDER BY metric, materialized_at')
            parts += ["<h3>Headline metrics over time</h3>", _table(trend, 60)]
        rows = []
        for name in names:
            stats = query(root, f'SELECT count(*) AS n, max(materialized_at) AS at, any_value(run_id) AS run, any_value(upstream) AS up FROM "{group}"."{name}"').iloc[0]
            rows.append({"table": f"{group}.{name}", "rows": int(stats["n"]), "materialized_at": str(stats["at"])[:19],
                         "run_id": str(stats["run"])[:8], "upstream": str(stats["up"])[:160]})
        parts += ["<h3>Tables (latest materialization, with lineage)</h3>", _table(pd.DataFrame(rows), 100)]
        plots = _plots(root, group)
        if plots:
            parts.append("<h3>Figures</h3>")
            parts += [_img(path, f"{group}/{name}") for name, path in plots]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(root: str | Path, out: str | Path | None = None) -> Path:
    """Write the report to ``out`` (default ``<root>/report/index.html``) and return its path."""
    target = Path(out) if out else Path(root) / "report" / "index.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(build_report(root), encoding="utf-8")
    return target
