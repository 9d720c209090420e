"""`reprolab evaluate --max-items` against the built-in suite (a fake endpoint answering as the policy oracle): a
seeded sample of each evaluation is asked, not every eval item, and the summary says how many were asked."""

import re

from tests.safety.conftest import documents, suite, world  # noqa: F401 - the safety tests' session fixtures
from tests.safety.test_evaluate import URL, _evaluate, warehouse  # noqa: F401 - its warehouse and endpoint


def _asked(root):
    from resources.tables import latest_file, read_table

    results = read_table(latest_file(root, "safety", "safety_results"))
    return results.loc[results["endpoint"] == URL]


def test_max_items_samples_the_suite_per_evaluation_with_the_seed(warehouse, suite, capsys):  # noqa: F811
    eval_items = suite[suite["split"] == "eval"]
    per_evaluation = eval_items.groupby("evaluation").size()
    # at most 2 requests of each evaluation, each whole (a jailbreak request: every family wrapping it)
    per_request = eval_items.groupby(["evaluation", "request_id"]).size().groupby("evaluation").max()
    assert _evaluate(warehouse, "--max-items", "2", "--seed", "3") == 0
    out = capsys.readouterr().out
    asked = _asked(warehouse)
    expected = len(asked)
    # was: every eval item of the suite (325 here, 428 in the demo) whatever --max-items said
    assert asked.groupby("evaluation")["request_id"].nunique().max() == 2
    assert expected == int((per_request * 2).clip(upper=per_evaluation).sum())
    assert set(asked["evaluation"]) == set(per_evaluation.index)  # every evaluation keeps its metrics
    total = int(per_evaluation.sum())
    assert re.search(rf"^{expected} of {expected} items answered and graded for m at {re.escape(URL)} \(asked: "
                     rf"{expected} of the suite's {total} eval items; --max-items 2 per evaluation and per file, "
                     r"seed 3; run ", out, re.M), out
    first = set(asked["item_id"])
    assert _evaluate(warehouse, "--max-items", "2", "--seed", "0") == 0
    assert set(_asked(warehouse)["item_id"]) != first  # --seed draws the sample
    assert _evaluate(warehouse) == 0
    assert len(_asked(warehouse)) == total and f"{total} items answered and graded for m at {URL} (asked: the " \
        f"suite's {total} eval items; run " in capsys.readouterr().out
