"""The HTML report's findings (pipelines/report.py): the findings with a rule first, as `reprolab summary` shows
them; each study's descriptive rows folded away under a <details>; a findings table that wraps, not overflows."""

import re

import pandas as pd

from pipelines.report import build_report
from resources.catalog import refresh_catalog
from resources.tables import Lineage, write_table


def _findings(root, study: str, ruled: int, descriptive: int, contract: bool = True) -> None:
    rows = [{"study": study, "metric": f"rule_{i}", "ours": 0.5, "reference": 0.5, "source": "paper",
             "rule": "ours >= 0.4", "comparison": "at_least", "verdict": "reproduced", "post_hoc": "",
             "note": "", "scale": "tiny"} for i in range(ruled)]
    rows += [{"study": study, "metric": f"a_descriptive_{i}", "ours": 0.1, "reference": None, "source": "none",
              "rule": "descriptive (no rule)", "comparison": None, "verdict": "not comparable",
              "post_hoc": "chosen after seeing results" if i == 0 else "", "note": "", "scale": "tiny"}
             for i in range(descriptive)]
    frame = pd.DataFrame(rows)
    if not contract:  # a table written before the findings contract: `paper`, no rule, reference or comparison
        frame = frame.rename(columns={"reference": "paper"}).drop(columns=["rule", "comparison", "source"])
    write_table(root, study, "findings", frame, Lineage(run_id="r", code_version="1"))


def _findings_html(page: str) -> str:
    return page[page.index("<h2>Findings"):page.index("<h2 id=")]


def test_findings_with_a_rule_come_first_and_descriptive_rows_fold_per_study(warehouse_root):
    _findings(warehouse_root, "alpha", ruled=2, descriptive=3)
    _findings(warehouse_root, "beta", ruled=1, descriptive=2)
    refresh_catalog(warehouse_root)
    section = _findings_html(build_report(warehouse_root))
    rows = re.findall(r"<tr><td><a href='#(\w+)'>\w+</a></td><td>(\w+)</td>", section)
    # was: every row by study and metric, alpha's descriptive rows (a_...) before its findings
    assert rows[:3] == [("alpha", "rule_0"), ("alpha", "rule_1"), ("beta", "rule_0")]
    assert [metric for _, metric in rows[3:]] == [f"a_descriptive_{i}" for i in (0, 1, 2, 0, 1)]
    headline, folded = section.split("<h3>Descriptive rows", 1)
    assert "a_descriptive" not in headline and "rule_" not in folded
    folds = re.findall(r"<details class='descriptive'><summary>(.*?)</summary>(.*?)</details>(?=\n|$)", folded, re.S)
    assert [summary for summary, _ in folds] == ["alpha: 3 descriptive rows", "beta: 2 descriptive rows"]
    assert folds[0][1].count("<tr><td>") == 3 and folds[1][1].count("<tr><td>") == 2
    assert "5 in all" in folded and "chosen after seeing results" in folds[0][1]  # post_hoc still shown
    css = build_report(warehouse_root)[:2000]
    assert "table.findings{width:100%;table-layout:fixed}" in css and "overflow-wrap:anywhere" in css  # wraps


def test_a_findings_table_older_than_the_contract_lists_every_row_unfolded(warehouse_root):
    _findings(warehouse_root, "old", ruled=1, descriptive=1, contract=False)
    refresh_catalog(warehouse_root)
    section = _findings_html(build_report(warehouse_root))
    assert "<details class='descriptive'>" not in section and section.count("<tr><td><a href=") == 2
