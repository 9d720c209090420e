"""Real servers for the shared-lab tests: PostgreSQL (the ``pgserver`` wheel's bundled server, on a Unix socket
in a temporary folder) and an S3-compatible store (``moto`` in server mode, on a free local port). Each is
started once per session by the first test that asks, and stopped and deleted at the end; the variables a
shared lab sets (`lab_environment`) are set only inside the fixtures that need them and restored after.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BUCKET = "reprolab-lab"
REPO = Path(__file__).resolve().parents[2]
CLUSTER_DAGSTER_YAML = REPO / "deploy" / "dagster_home" / "dagster.yaml"



@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class Postgres:
    server: object

    def url(self, database: str) -> str:
        """libpq form, for psycopg2."""
        return self.server.get_uri(database)

    def sqlalchemy_url(self, database: str) -> str:
        """The form Dagster and MLflow take (SQLAlchemy): the psycopg2 driver named, as in the README."""
        return self.url(database).replace("postgresql://", "postgresql+psycopg2://", 1)

    def sql(self, database: str, statement: str) -> list[tuple]:
        import psycopg2

        con = psycopg2.connect(self.url(database))
        try:
            with con.cursor() as cur:
                cur.execute(statement)
                return cur.fetchall()
        finally:
            con.close()


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server with the databases ``dagster`` and ``mlflow``."""
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="reprolab-pg-"))
    server = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        server.psql("CREATE DATABASE dagster;")
        server.psql("CREATE DATABASE mlflow;")
        yield Postgres(server)
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


AWS_TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "reprolab-test", "AWS_SECRET_ACCESS_KEY": "reprolab-test",
                        "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def object_store() -> Iterator[ObjectStore]:
    """An S3-compatible server holding the bucket ``reprolab-lab``."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    store = ObjectStore(f"http://{host}:{port}")
    try:
        with environment(AWS_TEST_CREDENTIALS):
            store.client().create_bucket(Bucket=BUCKET)
        yield store
    finally:
        server.stop()


def lab_environment(postgres: Postgres, store: ObjectStore, dagster_home: Path) -> dict[str, str]:
    """Every variable a shared lab sets (README, "Running as a shared lab"), pointed at the test's servers."""
    return {
        **AWS_TEST_CREDENTIALS,
        "AWS_ENDPOINT_URL": store.endpoint,  # boto3 (MLflow artifacts, Dagster logs) and pyarrow (tables)
        "MLFLOW_S3_ENDPOINT_URL": store.endpoint,
        "DAGSTER_HOME": str(dagster_home),
        "REPROLAB_DAGSTER_PG_URL": postgres.sqlalchemy_url("dagster"),
        "REPROLAB_LOGS_BUCKET": BUCKET,
        "REPROLAB_WAREHOUSE_URL": f"s3://{BUCKET}/warehouse",
        "REPROLAB_MLFLOW_TRACKING_URI": postgres.sqlalchemy_url("mlflow"),
        "REPROLAB_MLFLOW_ARTIFACT_ROOT": f"s3://{BUCKET}/mlflow",
    }


@pytest.fixture(scope="module")
def shared_lab(postgres, object_store, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The shared-lab environment for one test module: DAGSTER_HOME holds deploy/'s dagster.yaml as it is."""
    home = tmp_path_factory.mktemp("dagster-home")
    shutil.copy(CLUSTER_DAGSTER_YAML, home / "dagster.yaml")
    values = lab_environment(postgres, object_store, home)
    with environment(values):
        yield values
