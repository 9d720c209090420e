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
