"""``main.models`` lists registered models only: a table row with an empty model URI (a model logged but not
registered, as the royalties game's coalition models) is not a model one can load, so it is not in the view."""

import dagster as dg
import pandas as pd

from resources.catalog import query


@dg.asset(group_name="toy")
def toy_coalition_models() -> pd.DataFrame:
    return pd.DataFrame({"coalition": ["a", "a,b", "b"], "mlflow_run_id": ["r1", "r2", "r3"],
                         "model_uri": ["", "models:/toy-all-owners/1", " "]})


@dg.asset(group_name="toy")
def toy_unregistered() -> dict:
    return {"model_uri": None, "mlflow_run_id": "r4"}


def test_models_view_holds_registered_models_only(resources_for, warehouse_root):
    assert dg.materialize([toy_coalition_models, toy_unregistered], resources=resources_for).success
    assert query(warehouse_root, "SELECT count(*) AS n FROM toy.toy_coalition_models")["n"].iloc[0] == 3
    models = query(warehouse_root, "SELECT model_uri, table_name FROM models")
    assert models.to_dict("records") == [{"model_uri": "models:/toy-all-owners/1",
                                          "table_name": "toy.toy_coalition_models"}]


@dg.asset(group_name="toy")
def toy_methods() -> dict:
    """A record of several models, one per method (as alignment_sft_models)."""
    return {"models": {"direct": {"model_uri": "models:/toy-direct/1", "final_val_loss": float("nan")},
                       "deliberative": {"model_uri": "models:/toy-deliberative/1"}},
            "base_model_uri": "models:/toy-base/1"}


@dg.asset(group_name="toy")
def toy_scores(toy_methods: dict) -> pd.DataFrame:
    return pd.DataFrame({"method": list(toy_methods["models"]),
                         "model_uri": [r["model_uri"] for r in toy_methods["models"].values()]})


def test_models_of_a_record_of_several_models_resolve_to_that_record(resources_for, warehouse_root):
    assert dg.materialize([toy_methods, toy_scores], resources=resources_for).success
    models = query(warehouse_root, "SELECT model_uri, table_name FROM models ORDER BY model_uri")
    assert models.to_dict("records") == [{"model_uri": "models:/toy-deliberative/1", "table_name": "toy.toy_methods"},
                                         {"model_uri": "models:/toy-direct/1", "table_name": "toy.toy_methods"}]
    # the table computed from the record names both models in its lineage, each resolved to the record's table
    lineage = query(warehouse_root, "SELECT upstream_ref, upstream_table FROM lineage WHERE table_name = "
                                    "'toy.toy_scores' AND upstream_kind = 'model' ORDER BY upstream_ref")
    assert lineage.to_dict("records") == [
        {"upstream_ref": "models:/toy-deliberative/1", "upstream_table": "toy.toy_methods"},
        {"upstream_ref": "models:/toy-direct/1", "upstream_table": "toy.toy_methods"}]
