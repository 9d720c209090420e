"""What `reprolab summary` and `query` print: the warehouse's tables, the headline findings, a frame as a table,
CSV or JSON (texts cut so that different names stay different)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from resources.catalog import CatalogError, list_views, query

if TYPE_CHECKING:
    import pandas as pd

# Columns of the contract (assets/findings.py); tables written before it carry `paper` instead of reference/source
FINDINGS_COLUMNS = ("study", "metric", "ours", "reference", "paper", "source", "verdict")
SUMMARY_WIDTH = 40  # characters of text a cell of the closing findings table shows
ALL_FINDINGS_SQL = "SELECT * FROM findings ORDER BY study, metric"


def findings_summary(root, width: int = SUMMARY_WIDTH) -> tuple[pd.DataFrame, str]:
    """The headline findings (those with a rule, which turns ours into a verdict, with or without a reference;
    every row for tables older than the contract) in the view's headline columns, text cut to ``width``
    characters (`shortened`); and a footnote saying what was left out and the SQL that shows everything."""
    have = set(query(root, "DESCRIBE findings")["column_name"])
    columns = ", ".join(c for c in FINDINGS_COLUMNS if c in have)
    where = "WHERE comparison IS NOT NULL" if "comparison" in have else ""
    shown = query(root, f"SELECT {columns} FROM findings {where} ORDER BY study, metric")
    total = int(query(root, "SELECT count(*) AS n FROM findings")["n"].iloc[0])
    for column in shown.columns.difference(shown.select_dtypes(include="number").columns):
        shown[column] = shortened(shown[column], width)
    left_out = total - len(shown)
    note = (f"{len(shown)} findings with a rule of {total} rows" + (f"; {left_out} descriptive rows (no rule: "
            "numbers recorded beside them) left out" if left_out else "")
            + f".\nEvery row and column: reprolab query \"{ALL_FINDINGS_SQL}\"")
    if "post_hoc" in have:
        n = int(query(root, "SELECT count(*) AS n FROM findings WHERE coalesce(CAST(post_hoc AS VARCHAR), '') "
                            "NOT IN ('', 'false', 'False')")["n"].iloc[0])
        if n:
            note += (f"\n{n} rows use a setting chosen after seeing results (post_hoc): reprolab query "
                     "\"SELECT study, metric, post_hoc FROM findings WHERE post_hoc <> ''\"")
    return shown, note


def shortened(values: pd.Series, width: int) -> pd.Series:
    """Texts longer than ``width`` cut in the middle (``head…tail``: the tail keeps what tells metrics apart, such
    as a closing "(mlp, k=3)"); any two different texts the cut would make equal are shown whole."""
    import pandas as pd

    def cut(v):
        if not isinstance(v, str) or len(v) <= width:
            return v
        head = (width - 1) // 2
        return v[:head] + "…" + v[len(v) - (width - 1 - head):]

    short = values.map(cut)
    texts: dict[str, set] = {}
    for original, text in zip(values, short, strict=True):
        if isinstance(text, str):
            texts.setdefault(text, set()).add(original)
    return pd.Series([o if isinstance(t, str) and len(texts[t]) > 1 else t for o, t in zip(values, short, strict=True)],
                     index=values.index, dtype=object)


def print_frame(df, fmt: str, missing: str = "NULL") -> None:
    """``df`` on stdout as a table (SQL NULL, or NaN, printed as ``missing``), CSV or JSON records."""
    if fmt == "csv":
        sys.stdout.write(df.to_csv(index=False))
    elif fmt == "json":
        sys.stdout.write(df.to_json(orient="records", date_format="iso", indent=2) + "\n")
    elif not len(df):
        print("(no rows)")
    else:  # None, not NaN / <NA> / NaT, so that tabulate writes `missing`
        shown = df.astype(object).where(df.notna(), None)
        print(shown.to_markdown(index=False, tablefmt="simple", floatfmt=".6g", missingval=missing))


def summary_frame(root: str):
    """One row per latest-materialization view: rows, when, which run."""
    views = list_views(root)
    rows = []
    for schema, view in views.itertuples(index=False):
        if view.endswith("_history") or schema == "main":
            continue
        try:
            stats = query(root, f'SELECT count(*) AS n, max(materialized_at) AS at, any_value(run_id) AS run '
                                f'FROM "{schema}"."{view}"')
        except CatalogError as exc:  # one unreadable table must not hide the others
            print(f"warning: {schema}.{view}: {exc}", file=sys.stderr)
            continue
        n, at, run = stats.iloc[0]
        rows.append({"table": f"{schema}.{view}", "rows": int(n), "materialized_at": str(at)[:19],
                     "run_id": str(run)[:8]})
    import pandas as pd

    return pd.DataFrame(rows, columns=["table", "rows", "materialized_at", "run_id"])
