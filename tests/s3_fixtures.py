"""S3 for tests: one moto server per test session on loopback, spoken to over real HTTP.

Nothing is patched: ``aws_default`` (an ``AIRFLOW_CONN_*`` variable) points S3Hook at the server, and
presigned URLs it signs are fetched for real, e.g. by the WaveSpeed emulator. Each test gets its own
bucket, so tests stay independent and the session's one server is enough. Load it from a test module:

    pytest_plugins = ["tests.s3_fixtures"]
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

MOTO_REGION = "us-east-1"
MOTO_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
S3_EXAMPLE_DAG = Path(__file__).resolve().parents[1] / "example_dags" / "wavespeed_s3_pipeline.py"

__all__ = [
    "MOTO_REGION",
    "S3_EXAMPLE_DAG",
    "aws_conn",
    "aws_connection_json",
    "bucket",
    "load_example_dags",
    "moto_endpoint",
    "put_png",
    "s3",
]


def aws_connection_json(endpoint_url: str) -> str:
    """An ``aws`` connection with dummy keys whose every client talks to ``endpoint_url``."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": MOTO_KEYS["aws_access_key_id"],
            "password": MOTO_KEYS["aws_secret_access_key"],
            "extra": {"endpoint_url": endpoint_url, "region_name": MOTO_REGION},
        }
    )


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (S3 and friends) on 127.0.0.1 and a free port, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per S3 request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_conn(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``aws_default`` points at the moto server; answers its endpoint URL."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_json(moto_endpoint))
    return moto_endpoint


@pytest.fixture
def s3(aws_conn: str) -> Any:
    """A plain boto3 S3 client on the moto server, for arranging and checking objects."""
    import boto3

    return boto3.client("s3", endpoint_url=aws_conn, region_name=MOTO_REGION, **MOTO_KEYS)


@pytest.fixture
def bucket(s3: Any) -> str:
    """A new, empty bucket of this test's own."""
    name = f"ws-test-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


def put_png(s3: Any, bucket: str, key: str, data: bytes) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="image/png")
    return f"s3://{bucket}/{key}"


def load_example_dags(monkeypatch: pytest.MonkeyPatch, bucket: str, path: Path = S3_EXAMPLE_DAG) -> dict[str, Any]:
    """The DAGs of an S3 example (by default ``wavespeed_s3_pipeline``), writing to ``bucket``, stored in
    the metadata DB for ``dag.test()``."""
    from tests.conftest import load_dag_bag

    monkeypatch.setenv("WAVESPEED_S3_BUCKET", bucket)
    monkeypatch.setenv("WAVESPEED_POLL_INTERVAL", "0.05")
    bag: Any = load_dag_bag(path)
    assert not bag.import_errors
    _write_to_db(bag)
    return bag.dags


def _write_to_db(bag: Any) -> None:
    """
    Store the DAGs as parsed now, with this test's bucket in their assets.

    Airflow 3.1's ``dag.test()`` parses the bundles only for a DAG id it has never stored; after another
    test ran any example DAG, the S3 example would keep the assets of its first parse (another bucket)
    and its asset events would be dropped as unknown. 3.3 re-parses on every ``dag.test()``.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    try:
        from airflow.dag_processing.dagbag import sync_bag_to_db
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import sync_bag_to_db  # type: ignore[attr-defined,no-redef]

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "wavespeed_examples", None)
