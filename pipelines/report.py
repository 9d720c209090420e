"""The lab report: one static HTML page built from the DuckDB catalog, with no network assets.

Per study (catalog schema): its findings next to the paper's, when and from which runs they were computed,
the trend of each headline metric over materializations, its tables, and its latest plots (embedded PNGs).
"""

from __future__ import annotations

import base64
import html
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from resources.catalog import list_views, query

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2.5rem;border-bottom:1px solid #aaa}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem;max-width:100%}td,th{border:1px solid #ccc;padding:.25rem .5rem}
td{overflow-wrap:anywhere}table.findings{width:100%;table-layout:fixed}table.findings td{word-break:break-word}
table.findings col.study{width:9%}table.findings col.metric{width:19%}table.findings col.number{width:8%}
table.findings col.source{width:8%}table.findings col.rule{width:20%}table.findings col.verdict{width:11%}
table.findings col.post-hoc{width:17%}
th{background:#f2f2f2}td{vertical-align:top}.verdict-reproduced{color:#176117}.verdict-not{color:#a11}
.verdict-other{color:#8a5a00}.muted{color:#777;font-size:.85rem}details summary{cursor:pointer;color:#555;font-size:.8rem}
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


def _sparkline(values: list[float], width: int = 160, height: int = 28) -> str:
    """An inline SVG line of a metric over materializations (no script, no network)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < 2:
        return ""
    lo, hi = min(finite), max(finite)
    span = (hi - lo) or 1.0
    step = (width - 4) / (len(finite) - 1)
    points = " ".join(f"{2 + i * step:.1f},{height - 3 - (v - lo) / span * (height - 6):.1f}" for i, v in enumerate(finite))
    return (f'<svg class="trend" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{points}"/></svg>')


def _trend_table(history: pd.DataFrame) -> str:
    """One row per headline metric: the latest value, the paper's, the verdict, and its trend over nights."""
    rows = []
    for metric, runs in history.groupby("metric", sort=True):
        runs = runs.sort_values("materialized_at")
        last = runs.iloc[-1]
        reference = last["reference"] if pd.notna(last.get("reference")) else last.get("paper")
        rows.append(f"<tr><td>{html.escape(str(metric))}</td><td>{_number(last['ours'])}</td>"
                    f"<td>{_number(reference)}</td><td>{html.escape(str(last['verdict']))}</td><td>{len(runs)}</td>"
                    f"<td>{_sparkline([float(v) for v in runs['ours']])}</td></tr>")
    head = ("<tr><th>metric</th><th>latest</th><th>reference</th><th>verdict</th><th>materializations</th>"
            "<th>trend</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _number(value) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.4g}"


# Counts the figures the browser decoded: the report's own check that nothing failed to render.
_FIGURE_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-figures', String(imgs.length));
  document.body.setAttribute('data-figures-rendered', String(ok));
});
</script>"""


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else html.escape(str(value))


def _folded(value, css: str, shown: int = 60) -> str:
    """``value`` as text in a span; a longer one than ``shown`` characters as its start, the whole folded under it."""
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    if len(text) <= shown:
        return f"<span class='{css}'>{html.escape(text)}</span>" if text else ""
    start = text[:shown].rsplit(" ", 1)[0]
    return f"<details class='{css}'><summary>{html.escape(start)} …</summary>{html.escape(text)}</details>"


def _findings_section(findings: pd.DataFrame, has_rules: bool = True) -> str:
    """The findings with a rule first (they turn ours into a verdict; `reprolab summary` shows the same ones), in
    one table by study and metric; then each study's descriptive rows (no rule: numbers recorded beside them),
    folded away under a `<details>` per study. A table older than the findings contract (``has_rules`` False: no
    `comparison` column) has every row in the first table."""
    ruled = findings["comparison"].notna() if has_rules else pd.Series(True, index=findings.index)
    parts = [_findings_table(findings[ruled])]
    descriptive = findings[~ruled]
    if len(descriptive):
        parts.append(f"<h3>Descriptive rows (no rule: numbers recorded beside the findings), {len(descriptive)} "
                     "in all</h3>")
        for study, rows in descriptive.groupby("study", sort=True):
            parts.append(f"<details class='descriptive'><summary>{_text(study)}: {len(rows)} descriptive "
                         f"row{'s' if len(rows) > 1 else ''}</summary>{_findings_table(rows)}</details>")
    return "\n".join(parts)


def _findings_table(findings: pd.DataFrame) -> str:
    """Ours next to the reference and where it comes from, the rule, the verdict and any choice made after seeing
    results, one row per metric; the long notes fold away under each verdict."""
    rows = []
    for r in findings.to_dict("records"):
        verdict = str(r["verdict"])
        css = "verdict-reproduced" if verdict in ("reproduced", "verified") else (
            "verdict-not" if verdict in ("not reproduced", "not verified") else "verdict-other")
        note = f"<details><summary>note</summary>{_text(r['note'])}</details>" if _text(r["note"]) else ""
        reference = r["reference"] if pd.notna(r.get("reference")) else r.get("paper")
        source = _text(r.get("source")) or ("paper" if pd.notna(r.get("paper")) else "")
        post_hoc = _folded(r.get("post_hoc"), "post-hoc")
        rows.append(f"<tr><td><a href='#{_text(r['study'])}'>{_text(r['study'])}</a></td>"
                    f"<td>{_text(r['metric'])}</td><td>{_number(r['ours'])}</td><td>{_number(reference)}</td>"
                    f"<td>{source}</td><td class='muted'>{_text(r.get('rule'))}</td>"
                    f"<td class='{css}'>{html.escape(verdict)}{note}</td><td class='muted'>{post_hoc}</td></tr>")
    columns = ("<colgroup><col class='study'><col class='metric'><col class='number'><col class='number'>"
               "<col class='source'><col class='rule'><col class='verdict'><col class='post-hoc'></colgroup>")
    head = ("<tr><th>study</th><th>metric</th><th>ours</th><th>reference</th><th>source</th><th>rule</th>"
            "<th>verdict</th><th>chosen after seeing results</th></tr>")
    return f"<table class='findings'>{columns}{head}{''.join(rows)}</table>"


def _columns(root: Path, relation: str) -> set[str]:
    return set(query(root, f"DESCRIBE {relation}")["column_name"])


def _select(root: Path, relation: str, columns: tuple[str, ...], order: str) -> pd.DataFrame:
    """``columns`` of ``relation`` that exist (tables written before the findings contract lack some), the rest
    as empty columns."""
    have = _columns(root, relation)
    picked = ", ".join(c for c in columns if c in have)
    return query(root, f"SELECT {picked} FROM {relation} ORDER BY {order}").reindex(columns=list(columns))


def _provenance(root: Path, group: str, names: list[str]) -> tuple[str, pd.DataFrame]:
    """When the group was last computed, by which runs, from which registered models; and its tables' lineage."""
    rows, models = [], set()
    for name in names:
        stats = query(root, f'SELECT count(*) AS n, max(materialized_at) AS at, any_value(run_id) AS run, '
                            f'any_value(upstream) AS up FROM "{group}"."{name}"').iloc[0]
        models.update(re.findall(r"models:/[\w.\-]+/\d+", str(stats["up"])))
        rows.append({"table": f"{group}.{name}", "rows": int(stats["n"]), "materialized_at": str(stats["at"])[:19],
                     "run_id": str(stats["run"])[:8], "upstream": str(stats["up"])[:160]})
    lineage = pd.DataFrame(rows)
    if lineage.empty:
        return "", lineage
    runs = sorted(set(lineage["run_id"]))
    text = (f"last computed {lineage['materialized_at'].max()} UTC by run{'s' if len(runs) > 1 else ''} "
            f"{', '.join(runs)}; models: {', '.join(sorted(models)) or 'none'}")
    return text, lineage


def build_report(root: str | Path) -> str:
    """The report as one HTML string."""
    root = Path(root)
    views = list_views(root)
    groups = sorted(set(views.loc[views["schema"] != "main", "schema"]))
    has_findings = ((views["schema"] == "main") & (views["view"] == "findings")).any()
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>reprolab report</title><style>{_CSS}</style></head><body>",
             "<h1>reprolab report</h1>",
             f"<p class='muted'>built {datetime.now(UTC):%Y-%m-%d %H:%M UTC} from {html.escape(str(root.resolve()))}</p>",
             "<p>" + " · ".join(f"<a href='#{html.escape(g)}'>{html.escape(g)}</a>" for g in groups) + "</p>"]
    if has_findings:
        findings = _select(root, "findings", ("study", "metric", "ours", "reference", "paper", "source", "rule",
                                              "comparison", "verdict", "post_hoc", "note"), "study, metric")
        parts += ["<h2>Findings: ours next to the references, with the rule that judges them</h2>",
                  _findings_section(findings, "comparison" in _columns(root, "findings"))]
    for group in groups:
        parts.append(f"<h2 id='{html.escape(group)}'>{html.escape(group)}</h2>")
        names = views.loc[(views["schema"] == group) & ~views["view"].str.endswith("_history"), "view"].tolist()
        provenance, lineage = _provenance(root, group, names)
        parts.append(f"<p class='muted'>{html.escape(provenance)}</p>")
        if "findings" in names:
            scale = query(root, f'SELECT any_value(scale) AS s FROM "{group}".findings')["s"].iloc[0] \
                if "scale" in _columns(root, f'"{group}".findings') else "not recorded"
            trend = _select(root, f'"{group}".findings_history', ("metric", "materialized_at", "ours", "reference",
                                                                   "paper", "verdict"), "metric, materialized_at")
            parts += [f"<p>scale: {html.escape(str(scale))}</p>",
                      "<h3>Headline metrics over time</h3>", _trend_table(trend)]
        plots = _plots(root, group)
        if plots:
            parts.append("<h3>Figures</h3>")
            parts += [_img(path, f"{group}/{name}") for name, path in plots]
        parts += ["<details><summary>Tables (latest materialization, with lineage)</summary>", _table(lineage, 100),
                  "</details>"]
    parts += [_FIGURE_CHECK, "</body></html>"]
    return "\n".join(parts)


def write_report(root: str | Path, out: str | Path | None = None) -> Path:
    """Write the report to ``out`` (default ``<root>/report/index.html``) and return its path."""
    target = Path(out) if out else Path(root) / "report" / "index.html"
    page = build_report(root)  # refuses a missing warehouse before anything is created
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target
