"""The model registry, read by URI (plain MLflow, no Dagster): the one way studies get at a trained model.

A URI is what a model record holds: ``models:/lm-facts-small/3`` (exact version), ``models:/<name>@<alias>``,
``runs:/<run id>/model``, or a local checkpoint directory (``save_pretrained`` output with its tokenizer).
`load_model` returns the model and its tokenizer; `model_dir` the local checkpoint directory.

Shared by the ``tracking`` resource (Dagster side) and by the studies (science), so both resolve a URI the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse


def resolve_model_source(client, model_uri: str) -> str:
    """The artifact location behind ``models:/<name>/<version>`` or ``models:/<name>@<alias>``; other URIs as given."""
    if not model_uri.startswith("models:/"):
        return model_uri
    ref = model_uri.removeprefix("models:/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    elif "/" in ref:
        name, number = ref.split("/", 1)
        version = client.get_model_version(name, number)
    else:
        raise ValueError(f"model_uri {model_uri!r}: expected models:/<name>/<version> or models:/<name>@<alias>")
    return version.source


def local_model_dir(client, tracking_uri: str, model_uri: str, dst: str | Path | None = None) -> Path:
    """A local checkpoint directory holding the model at ``model_uri`` (``models:/…``, ``runs:/<id>/model``, an
    artifact location or a local path); inside an MLflow pyfunc model, its data folder (the checkpoint).
    Artifacts in a local store are returned in place: treat them as read-only."""
    from mlflow.artifacts import download_artifacts

    from assets.lm.mlflow_pyfunc import checkpoint_of

    source = resolve_model_source(client, model_uri)
    if source.startswith("runs:/"):  # the run's own artifact location, so that a moved store finds it here too
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        source = client.get_run(run_id).info.artifact_uri.rstrip("/") + (f"/{path}" if path else "")
    source = rebased(source, tracking_uri)
    local = Path(source.removeprefix("file://"))
    if urlparse(source).scheme in ("", "file") and local.is_dir() and dst is None:
        return checkpoint_of(local)
    return checkpoint_of(download_artifacts(artifact_uri=source, dst_path=str(dst) if dst else None,
                                            tracking_uri=tracking_uri))


def rebased(source: str, tracking_uri: str) -> str:
    """A local artifact location recorded in another folder, found in this store: a SQLite store records absolute
    paths, so after the warehouse is moved or copied its models' sources still name the old folder. The part
    after ``<store folder>/artifacts/`` is looked up in the ``artifacts`` folder beside this store's database
    (the default layout, ``_mlflow/mlflow.db`` and ``_mlflow/artifacts``); used when it exists there, so a copy
    reads its own files. Other sources are returned as given."""
    if not tracking_uri.startswith("sqlite:///") or urlparse(source).scheme not in ("", "file"):
        return source
    store = Path(tracking_uri.removeprefix("sqlite:///")).parent
    parts = Path(source.removeprefix("file://")).parts
    for i in range(len(parts) - 1):
        if parts[i] == store.name and parts[i + 1] == "artifacts":
            here = store.joinpath("artifacts", *parts[i + 2:])
            return str(here) if here.exists() else source
    return source


def client_for(tracking_uri: str):
    """An MlflowClient for one store (tracking and registry on the same URI)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def model_dir(model_uri: str, tracking_uri: str) -> Path:
    """The local checkpoint directory behind ``model_uri`` in the MLflow store at ``tracking_uri``."""
    if Path(model_uri).is_dir():
        return Path(model_uri)
    return local_model_dir(client_for(tracking_uri), tracking_uri, model_uri)


def load_model(model_uri: str, tracking_uri: str, device: str = "cpu") -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) for ``model_uri``; the tokenizer is None if the checkpoint has none."""
    from assets.lm.model import load_checkpoint

    return load_checkpoint(model_dir(model_uri, tracking_uri), device=device)
