"""`reprolab evaluate --max-items` against the built-in suite (a fake endpoint answering as the policy oracle): a
seeded sample of each evaluation is asked, not every eval item, and the summary says how many were asked."""

import json
import re

import pandas as pd

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
                     r"seed 3; reasoning budget medium, answers of at most 64 tokens; run ", out, re.M), out
    first = set(asked["item_id"])
    assert _evaluate(warehouse, "--max-items", "2", "--seed", "0") == 0
    assert set(_asked(warehouse)["item_id"]) != first  # --seed draws the sample
    assert _evaluate(warehouse) == 0
    assert len(_asked(warehouse)) == total and f"{total} items answered and graded for m at {URL} (asked: the " \
        f"suite's {total} eval items; reasoning budget medium, answers of at most 64 tokens; run " in \
        capsys.readouterr().out


REQUEST = ["requested_budget", "max_tokens", "max_items", "seed"]


def test_two_budgets_sit_side_by_side_and_each_row_says_what_it_was_asked(warehouse, suite):  # noqa: F811
    """Was: `--budget 2` then `--budget 8 --max-items 2` left only the second evaluation's rows, and no column
    said the budget, answer cap, sample size or seed asked."""
    from resources.catalog import query

    total = int((suite["split"] == "eval").sum())
    assert _evaluate(warehouse, "--budget", "2", "--regurgitation-max-tokens", "20") == 0
    assert _evaluate(warehouse, "--budget", "8", "--max-items", "2", "--seed", "3") == 0
    asked = _asked(warehouse)
    by_budget = asked.groupby("requested_budget").size().to_dict()
    assert by_budget["2"] == total and 0 < by_budget["8"] < total  # both evaluations kept
    two, eight = (asked[asked["requested_budget"] == b] for b in ("2", "8"))
    regurgitation = two["evaluation"] == "regurgitation"
    assert set(two.loc[regurgitation, "max_tokens"]) == {20} and set(two.loc[~regurgitation, "max_tokens"]) == {64}
    assert two["max_items"].isna().all() and set(two["seed"]) == {0}
    assert set(eight["max_items"]) == {2} and set(eight["seed"]) == {3}
    # the card: one per budget, each row with what its metric's rows were asked with
    card = query(str(warehouse), f"SELECT requested_budget, evaluation, metric, max_tokens, max_items, seed FROM "
                                 f"safety.safety_system_card WHERE endpoint = '{URL}'")
    assert set(card["requested_budget"]) == {"2", "8"}
    at_two = card[card["requested_budget"] == "2"].set_index("evaluation")
    assert set(at_two.loc["regurgitation", "max_tokens"]) == {20} and set(at_two.loc["refusal", "max_tokens"]) == {64}
    assert set(card.loc[card["requested_budget"] == "8", "max_items"]) == {2} and at_two["max_items"].isna().all()
    # the same budget again: its own rows replaced, the other budget's kept
    assert _evaluate(warehouse, "--budget", "8", "--max-items", "1") == 0
    again = _asked(warehouse).groupby("requested_budget").size().to_dict()
    assert again["2"] == total and 0 < again["8"] < by_budget["8"]
    sql = query(str(warehouse), "SELECT requested_budget, count(*) AS n FROM safety.safety_results GROUP BY ALL")
    assert dict(zip(sql["requested_budget"], sql["n"], strict=True)) == again


def test_the_graphs_rows_carry_the_same_request_columns(warehouse, suite):  # noqa: F811
    """The graph's safety_results (an in-process model at its config's budget, the reference scripts, the
    endpoints evaluate wrote carried forward) writes the same columns, typed alike, so the latest table and its
    history view stay one schema; a table stored before the columns existed reads as asked at budget ""."""
    from datetime import UTC, datetime

    from assets.lm.model import ModelSize
    from assets.safety.responders import model_responder, run_model, run_references, stored_with_provenance
    from assets.safety.tables import stamp_and_carry
    from resources.catalog import query, refresh_catalog
    from resources.tables import LINEAGE_COLUMNS, Lineage, latest_file, read_table, write_table
    from tests.chat.conftest import make_model, make_tokenizer

    assert _evaluate(warehouse, "--budget", "2", "--max-items", "1") == 0
    stored = read_table(latest_file(warehouse, "safety", "safety_results"), with_lineage=True)
    previous = stored_with_provenance(stored, LINEAGE_COLUMNS)
    items = suite[(suite["split"] == "eval") & (suite["evaluation"] == "refusal")].head(3)
    tokenizer = make_tokenizer(extra=[w for m in items["messages"] for t in json.loads(m) for w in t["content"].split()])
    model = make_model(tokenizer, size=ModelSize("t", d_model=16, n_layers=1, n_heads=2, d_ff=32, context_length=256))
    ours = run_model(model_responder(model, tokenizer, budget=3, max_answer_tokens=4, seed=5), items,
                     model="chat-sft", model_uri="models:/chat-sft/1")
    assert set(ours["requested_budget"]) == {"3"} and set(ours["max_tokens"]) == {4} and set(ours["seed"]) == {5}
    assert ours["max_items"].isna().all()  # the graph asks every item
    references = run_references(items, names=("policy_oracle",))
    assert set(references["requested_budget"]) == {""} and references[REQUEST[1:]].isna().all().all()
    table, _, _ = stamp_and_carry(pd.concat([references, ours], ignore_index=True), previous, "nightly",
                                  datetime.now(UTC))
    assert list(table.columns) == list(previous.columns)  # one schema, one order
    assert table.dtypes.to_dict() == previous.dtypes.to_dict()
    carried = table[table["responder"] == "endpoint"]
    assert set(carried["requested_budget"]) == {"2"} and set(carried["max_items"]) == {1}
    # a table written before the columns existed: read as asked with nothing said
    old = stored_with_provenance(stored.drop(columns=REQUEST), LINEAGE_COLUMNS)
    assert set(old["requested_budget"]) == {""} and old[REQUEST[1:]].isna().all().all()
    assert old.dtypes[REQUEST].to_dict() == previous.dtypes[REQUEST].to_dict()
    write_table(warehouse, "safety", "safety_results", table, Lineage(run_id="nightly", code_version="1"))
    refresh_catalog(warehouse, [("safety", "safety_results")])
    types = query(str(warehouse), "SELECT column_name, column_type FROM (DESCRIBE safety.safety_results_history)")
    types = dict(zip(types["column_name"], types["column_type"], strict=True))
    assert {c: types[c] for c in REQUEST} == {"requested_budget": "VARCHAR", "max_tokens": "BIGINT",
                                              "max_items": "BIGINT", "seed": "BIGINT"}
