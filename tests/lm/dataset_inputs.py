"""What the group tests assert of a registered model's lineage: its MLflow run lists the data it trained (and
was validated) on as dataset inputs, each named and sourced from the asset the data comes from."""

from __future__ import annotations


def dataset_inputs(tracking, model_uri: str) -> dict[str, tuple[str, str]]:
    """split (the input's context) -> (dataset name, source table) of the run behind ``models:/<name>/<version>``."""
    import json

    name, version = model_uri.removeprefix("models:/").split("/")
    run = tracking.client.get_run(tracking.client.get_model_version(name, version).run_id)
    found = {}
    for item in run.inputs.dataset_inputs:
        (split,) = [t.value for t in item.tags if t.key == "mlflow.data.context"]
        found[split] = (item.dataset.name, json.loads(item.dataset.source)["table"])
    return found


def assert_trained_on(tracking, model_uri: str, source: str, splits: tuple[str, ...] = ("train", "validation")) -> None:
    """The run of ``model_uri`` lists exactly ``splits`` as dataset inputs, each from ``source`` (a substring of
    the input's source: an asset key, or one of several)."""
    found = dataset_inputs(tracking, model_uri)
    assert sorted(found) == sorted(splits), (model_uri, found)
    assert all(source in table for _, table in found.values()), (model_uri, found)


def registered_without_inputs(tracking) -> list[str]:
    """Every registered model version (``name/version``) whose run lists no dataset input."""
    return [f"{v.name}/{v.version}" for m in tracking.client.search_registered_models()
            for v in tracking.client.search_model_versions(f"name = '{m.name}'")
            if not tracking.client.get_run(v.run_id).inputs.dataset_inputs]
