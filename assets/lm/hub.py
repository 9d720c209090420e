"""Load a model and its tokenizer by URI: the one way studies get at a trained (or imported) model.

A URI is what a model record holds: ``models:/lm-facts-small/3`` (exact version), ``models:/<name>@<alias>``,
``runs:/<run id>/model``, or a local checkpoint directory. Checkpoints are ``save_pretrained`` directories
holding the model and its tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assets.lm.model import load_checkpoint
from assets.lm.registry import client_for, local_model_dir


def model_dir(model_uri: str, tracking_uri: str) -> Path:
    """The local checkpoint directory behind ``model_uri`` in the MLflow store at ``tracking_uri``."""
    if Path(model_uri).is_dir():
        return Path(model_uri)
    return local_model_dir(client_for(tracking_uri), tracking_uri, model_uri)


def load_model(model_uri: str, tracking_uri: str, device: str = "cpu") -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) for ``model_uri``; the tokenizer is None if the checkpoint has none."""
    return load_checkpoint(model_dir(model_uri, tracking_uri), device=device)
