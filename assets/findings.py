"""One contract for every study's findings: a rule stated before the numbers, and a verdict computed from it.

A `Finding` is one headline result: our number, the reference value and where it comes from (``source``), the
`Rule` that turns the number into a verdict, the scale we ran at, and the choices made after seeing results
(``post_hoc``). The verdict is never passed in: it is computed from the rule, so "reproduced" is impossible
when ours lies outside the stated tolerance. Extra conditions (`Condition`) can only lower a verdict (e.g. a
fitted exponent counts only when the fit is good), never raise it. A condition that ``withholds`` makes the
verdict "not comparable" outright: a failed premise, an evidence gate (`gate`: too few seeds, an interval
reaching across the bar), or a value that cannot decide its rule. Its measured value is kept all the same, so
the table shows why.

Rules (``comparison``):
- ``at_least`` / ``at_most``: ours against a bar (``bar``), the looser ``partial`` bar for "partially".
- ``within_factor``: ours / reference and reference / ours at most ``bar`` (``partial`` the looser factor).
- ``within_abs`` / ``within_rel``: |ours - reference| (absolute, or relative to |reference|) at most ``bar``.
A finding without a rule is descriptive: its verdict is "not comparable". A NaN ours is "not comparable" too.

Sources: ``paper`` (a number the paper states), ``paper (derived)`` (computed from the paper's numbers or
figures), ``public replication``, ``code check`` (a verification of our code on known data, not a
reproduction: its verdicts read "verified" / "not verified"), ``none`` (no reference value).

Dagster-free: `findings_frame` gives the rows of a study's ``findings`` table and `check_findings_frame`
re-derives every verdict from the table's own rule columns (the contract test runs it on every study).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pandas as pd

SOURCES = ("paper", "paper (derived)", "public replication", "code check", "none")
COMPARISONS = ("at_least", "at_most", "within_factor", "within_abs", "within_rel")
VERDICTS = ("reproduced", "partially reproduced", "not reproduced", "not comparable",
            "verified", "partially verified", "not verified")
# ranks of the three graded outcomes; conditions take the minimum
_RANK = {"reproduced": 2, "partially reproduced": 1, "not reproduced": 0}
_BY_RANK = {v: k for k, v in _RANK.items()}
_CODE_CHECK = {"reproduced": "verified", "partially reproduced": "partially verified",
               "not reproduced": "not verified", "not comparable": "not comparable"}
PASSING = ("reproduced", "verified")
COLUMNS = ["study", "metric", "ours", "reference", "source", "rule", "verdict", "scale", "post_hoc", "note",
           "comparison", "bar", "partial_bar", "conditions"]


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(float(x))


@dataclass(frozen=True)
class Rule:
    """How ours is judged: ``comparison`` with ``bar`` for "reproduced" and the looser ``partial`` for
    "partially reproduced" (None: no partial band)."""

    comparison: str
    bar: float
    partial: float | None = None

    def __post_init__(self) -> None:
        if self.comparison not in COMPARISONS:
            raise ValueError(f"Rule.comparison={self.comparison!r}; expected one of {COMPARISONS}")
        if not _finite(self.bar):
            raise ValueError(f"Rule.bar must be a finite number, got {self.bar!r}")
        if self.partial is not None:
            if not _finite(self.partial):
                raise ValueError(f"Rule.partial must be a finite number or None, got {self.partial!r}")
            looser = (self.partial <= self.bar if self.comparison == "at_least" else self.partial >= self.bar)
            if not looser:
                raise ValueError(f"Rule.partial={self.partial} must be looser than bar={self.bar} for "
                                 f"{self.comparison}")
        if self.comparison == "within_factor" and self.bar < 1:
            raise ValueError(f"Rule within_factor needs bar >= 1 (a factor), got {self.bar}")

    @property
    def needs_reference(self) -> bool:
        return self.comparison.startswith("within")

    def _distance(self, ours: float, reference: float | None) -> float:
        if self.comparison in ("at_least", "at_most"):
            return ours
        if not _finite(reference):
            raise ValueError(f"a {self.comparison} rule needs a finite reference, got {reference!r}")
        if self.comparison == "within_factor":
            if ours <= 0 or reference <= 0:
                return math.inf
            return max(ours / reference, reference / ours)
        if self.comparison == "within_abs":
            return abs(ours - reference)
        return abs(ours - reference) / abs(reference) if reference != 0 else math.inf

    def _meets(self, value: float, bar: float) -> bool:
        return value >= bar if self.comparison == "at_least" else value <= bar

    def grade(self, ours: float, reference: float | None = None) -> str:
        """"reproduced", "partially reproduced", "not reproduced", or "not comparable" when ours is not finite."""
        if not _finite(ours):
            return "not comparable"
        value = self._distance(float(ours), reference)
        if self._meets(value, self.bar):
            return "reproduced"
        if self.partial is not None and self._meets(value, self.partial):
            return "partially reproduced"
        return "not reproduced"

    def describe(self) -> str:
        sign = {"at_least": ">=", "at_most": "<="}
        if self.comparison in sign:
            text = f"ours {sign[self.comparison]} {self.bar:g}"
            return text + (f" (partially {sign[self.comparison]} {self.partial:g})" if self.partial is not None else "")
        what = {"within_factor": "within a factor {} of the reference", "within_abs": "within ±{} of the reference",
                "within_rel": "within {} (relative) of the reference"}[self.comparison]
        text = "ours " + what.format(f"{self.bar:g}")
        return text + (f" (partially {self.partial:g})" if self.partial is not None else "")

    @staticmethod
    def at_least(bar: float, partial: float | None = None) -> Rule:
        return Rule("at_least", bar, partial)

    @staticmethod
    def at_most(bar: float, partial: float | None = None) -> Rule:
        return Rule("at_most", bar, partial)

    @staticmethod
    def within_factor(factor: float, partial: float | None = None) -> Rule:
        return Rule("within_factor", factor, partial)

    @staticmethod
    def within_abs(tolerance: float, partial: float | None = None) -> Rule:
        return Rule("within_abs", tolerance, partial)

    @staticmethod
    def within_rel(tolerance: float, partial: float | None = None) -> Rule:
        return Rule("within_rel", tolerance, partial)


@dataclass(frozen=True)
class Condition:
    """A second quantity the claim also needs (``name`` = ``value`` judged by ``rule``, against ``reference``
    for ``within_*`` rules). It can only lower the finding's verdict: to its own grade, and a non-finite value
    makes the finding "not comparable".

    ``withholds``: the verdict is withheld on this condition's account ("not comparable" whatever the other
    numbers say), its measured value recorded all the same. The study decides it: a premise that fails, an
    evidence gate that fails while the rest would pass (`gate`), a value that cannot decide its rule."""

    name: str
    value: float
    rule: Rule
    reference: float | None = None
    withholds: bool = False

    def grade(self) -> str:
        """The condition's own grade ("not comparable" when it withholds the verdict)."""
        return "not comparable" if self.withholds else self.rule.grade(self.value, self.reference)

    def as_dict(self) -> dict:
        return {"name": self.name, "value": float(self.value) if self.value is not None else math.nan,
                "comparison": self.rule.comparison, "bar": self.rule.bar, "partial": self.rule.partial,
                "reference": self.reference, "withholds": bool(self.withholds)}


def gate(name: str, value: float, rule: Rule, rest: str, passes: bool | None = None,
         reference: float | None = None) -> Condition:
    """An evidence gate (enough seeds, an interval clear of the bar, a model able to answer): it withholds only
    a pass. When it fails (``passes``, by default whether ``rule`` grades ``value`` "reproduced") and the rest
    of the finding (``rest``: its grade without this condition) reads better than "not reproduced", the
    condition withholds the verdict ("not comparable"); otherwise it counts as an ordinary condition, so a
    finding that fails on other grounds stays "not reproduced". The value is kept either way."""
    ok = passes if passes is not None else rule.grade(value, reference) == "reproduced"
    return Condition(name, value, rule, reference, withholds=not ok and rest != "not reproduced")


def combine(primary: str, conditions: tuple[Condition, ...] | list[Condition]) -> str:
    """The primary grade lowered by every condition's grade ("not comparable" when one withholds)."""
    if primary == "not comparable":
        return primary
    rank = _RANK[primary]
    for c in conditions:
        g = c.grade()
        if g == "not comparable":
            return g
        rank = min(rank, _RANK[g])
    return _BY_RANK[rank]


@dataclass(frozen=True)
class Finding:
    """One headline result. ``verdict`` is computed from ``rule`` (and ``conditions``); it cannot be set."""

    study: str
    metric: str
    ours: float
    reference: float | None = None
    source: str = "none"
    rule: Rule | None = None
    scale: str = ""
    post_hoc: str = ""  # choices made after seeing results ("" when none)
    note: str = ""
    conditions: tuple[Condition, ...] = ()
    verdict: str = field(init=False)

    def __post_init__(self) -> None:
        if not self.study or not self.metric:
            raise ValueError("Finding needs a study and a metric name")
        if self.source not in SOURCES:
            raise ValueError(f"Finding {self.metric!r}: source={self.source!r}; expected one of {SOURCES}")
        if self.reference is not None and not isinstance(self.reference, (int, float)):
            raise ValueError(f"Finding {self.metric!r}: reference must be a number or None, got {self.reference!r}")
        if _finite(self.reference) and self.source == "none":
            raise ValueError(f"Finding {self.metric!r}: a reference value {self.reference} needs its source "
                             f"(one of {SOURCES[:-1]})")
        if self.rule is not None and self.rule.needs_reference and not _finite(self.reference):
            raise ValueError(f"Finding {self.metric!r}: a {self.rule.comparison} rule needs a finite reference")
        object.__setattr__(self, "conditions", tuple(self.conditions))
        ours = float(self.ours) if self.ours is not None else math.nan
        object.__setattr__(self, "ours", ours)
        grade = "not comparable" if self.rule is None else combine(self.rule.grade(ours, self.reference),
                                                                   self.conditions)
        object.__setattr__(self, "verdict", _CODE_CHECK[grade] if self.source == "code check" else grade)

    @property
    def passed(self) -> bool:
        return self.verdict in PASSING

    def rule_text(self) -> str:
        if self.rule is None:
            return "descriptive (no rule)"
        text = self.rule.describe()
        for c in self.conditions:
            text += f"; and {c.name} {c.rule.describe().removeprefix('ours ')}"
            text += " (withholds the verdict)" if c.withholds else ""
        return text

    def row(self) -> dict:
        return {"study": self.study, "metric": self.metric, "ours": self.ours,
                "reference": float(self.reference) if self.reference is not None else math.nan,
                "source": self.source, "rule": self.rule_text(), "verdict": self.verdict, "scale": self.scale,
                "post_hoc": self.post_hoc, "note": self.note,
                "comparison": self.rule.comparison if self.rule else None,
                "bar": self.rule.bar if self.rule else math.nan,
                "partial_bar": self.rule.partial if self.rule and self.rule.partial is not None else math.nan,
                "conditions": json.dumps([c.as_dict() for c in self.conditions])}


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    """Findings as the rows of a study's ``findings`` table (one row each, the rule in its own columns)."""
    metrics = [f.metric for f in findings]
    dupes = sorted({m for m in metrics if metrics.count(m) > 1})
    if dupes:
        raise ValueError(f"findings repeat metric names {dupes}: each metric must be one row")
    return pd.DataFrame([f.row() for f in findings], columns=COLUMNS)


def _opt(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def check_findings_frame(frame: pd.DataFrame) -> list[str]:
    """Re-derive every row's verdict from its own rule columns; returns the rows that disagree (empty: all
    hold). Catches a "reproduced" outside the stated tolerance however the table was written."""
    missing = set(COLUMNS) - set(frame.columns)
    if missing:
        return [f"findings table lacks columns {sorted(missing)}"]
    problems = []
    for r in frame.to_dict("records"):
        if r["source"] not in SOURCES:
            problems.append(f"{r['metric']}: unknown source {r['source']!r}")
            continue
        if r["comparison"] is None or (isinstance(r["comparison"], float) and math.isnan(r["comparison"])):
            expected = "not comparable"
        else:
            rule = Rule(r["comparison"], float(r["bar"]), _opt(r["partial_bar"]))
            conditions = [Condition(c["name"], c["value"], Rule(c["comparison"], c["bar"], c["partial"]),
                                    c.get("reference"), bool(c.get("withholds", False)))
                          for c in json.loads(r["conditions"] or "[]")]
            expected = combine(rule.grade(r["ours"], _opt(r["reference"])), conditions)
        if r["source"] == "code check":
            expected = _CODE_CHECK[expected]
        if r["verdict"] != expected:
            problems.append(f"{r['metric']}: verdict {r['verdict']!r} but its rule ({r['rule']}) gives "
                            f"{expected!r} for ours={r['ours']}, reference={r['reference']}")
        if _opt(r["reference"]) is not None and r["source"] == "none":
            problems.append(f"{r['metric']}: reference {r['reference']} without a source")
    return problems
