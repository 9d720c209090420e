"""One lineage view: from a findings row back to the corpus in one recursive query; a moved warehouse still works."""

import shutil

import dagster as dg
import pandas as pd

from resources.catalog import query

LINEAGE_SQL = """
WITH RECURSIVE up(table_name, materialization_id, depth) AS (
  SELECT table_name, materialization_id, 0 FROM (
    SELECT DISTINCT table_name, materialization_id, materialized_at FROM lineage
    WHERE table_name = 'toy.findings' ORDER BY materialized_at DESC LIMIT 1)
  UNION
  SELECT l.upstream_table, l.upstream_materialization_id, up.depth + 1
  FROM lineage l JOIN up ON l.table_name = up.table_name AND l.materialization_id = up.materialization_id)
SELECT min(depth) AS depth, table_name, materialization_id FROM up GROUP BY ALL ORDER BY depth, table_name
"""


@dg.asset(group_name="toy")
def toy_corpus() -> pd.DataFrame:
    return pd.DataFrame({"text": ["a b", "c d"]})


@dg.asset(group_name="toy")
def toy_model(toy_corpus: pd.DataFrame) -> dict:
    return {"model_uri": "models:/toy-model/1", "n_docs": len(toy_corpus)}


@dg.asset(group_name="toy")
def toy_scores(toy_model: dict) -> pd.DataFrame:
    return pd.DataFrame({"score": [0.5]})


@dg.asset(key=["toy", "findings"], group_name="toy")
def toy_findings(toy_scores: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"study": ["toy"], "metric": ["m"], "ours": [float(toy_scores["score"].iloc[0])]})


def test_findings_trace_back_to_the_corpus_in_one_query(resources_for, warehouse_root):
    assert dg.materialize([toy_corpus, toy_model, toy_scores, toy_findings], resources=resources_for).success
    # a model reference resolves to the record that registered it, typed as a model edge
    edges = query(warehouse_root, "SELECT table_name, upstream_ref, upstream_kind, upstream_table, resolution "
                                  "FROM lineage WHERE table_name = 'toy.toy_scores'")
    kinds = dict(zip(edges["upstream_ref"].str.split(":").str[0], edges["upstream_kind"], strict=True))
    assert kinds == {"models": "model", "toy.toy_model": "table"}
    assert set(edges["upstream_table"]) == {"toy.toy_model"} and set(edges["resolution"].dropna()) == {"this run"}
    chain = query(warehouse_root, LINEAGE_SQL)
    assert chain["table_name"].tolist() == ["toy.findings", "toy.toy_scores", "toy.toy_model", "toy.toy_corpus"]
    assert chain["depth"].tolist() == [0, 1, 2, 3]


def test_a_moved_warehouse_keeps_its_catalog(resources_for, warehouse_root, tmp_path):
    assert dg.materialize([toy_corpus], resources=resources_for).success
    moved = tmp_path / "moved-warehouse"
    shutil.move(str(warehouse_root), moved)
    assert query(moved, "SELECT count(*) AS n FROM toy.toy_corpus")["n"].iloc[0] == 2
    assert query(moved, "SELECT root FROM main.catalog_root")["root"].iloc[0] == str(moved.resolve())


def test_a_copied_warehouse_materializing_again_reads_only_its_own_files(resources_for, warehouse_root, tmp_path):
    """A copy's first materialization updates a few views; the others named the original's files (and read them,
    or were refused as outside the warehouse) until the whole catalog was rebuilt for the copy."""
    from resources import default_resources

    assert dg.materialize([toy_corpus], resources=resources_for).success
    copy = tmp_path / "copied-warehouse"
    shutil.copytree(warehouse_root, copy)
    assert dg.materialize([toy_corpus, toy_model], selection=[toy_model.key],
                          resources=default_resources(str(copy))).success
    assert query(copy, "SELECT count(*) AS n FROM toy.toy_corpus")["n"].iloc[0] == 2
    sql = query(copy, "SELECT string_agg(sql, ' ') AS sql FROM duckdb_views() WHERE NOT internal")["sql"].iloc[0]
    assert str(warehouse_root.resolve()) + "/" not in sql and str(copy.resolve()) in sql
