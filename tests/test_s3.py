"""S3 in and out, against moto in server mode and the WaveSpeed emulator, both over real HTTP."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from airflow_wavespeed.emulator import Emulator
from tests.s3_fixtures import aws_conn, bucket, moto_endpoint, run_context, s3  # noqa: F401

EXAMPLE_DAG = Path(__file__).resolve().parents[1] / "example_dags" / "wavespeed_s3_pipeline.py"


def put_png(s3: Any, bucket: str, key: str, data: bytes) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="image/png")
    return f"s3://{bucket}/{key}"


def keys_under(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def load_example_dags(monkeypatch: pytest.MonkeyPatch, bucket: str) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("WAVESPEED_S3_BUCKET", bucket)
    monkeypatch.setenv("WAVESPEED_POLL_INTERVAL", "0.05")
    bag = DagBag(dag_folder=str(EXAMPLE_DAG))
    assert not bag.import_errors
    return bag.dags


# ---------------------------------------------------------------- the example DAGs, end to end


def test_example_pipeline_mapped_presigned_edits_land_in_s3_with_asset_events(
    airflow_db: None,
    wavespeed_conn: Emulator,
    s3: Any,
    bucket: str,
    sample_png: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.utils.session import create_session
    from PIL import Image

    dags = load_example_dags(monkeypatch, bucket)
    images = [put_png(s3, bucket, f"inputs/photo-{n}.png", sample_png) for n in range(3)]

    run = dags["wavespeed_s3_pipeline"].test(run_conf={"images": images, "prompt": "make it blue"})

    assert run.state == "success"
    predictions = list(wavespeed_conn.predictions.values())
    assert [p.status for p in predictions] == ["completed"] * 3 and all(not p.error for p in predictions)
    fetched = sorted(url for p in predictions for url in p.image_urls)
    assert all(url.startswith(f"{s3.meta.endpoint_url}/{bucket}/inputs/photo-") for url in fetched)
    assert all("Signature=" in url or "X-Amz-Signature=" in url for url in fetched)

    keys = keys_under(s3, bucket, "edits/")
    assert len(keys) == 3
    by_map_index = {key.split("/")[4]: key for key in keys}
    assert sorted(by_map_index) == ["0", "1", "2"]
    for key in keys:
        prediction_id = key.rsplit("/", 1)[1].removesuffix("_0.png")
        assert prediction_id in wavespeed_conn.predictions  # named by the upstream edit's XCom
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == "image/png"
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert Image.open(io.BytesIO(body)).size == (96, 64)  # 3:2 at the test scale

    with create_session() as session:
        events = session.query(AssetEvent).filter(AssetEvent.source_run_id == run.run_id).all()
        queued = session.query(AssetDagRunQueue).all()
        assert sorted(uri for e in events for uri in e.extra["uris"]) == [f"s3://{bucket}/{k}" for k in keys]
        assert sorted(e.source_map_index for e in events) == [0, 1, 2]
        assert {e.asset.uri for e in events} == {f"s3://{bucket}/edits"}
        assert "wavespeed_s3_arrivals" in {q.target_dag_id for q in queued}
