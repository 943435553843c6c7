"""S3 in and out, against moto in server mode and the WaveSpeed emulator, both over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.exceptions import (
    OutputExistsError,
    OutputTooLargeError,
    WaveSpeedInputError,
    WaveSpeedOutputError,
)
from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator
from airflow_wavespeed.transfers.wavespeed_to_s3 import WaveSpeedToS3Operator
from tests.emulator_fixtures import loopback_download
from tests.s3_fixtures import S3_EXAMPLE_DAG, load_example_dags, put_png

# moto_endpoint (one moto server per session), aws_conn, s3, bucket
pytest_plugins = ["tests.s3_fixtures"]

#: Name-template values for calling store_outputs directly.
OUTPUT_NAMES = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": 0, "prediction_id": "p"}
#: The stand-in's run_id as it appears in keys: ':' and '+' become '_' (portable names).
RUN_KEY = "manual__2026-01-01T00_00_00_00_00"


class TaskInstanceStandIn:
    """What the operators use of a running task instance: its identity and XCom (kept in a dict).

    ``execute()`` gets this instead of a task runner's instance, which needs a supervisor process;
    ``dag.test()`` tests cover the real one.
    """

    def __init__(
        self,
        *,
        dag_id: str = "s3_tests",
        run_id: str = "manual__2026-01-01T00:00:00+00:00",
        task_id: str = "store",
        map_index: int = -1,
        xcoms: dict[tuple[str, int, str], Any] | None = None,
    ) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = dag_id, run_id, task_id, map_index
        self.xcoms: dict[tuple[str, int, str], Any] = dict(xcoms or {})

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom must stay JSON: fail here as the real backend would
        self.xcoms[(self.task_id, self.map_index, key)] = value

    def xcom_pull(
        self, task_ids: str | None = None, key: str = "return_value", map_indexes: int | None = None, **_: Any
    ) -> Any:
        return self.xcoms.get((task_ids or self.task_id, -1 if map_indexes is None else map_indexes, key))


def run_context(ti: TaskInstanceStandIn | None = None, **extra: Any) -> Any:
    """A context for ``execute()``: the task instance and real outlet-event accessors."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    return {"ti": ti or TaskInstanceStandIn(), "outlet_events": OutletEventAccessors(), **extra}


def keys_under(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


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
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor
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
        rows = session.query(AssetEvent).filter(AssetEvent.source_run_id == run.run_id).all()
        events = [
            AssetEventDagRunReferenceResult(
                asset={"name": row.asset.name, "uri": row.asset.uri, "extra": {}},
                extra=row.extra,
                source_task_id=row.source_task_id,
                source_dag_id=row.source_dag_id,
                source_run_id=row.source_run_id,
                source_map_index=row.source_map_index,
                source_aliases=[],
                timestamp=row.timestamp,
            )
            for row in rows
        ]
        queued_for = {q.target_dag_id for q in session.query(AssetDagRunQueue).all()}
    assert sorted(uri for e in events for uri in e.extra["uris"]) == [f"s3://{bucket}/{k}" for k in keys]
    assert sorted(e.source_map_index for e in events) == [0, 1, 2]
    assert {e.asset.uri for e in events} == {f"s3://{bucket}/edits"}
    assert "wavespeed_s3_arrivals" in queued_for  # the scheduler would now run the consumer DAG

    # The consumer's task, given what the scheduler would hand it: these very events.
    arrivals = dags["wavespeed_s3_arrivals"]
    triggering = TriggeringAssetEventsAccessor.build(events)
    listed = arrivals.get_task("list_arrivals").python_callable(triggering_asset_events=triggering)
    assert sorted(listed) == [f"s3://{bucket}/{k}" for k in keys]
    assert arrivals.test().state == "success"  # a manual run has no events and says so


def test_example_pipeline_can_seed_its_sample_input_into_a_fresh_bucket(
    aws_conn: str, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = f"ws-test-fresh-{time.time_ns()}"
    dags = load_example_dags(monkeypatch, fresh)
    image = f"s3://{fresh}/inputs/sample_input.png"
    list_inputs = dags["wavespeed_s3_pipeline"].get_task("list_inputs").python_callable
    assert list_inputs(params={"images": [image], "seed_sample_input": True}) == [[image]]
    sample = (S3_EXAMPLE_DAG.parent / "data" / "sample_input.png").read_bytes()
    assert s3.get_object(Bucket=fresh, Key="inputs/sample_input.png")["Body"].read() == sample


# ---------------------------------------------------------------- s3:// inputs, through execute()

MiB = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def edit_operator(cls: type[WaveSpeedImageEditOperator] = WaveSpeedImageEditOperator, **kwargs: Any) -> Any:
    """An edit that polls from the worker quickly (deferral is covered by the dag.test above)."""
    options: dict[str, Any] = {
        "task_id": "edit",
        "prompt": "make it blue",
        "aspect_ratio": "1:1",
        "deferrable": False,
        "poll_interval": 0.05,
        "timeout": 30,
    }
    return cls(**{**options, **kwargs})


def edit_context(**ti: Any) -> Any:
    return run_context(TaskInstanceStandIn(task_id="edit", **ti))


def test_mixed_inputs_presigned_and_outputs_to_s3_with_an_asset_event(
    wavespeed_conn: Emulator,
    s3: Any,
    bucket: str,
    sample_png: bytes,
    sample_png_path: Path,
    emulator_image_url: str,
) -> None:
    s3_input = put_png(s3, bucket, "inputs/a photo+1.png", sample_png)
    op = edit_operator(
        images=[s3_input, emulator_image_url, str(sample_png_path)],
        output_uri=f"s3://{bucket}/out",
        timeout=600,
    )
    assert op.outlets == [Asset(f"s3://{bucket}/out")]
    context = edit_context()
    started = time.time()

    stored = op.execute(context)

    (prediction,) = wavespeed_conn.predictions.values()
    assert prediction.status == "completed" and not prediction.error
    presigned, passed_through, uploaded = prediction.image_urls
    assert presigned.startswith(f"{s3.meta.endpoint_url}/{bucket}/inputs/a%20photo%2B1.png?")
    assert presigned_expiry(presigned) >= started + 600 + 3600 - 5  # valid past the task's timeout
    assert passed_through == emulator_image_url
    assert uploaded.startswith(f"{wavespeed_conn.base_url}/media/")
    (key,) = keys_under(s3, bucket, "out/")
    assert key == f"out/s3_tests/{RUN_KEY}/edit/0/{prediction.id}_0.png"
    assert stored == [f"s3://{bucket}/{key}"]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == prediction.output_bytes
    assert context["outlet_events"][Asset(f"s3://{bucket}/out")].extra == {"uris": stored}


def presigned_expiry(url: str) -> float:
    """When a SigV2 or SigV4 presigned URL stops working, in epoch seconds."""
    from datetime import datetime, timezone
    from urllib.parse import parse_qs, urlparse

    query = {name: values[0] for name, values in parse_qs(urlparse(url).query).items()}
    if "Expires" in query:
        return float(query["Expires"])
    signed = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return signed.timestamp() + int(query["X-Amz-Expires"])


def test_upload_mode_streams_the_object_through_the_media_upload(
    wavespeed_conn: Emulator, s3: Any, bucket: str, sample_png: bytes
) -> None:
    # No extension on the key: the upload is named from the bytes (the endpoint needs a type).
    s3_input = put_png(s3, bucket, "inputs/photo", sample_png)
    op = edit_operator(images=[s3_input], input_mode="upload")

    outputs = op.execute(edit_context())

    (prediction,) = wavespeed_conn.predictions.values()
    assert prediction.status == "completed" and not prediction.error
    (image_url,) = prediction.image_urls
    assert image_url.startswith(f"{wavespeed_conn.base_url}/media/") and image_url.endswith("/photo.png")
    (upload,) = wavespeed_conn.uploads.values()
    assert upload.data == sample_png
    # The catalog is read first (it bills nothing), then the object is uploaded before anything is submitted.
    assert [r.path for r in wavespeed_conn.requests if r.path != "/api/v3/models"][0] == "/api/v3/media/upload/binary"
    assert outputs == prediction.outputs


@pytest.mark.parametrize(
    ("key", "body", "reason"),
    [
        # Neither the key's name nor its first bytes say image.
        pytest.param("inputs/notes", b"just some text, not an image", "is not an image WaveSpeed accepts", id="not-an-image"),
        # A zero-byte key such as a folder marker: a clear error, not S3's InvalidRange.
        pytest.param("inputs/folder/", b"", "is empty", id="empty-object"),
    ],
)
def test_upload_mode_refuses_an_object_it_cannot_upload_before_any_upload(
    wavespeed_conn: Emulator, s3: Any, bucket: str, sample_png_path: Path, key: str, body: bytes, reason: str
) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    op = edit_operator(images=[str(sample_png_path), f"s3://{bucket}/{key}"], input_mode="upload")
    with pytest.raises(WaveSpeedInputError, match=rf"images\[1\]: s3://{bucket}/{key} {reason}"):
        op.execute(edit_context())
    assert wavespeed_conn.requests == []


@pytest.mark.parametrize("key", ["inputs/notes.png", "inputs/notes"])
def test_presign_mode_refuses_an_object_that_is_not_an_image_before_any_request(
    wavespeed_conn: Emulator, s3: Any, bucket: str, key: str
) -> None:
    """Issue 10, point 9: a presigned object is read by WaveSpeed, so its first bytes are checked too."""
    s3.put_object(Bucket=bucket, Key=key, Body=b"just some text, not an image")
    op = edit_operator(images=[f"s3://{bucket}/{key}"])
    with pytest.raises(WaveSpeedInputError, match=rf"images\[0\]: s3://{bucket}/{key} is not an image"):
        op.execute(edit_context())
    assert wavespeed_conn.requests == []


@pytest.mark.parametrize(
    "missing",
    [
        pytest.param("s3://{bucket}/inputs/missing.png", id="no-such-key"),
        pytest.param("s3://ws-test-no-such-bucket/inputs/a.png", id="no-such-bucket"),
    ],
)
def test_a_missing_s3_input_fails_before_any_request_reaches_wavespeed(
    wavespeed_conn: Emulator,
    s3: Any,
    bucket: str,
    sample_png: bytes,
    sample_png_path: Path,
    emulator_image_url: str,
    missing: str,
) -> None:
    present = put_png(s3, bucket, "inputs/present.png", sample_png)
    missing = missing.format(bucket=bucket)
    for mode in ("presign", "upload"):
        op = edit_operator(
            images=[str(sample_png_path), present, missing, emulator_image_url], input_mode=mode
        )
        with pytest.raises(WaveSpeedInputError, match=rf"images\[2\]: {re.escape(missing)} does not exist"):
            op.execute(edit_context())
    assert wavespeed_conn.requests == []  # not even the local file's upload


@pytest.mark.parametrize(
    "bad",
    ["s3://ws-bucket", "s3://ws-bucket/", "s3:///key.png", "s3://Bad_Bucket/key.png", "s3://ab/key.png"],
)
def test_a_malformed_s3_uri_is_refused_at_construction_naming_it(emulator: Emulator, bad: str) -> None:
    with pytest.raises(WaveSpeedInputError, match=r"images\[1\] must be s3://bucket/key") as caught:
        edit_operator(images=["https://example.com/a.png", bad])
    assert bad in str(caught.value)
    assert emulator.requests == []


def test_a_malformed_s3_uri_from_a_template_fails_at_execute_before_any_request(
    wavespeed_conn: Emulator,
) -> None:
    op = edit_operator(images=["https://example.com/a.png", "{{ params.image }}"])
    context = edit_context()
    op.render_template_fields({**context, "params": {"image": "s3://only-a-bucket"}})
    with pytest.raises(WaveSpeedInputError, match=r"images\[1\] must be s3://bucket/key"):
        op.execute(context)
    assert wavespeed_conn.requests == []


# ---------------------------------------------------------------- outputs into S3


@pytest.mark.parametrize("data_uri_prefix", [False, True], ids=["bare-base64", "data-uri"])
def test_base64_outputs_are_decoded_into_png_objects(
    wavespeed_conn: Emulator, s3: Any, bucket: str, emulator_image_url: str, data_uri_prefix: bool
) -> None:
    wavespeed_conn.config.base64_data_uri_prefix = data_uri_prefix
    op = edit_operator(
        images=[emulator_image_url], enable_base64_output=True, output_uri=f"s3://{bucket}/b64"
    )
    context = edit_context()

    stored = op.execute(context)

    (prediction,) = wavespeed_conn.predictions.values()
    (key,) = keys_under(s3, bucket, "b64/")
    assert stored == [f"s3://{bucket}/{key}"] and key.endswith(f"/{prediction.id}_0.png")
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ContentType"] == "image/png"
    assert got["Body"].read() == prediction.output_bytes and prediction.output_bytes.startswith(PNG_SIGNATURE)
    assert max(len(json.dumps(value)) for value in context["ti"].xcoms.values()) < 1000  # no bytes in XCom


def finished_output(emulator: Emulator, image_url: str) -> tuple[str, str]:
    """Run one real edit on the emulator; answers (prediction id, output URL)."""
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook

    hook = WaveSpeedHook()
    prediction = hook.submit("openai/gpt-image-2/edit", {"images": [image_url], "prompt": "x"})
    done = hook.wait_for_prediction(prediction.id, poll_interval=0.05, timeout=30)
    return done.id, done.outputs[0]


def store_operator(bucket: str, outputs: Any, **kwargs: Any) -> WaveSpeedToS3Operator:
    return WaveSpeedToS3Operator(
        task_id="store", outputs=outputs, dest_s3_prefix=f"s3://{bucket}/out", **kwargs
    )


def test_a_large_output_streams_into_a_multipart_upload(
    wavespeed_conn: Emulator, s3: Any, bucket: str, emulator_image_url: str
) -> None:
    prediction_id, url = finished_output(wavespeed_conn, emulator_image_url)
    wavespeed_conn.config.large_output_bytes = 20 * MiB
    op = store_operator(bucket, [url], prediction_id=prediction_id)
    context = run_context()

    stored = op.execute(context)

    key = f"out/s3_tests/{RUN_KEY}/store/0/{prediction_id}_0.png"
    assert stored == [f"s3://{bucket}/{key}"]
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == 20 * MiB and head["ContentType"] == "image/png"
    assert head["ETag"].strip('"').endswith("-3")  # three 8 MiB parts, not one 20 MiB PUT
    assert s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-7")["Body"].read() == PNG_SIGNATURE
    assert context["outlet_events"][Asset(f"s3://{bucket}/out")].extra == {"uris": stored}


def no_upload_left(s3: Any, bucket: str) -> bool:
    return not keys_under(s3, bucket) and not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_max_output_bytes_refuses_an_output_announced_too_large(
    wavespeed_conn: Emulator, s3: Any, bucket: str, emulator_image_url: str
) -> None:
    _, url = finished_output(wavespeed_conn, emulator_image_url)
    wavespeed_conn.config.large_output_bytes = 20 * MiB
    op = store_operator(bucket, [url], max_output_bytes=MiB)
    with pytest.raises(
        OutputTooLargeError, match=rf"{re.escape(url)} is {20 * MiB} bytes, over max_output_bytes={MiB}"
    ):
        op.execute(run_context())
    assert no_upload_left(s3, bucket)


#: The cdn below listens on loopback: storage tests lift the output-host rule for it (tested on its own).
LOOPBACK_CDN = {"allow_private_output_hosts": True}


@pytest.fixture
def cdn(sample_png: bytes) -> Iterator[str]:
    """A loopback file server behaving like real CDNs do; answers its base URL.

    ``/outputs/endless.png``: 12 MiB of 'PNG' with no Content-Length (only counting can stop it);
    ``/download?id=1``: the sample PNG as ``application/octet-stream`` under a name with no extension.
    """
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            endless = self.path == "/outputs/endless.png"
            self.send_response(200)
            self.send_header("Content-Type", "image/png" if endless else "application/octet-stream")
            if not endless:
                self.send_header("Content-Length", str(len(sample_png)))
            self.end_headers()
            try:
                if not endless:
                    self.wfile.write(sample_png)
                    return
                self.wfile.write(PNG_SIGNATURE)
                for _ in range(12):
                    self.wfile.write(bytes(MiB))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading: what the size-cap test wants

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_max_output_bytes_stops_a_runaway_download_midway_and_keeps_nothing(
    aws_conn: str, s3: Any, bucket: str, cdn: str
) -> None:
    # 10 MiB: past the first 8 MiB part, so a multipart upload was started and must be aborted.
    op = store_operator(bucket, [f"{cdn}/outputs/endless.png"], max_output_bytes=10 * MiB, **LOOPBACK_CDN)
    with pytest.raises(
        OutputTooLargeError, match=rf"larger than max_output_bytes={10 * MiB}; the copy was stopped"
    ):
        op.execute(run_context())
    assert no_upload_left(s3, bucket)


def test_a_failed_output_removes_the_ones_stored_before_it_so_a_retry_starts_clean(
    aws_conn: str, s3: Any, bucket: str, cdn: str
) -> None:
    """All or nothing: output 1 trips the size cap, so output 0 is removed and replace=False can retry."""
    outputs = [f"{cdn}/download?id=1", f"{cdn}/outputs/endless.png"]
    with pytest.raises(OutputTooLargeError):
        store_operator(bucket, outputs, max_output_bytes=10 * MiB, replace=False, **LOOPBACK_CDN).execute(
            run_context()
        )
    assert no_upload_left(s3, bucket)

    stored = store_operator(bucket, outputs, max_output_bytes=20 * MiB, replace=False, **LOOPBACK_CDN).execute(
        run_context()
    )
    assert len(stored) == 2 and len(keys_under(s3, bucket)) == 2


def test_a_failed_copy_never_deletes_a_key_it_overwrote(aws_conn: str, s3: Any, bucket: str, cdn: str) -> None:
    """With replace=True, a key that held an earlier copy keeps the new one; only new keys are removed."""
    outputs = [f"{cdn}/download?id=1", f"{cdn}/download?id=1", f"{cdn}/outputs/endless.png"]
    first = store_operator(bucket, outputs[:1], prediction_id="p1", **LOOPBACK_CDN).execute(run_context())
    with pytest.raises(OutputTooLargeError):
        store_operator(bucket, outputs, prediction_id="p1", max_output_bytes=10 * MiB, **LOOPBACK_CDN).execute(
            run_context()
        )
    # Output 0 overwrote the earlier copy and stays; output 1 was new and is gone; 2 never landed.
    assert [f"s3://{bucket}/{key}" for key in keys_under(s3, bucket)] == first
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_a_store_that_s3_refuses_is_an_output_error_naming_the_prediction(
    aws_conn: str, s3: Any, bucket: str, cdn: str
) -> None:
    """S3's own refusal (here: no such bucket) surfaces as a WaveSpeedOutputError, not a raw boto error."""
    op = store_operator(f"{bucket}-missing", [f"{cdn}/download?id=1"], prediction_id="p-refused", **LOOPBACK_CDN)
    with pytest.raises(WaveSpeedOutputError, match=rf"outputs of prediction p-refused in s3://{bucket}-missing/"):
        op.execute(run_context())


def test_a_key_template_without_n_is_refused_for_several_outputs_before_any_download(
    aws_conn: str, s3: Any, bucket: str
) -> None:
    outputs = ["http://127.0.0.1:9/a.png", "http://127.0.0.1:9/b.png"]  # nothing listens: never fetched
    op = store_operator(bucket, outputs, prediction_id="p1", key_template="{prediction_id}.{ext}")
    with pytest.raises(WaveSpeedInputError, match=r"gives the 2 outputs of one prediction the same name"):
        op.execute(run_context())
    assert keys_under(s3, bucket) == []


def test_max_output_bytes_applies_to_base64_outputs(tmp_path: Path, sample_png: bytes) -> None:
    from airflow_wavespeed.utils.storage import store_outputs

    encoded = base64.b64encode(sample_png).decode()
    with pytest.raises(OutputTooLargeError, match="base64 output is larger than max_output_bytes=100"):
        store_outputs([encoded], str(tmp_path), download=loopback_download(), names=OUTPUT_NAMES, max_output_bytes=100)
    assert list(tmp_path.iterdir()) == []
    (stored,) = store_outputs([encoded], str(tmp_path), download=loopback_download(), names=OUTPUT_NAMES)
    assert Path(stored).read_bytes() == sample_png


def test_local_storage_keeps_nothing_of_a_failed_copy_and_follows_no_planted_link(
    tmp_path: Path, cdn: str
) -> None:
    from airflow_wavespeed.utils.storage import store_outputs

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    outputs = [f"{cdn}/download?id=1", f"{cdn}/outputs/endless.png"]
    with pytest.raises(OutputTooLargeError):
        store_outputs(outputs, str(out), download=loopback_download(), names=OUTPUT_NAMES, max_output_bytes=10 * MiB)
    assert list(out.iterdir()) == []

    # A link where a naive copy would write its partial file must not redirect the bytes.
    (out / "fixed.png.part").symlink_to(elsewhere)
    (stored,) = store_outputs([f"{cdn}/download?id=1"], str(out), download=loopback_download(), names=OUTPUT_NAMES, name_template="fixed.{ext}")
    assert not elsewhere.exists()
    assert Path(stored) == out / "fixed.png" and not Path(stored).is_symlink()
    assert Path(stored).read_bytes()[:8] == PNG_SIGNATURE


def test_the_content_type_and_extension_come_from_the_bytes_when_the_server_is_vague(
    aws_conn: str, s3: Any, bucket: str, cdn: str, sample_png: bytes
) -> None:
    op = store_operator(bucket, [f"{cdn}/download?id=1"], key_template="{n}.{ext}", **LOOPBACK_CDN)
    assert op.execute(run_context()) == [f"s3://{bucket}/out/0.png"]
    got = s3.get_object(Bucket=bucket, Key="out/0.png")
    assert got["ContentType"] == "image/png" and got["Body"].read() == sample_png


def test_replace_false_refuses_an_existing_key_and_leaves_it_alone(
    aws_conn: str, s3: Any, bucket: str, sample_png: bytes
) -> None:
    s3.put_object(Bucket=bucket, Key="out/fixed.png", Body=b"old")
    output = base64.b64encode(sample_png).decode()
    op = store_operator(bucket, [output], key_template="fixed.{ext}", replace=False)
    with pytest.raises(
        OutputExistsError, match=rf"s3://{bucket}/out/fixed.png already exists and replace=False"
    ):
        op.execute(run_context())
    assert s3.get_object(Bucket=bucket, Key="out/fixed.png")["Body"].read() == b"old"

    replacing = store_operator(bucket, [output], key_template="fixed.{ext}")
    assert replacing.execute(run_context()) == [f"s3://{bucket}/out/fixed.png"]
    assert s3.get_object(Bucket=bucket, Key="out/fixed.png")["Body"].read() == sample_png


def test_a_custom_key_template_names_every_output(
    aws_conn: str, s3: Any, bucket: str, sample_png: bytes
) -> None:
    outputs = [
        base64.b64encode(sample_png).decode(),
        "data:image/png;base64," + base64.b64encode(sample_png).decode(),
    ]
    op = store_operator(
        bucket, outputs, key_template="{dag_id}/{prediction_id}/{n}.{ext}", prediction_id="pred-1"
    )
    assert op.execute(run_context()) == [f"s3://{bucket}/out/s3_tests/pred-1/{n}.png" for n in (0, 1)]
    assert keys_under(s3, bucket) == ["out/s3_tests/pred-1/0.png", "out/s3_tests/pred-1/1.png"]


@pytest.mark.parametrize(
    "template",
    [
        "../../{n}.{ext}",
        "/etc/{n}.{ext}",
        "{dag_id}/../../../{n}.{ext}",
        "./{task_id}/..//{prediction_id}.{ext}",
        "{run_id}/{prediction_id}.{ext}",
    ],
)
def test_keys_from_templates_and_values_stay_under_the_prefix(
    aws_conn: str, s3: Any, bucket: str, sample_png: bytes, template: str
) -> None:
    ti = TaskInstanceStandIn(dag_id="..", run_id="../../../escape", task_id="..")
    op = WaveSpeedToS3Operator(
        task_id="store",
        outputs=[base64.b64encode(sample_png).decode()],
        dest_s3_prefix=f"s3://{bucket}/safe/prefix",
        key_template=template,
        prediction_id="x..",  # '..' alone is no prediction id (refused); '..' inside one is defused
    )
    (stored,) = op.execute(run_context(ti))
    (key,) = keys_under(s3, bucket)
    assert stored == f"s3://{bucket}/{key}" and key.startswith("safe/prefix/")
    assert ".." not in key.removeprefix("safe/prefix/").split("/") and "//" not in key


def test_a_template_that_names_nothing_is_an_error(aws_conn: str, bucket: str, sample_png: bytes) -> None:
    op = store_operator(bucket, [base64.b64encode(sample_png).decode()], key_template="../..")
    with pytest.raises(WaveSpeedInputError, match="produced an empty name"):
        op.execute(run_context())


def test_keys_are_named_by_the_upstream_prediction_id_else_a_hash(
    aws_conn: str, s3: Any, bucket: str, sample_png: bytes
) -> None:
    from airflow.sdk import DAG

    output = base64.b64encode(sample_png).decode()
    with DAG("s3_tests", schedule=None):
        edit = edit_operator(images=["https://example.com/a.png"])
        store = store_operator(bucket, edit.output, key_template="{prediction_id}.{ext}")
    assert store.upstream_task_ids == {"edit"}
    store.outputs = [output]  # what rendering the XComArg gives at run time
    ti = TaskInstanceStandIn(xcoms={("edit", -1, "prediction_id"): "pred-up"})
    assert store.execute(run_context(ti)) == [f"s3://{bucket}/out/pred-up.png"]

    alone = store_operator(bucket, [output], key_template="{prediction_id}.{ext}")
    digest = hashlib.sha256(output.encode()).hexdigest()[:12]
    assert alone.execute(run_context()) == [f"s3://{bucket}/out/{digest}.png"]


# ---------------------------------------------------------------- the transfer operator's contract


def test_the_destination_is_an_asset_outlet_unless_outlets_are_given() -> None:
    url = ["https://example.com/a.png"]
    assert WaveSpeedToS3Operator(
        task_id="a", outputs=url, dest_s3_prefix="s3://ws-bucket/edits/"
    ).outlets == [Asset("s3://ws-bucket/edits")]
    templated = WaveSpeedToS3Operator(
        task_id="b", outputs=url, dest_s3_prefix="s3://ws-bucket/edits/{{ ds }}"
    )
    assert templated.outlets == [Asset("s3://ws-bucket/edits")]
    unknown_bucket = WaveSpeedToS3Operator(
        task_id="c", outputs=url, dest_s3_prefix="s3://{{ params.bucket }}/e"
    )
    assert unknown_bucket.outlets == []
    mine = Asset("edited-images")
    assert WaveSpeedToS3Operator(
        task_id="d", outputs=url, dest_s3_prefix="s3://ws-b/e", outlets=[mine]
    ).outlets == [mine]
    assert (
        WaveSpeedToS3Operator(task_id="e", outputs=url, dest_s3_prefix="s3://ws-b/e", outlets=[]).outlets
        == []
    )


def test_mapped_operators_declare_the_destination_as_their_outlet_too() -> None:
    """Airflow reads a mapped task's outlets at parse time, so partial() must declare them."""
    from datetime import datetime

    from airflow.sdk import DAG

    url = [["https://example.com/a.png"]]
    with DAG("mapped_outlets", schedule=None, start_date=datetime(2026, 1, 1)):
        copy = WaveSpeedToS3Operator.partial(task_id="copy", dest_s3_prefix="s3://ws-bucket/edits").expand(
            outputs=url
        )
        edit = WaveSpeedImageEditOperator.partial(
            task_id="edit", prompt="p", output_uri="s3://ws-bucket/direct/{{ ds }}"
        ).expand(images=url)
        mine = Asset("edited-images")
        chosen = WaveSpeedToS3Operator.partial(
            task_id="chosen", dest_s3_prefix="s3://ws-bucket/edits", outlets=[mine]
        ).expand(outputs=url)
        later = WaveSpeedToS3Operator.partial(task_id="later").expand(
            outputs=url, dest_s3_prefix=["s3://ws-bucket/x"]
        )
    assert copy.outlets == [Asset("s3://ws-bucket/edits")]
    assert edit.outlets == [Asset("s3://ws-bucket/direct")]
    assert chosen.outlets == [mine]
    assert later.outlets == []  # the prefix is known only at run time (README says so)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outputs": 5}, r"outputs must be a list of output URLs or base64 strings"),
        ({"outputs": [None]}, r"outputs\[0\] must be a non-empty string"),
        (
            {"outputs": ["https://x.io/a.png", "s3://ws-b/k.png"]},
            r"outputs\[1\] has scheme s3://; only http\(s\)",
        ),
        ({"outputs": ["file:///etc/passwd"]}, r"outputs\[0\] has scheme file://"),
        ({"outputs": ["https://exa mple.com/a.png"]}, r"outputs\[0\] is not a valid URL"),
        (
            {"outputs": ["0123456789abcdef0123456789abcdef"]},
            r"outputs\[0\] is neither .* \(a prediction id\?",
        ),
        (
            {"outputs": [["https://x.io/a.png"]]},
            r"outputs\[0\] is a list: .*\.expand\(outputs=edit_task\.output\)",
        ),
        ({"outputs": ["data:image/png,abc"]}, r"outputs\[0\] is a data: URI without ';base64,'"),
        ({"dest_s3_prefix": "ws-bucket/edits"}, r"dest_s3_prefix must be s3://bucket\[/prefix\]"),
        ({"dest_s3_prefix": "s3://"}, r"dest_s3_prefix must be s3://bucket"),
        ({"dest_s3_prefix": "s3://Bad_Bucket/e"}, r"dest_s3_prefix must be s3://bucket"),
        ({"dest_s3_prefix": "s3://ws-bucket/a/../b"}, r"dest_s3_prefix may not contain '\.' or '\.\.'"),
        ({"key_template": "{nope}.{ext}"}, r"key_template '\{nope\}\.\{ext\}' is not valid: 'nope'; allowed"),
        ({"key_template": ""}, r"key_template must be a non-empty str.format template"),
        ({"replace": "yes"}, r"replace must be True or False"),
        ({"max_output_bytes": 0}, r"max_output_bytes must be a positive int"),
        ({"max_output_bytes": True}, r"max_output_bytes must be a positive int"),
        ({"max_output_bytes": 1.5}, r"max_output_bytes must be a positive int"),
        ({"prediction_id": "not an id!"}, r"prediction_id must be the id WaveSpeed returned"),
        ({"aws_conn_id": ""}, r"aws_conn_id must be a connection id or None"),
    ],
)
def test_bad_arguments_are_refused_at_construction_naming_them(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"task_id": "store", "outputs": ["https://x.io/a.png"], "dest_s3_prefix": "s3://ws-bucket/e"}
    with pytest.raises(WaveSpeedInputError, match=message):
        WaveSpeedToS3Operator(**{**arguments, **kwargs})


@pytest.mark.parametrize(
    ("field", "rendered", "message"),
    [
        ("outputs", "ftp://x.io/a.png", r"outputs\[0\] has scheme ftp://"),
        ("dest_s3_prefix", "https://ws-bucket/e", r"dest_s3_prefix must be s3://bucket"),
        ("key_template", "{oops", r"key_template '\{oops' is not valid"),
        ("prediction_id", "bad id", r"prediction_id must be the id WaveSpeed returned"),
    ],
)
def test_templated_arguments_are_checked_at_execute_after_rendering(
    aws_conn: str, s3: Any, bucket: str, field: str, rendered: str, message: str
) -> None:
    arguments: dict[str, Any] = {
        "task_id": "store",
        "outputs": ["https://x.io/a.png"],
        "dest_s3_prefix": f"s3://{bucket}/e",
        field: "{{ params.value }}",
    }
    op = WaveSpeedToS3Operator(**arguments)  # nothing to check yet
    context = run_context()
    op.render_template_fields({**context, "params": {"value": rendered}})
    with pytest.raises(WaveSpeedInputError, match=message):
        op.execute(context)
    assert keys_under(s3, bucket) == []


def test_no_outputs_skip_the_task_and_store_nothing(aws_conn: str, s3: Any, bucket: str) -> None:
    from airflow.providers.common.compat.sdk import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="No outputs"):
        store_operator(bucket, []).execute(run_context())
    assert keys_under(s3, bucket) == []
