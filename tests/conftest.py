"""Test set-up: the tiny profile, and a scratch warehouse so loading the definitions writes nothing here."""

import os
import tempfile

# Profiles resolve Config defaults at import time, so this must run before any project import.
os.environ["REPROLAB_PROFILE"] = "tiny"
os.environ.setdefault("REPROLAB_WAREHOUSE", tempfile.mkdtemp(prefix="reprolab-test-warehouse-"))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.pop("DAGSTER_HOME", None)

import pytest  # noqa: E402


@pytest.fixture
def warehouse_root(tmp_path):
    """A fresh, empty warehouse folder for one test."""
    root = tmp_path / "warehouse"
    root.mkdir()
    return root


@pytest.fixture
def resources_for(warehouse_root):
    """The project's default resources rooted at the test's warehouse."""
    from resources import default_resources

    return default_resources(str(warehouse_root))


@pytest.fixture(scope="session")
def backbone(tmp_path_factory):
    """The tiny corpora and language-model family, materialized once per session (only by tests that ask) into
    one Dagster instance and one warehouse; study group tests materialize their own group against it."""
    import dagster as dg

    from tests.backbone import materialize_backbone

    instance = dg.DagsterInstance.ephemeral()
    try:
        yield materialize_backbone(tmp_path_factory.mktemp("backbone-warehouse"), instance)
    finally:
        instance.dispose()
