"""The official `wavespeed` SDK (2.0.5), unmodified, against the emulator.

If the SDK works here, the emulator speaks the API the SDK was written for: envelope, statuses,
sync-mode answers, the upload flow, and retryable errors where the SDK expects them.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import requests
from PIL import Image
from wavespeed import Client

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.emulator.state import EMULATED_FAILURE

# Fixtures `emulator`, `emulator_image_url`, `sample_png` come from tests/emulator_fixtures.py via conftest.py.
EDIT = "openai/gpt-image-2/edit"


def make_client(emu: Emulator) -> Client:
    """The SDK client with fast retries (the defaults wait 1, 2, 3... seconds)."""
    return Client(api_key="test-key", base_url=emu.base_url, retry_interval=0.01, max_connection_retries=8)


def fetch_image(url: str) -> Image.Image:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_run_polls_to_completion(emulator: Emulator, emulator_image_url: str) -> None:
    output = make_client(emulator).run(
        EDIT,
        {"images": [emulator_image_url], "prompt": "turn it into a watercolor", "aspect_ratio": "1:1"},
        poll_interval=0.05,
        timeout=30,
    )
    (url,) = output["outputs"]
    assert fetch_image(url).size == (64, 64)
    methods = [(r.method, r.path.rsplit("/", 1)[-1]) for r in emulator.requests]
    assert methods[0] == ("POST", "edit") and methods.count(("GET", "result")) == 2
    assert emulator.submit_count(include_rejected=True) == 1


@pytest.mark.parametrize("aspect_ratio", ["2:3", "3:2"])
def test_run_sync_mode(emulator: Emulator, emulator_image_url: str, aspect_ratio: str) -> None:
    output = make_client(emulator).run(
        EDIT,
        {"images": [emulator_image_url], "prompt": "p", "aspect_ratio": aspect_ratio},
        enable_sync_mode=True,
        timeout=30,
    )
    expected = (64, 96) if aspect_ratio == "2:3" else (96, 64)
    assert fetch_image(output["outputs"][0]).size == expected
    assert [r.method for r in emulator.requests] == ["POST", "GET"]  # the submit, then our own download


def test_get_result(emulator: Emulator, emulator_image_url: str) -> None:
    client = make_client(emulator)
    output = client.run(EDIT, {"images": [emulator_image_url], "prompt": "p"}, poll_interval=0.01, timeout=30)
    (prediction_id,) = emulator.predictions
    result = client.get_result(prediction_id)
    assert result["code"] == 200
    assert result["data"]["status"] == "completed" and result["data"]["outputs"] == output["outputs"]


def test_upload_path_and_stream(emulator: Emulator, sample_png: bytes, tmp_path: Path) -> None:
    client = make_client(emulator)
    path = tmp_path / "input photo.png"
    path.write_bytes(sample_png)
    from_path = client.upload(str(path))
    from_stream = client.upload(io.BytesIO(sample_png))
    for url in (from_path, from_stream):
        assert url.startswith(f"{emulator.base_url}/media/")
        assert requests.get(url, timeout=10).content == sample_png
    assert from_path.endswith("/input_photo.png")
    assert sorted(stored.data == sample_png for stored in emulator.uploads.values()) == [True, True]
    output = client.run(EDIT, {"images": [from_path], "prompt": "p"}, poll_interval=0.01, timeout=30)
    assert fetch_image(output["outputs"][0]).size == (96, 64)


def test_upload_of_non_image_is_refused(emulator: Emulator) -> None:
    with pytest.raises(RuntimeError, match="HTTP 400"):
        make_client(emulator).upload(io.BytesIO(b"plain text, not an image"))
    assert emulator.uploads == {}


def test_sdk_rides_out_poll_faults(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.seed = 5
    emulator.state.reseed()
    emulator.config.processing_polls = 3
    emulator.config.poll_5xx_rate = 0.3
    emulator.config.poll_429_rate = 0.1
    emulator.config.drop_rate = 0.1
    emulator.config.retry_after = "0"
    output = make_client(emulator).run(
        EDIT, {"images": [emulator_image_url], "prompt": "p"}, poll_interval=0.01, timeout=30
    )
    assert output["outputs"]
    statuses = {r.status for r in emulator.requests if r.method == "GET"}
    assert statuses - {200} and 200 in statuses  # faults were injected and survived
    assert emulator.submit_count(include_rejected=True) == 1


def test_sdk_does_not_resubmit_after_a_dropped_submit(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.submit_drop_rate = 1.0
    with pytest.raises(RuntimeError, match="will not retry the POST"):
        make_client(emulator).run(EDIT, {"images": [emulator_image_url], "prompt": "p"}, timeout=30)
    assert emulator.submit_count(include_rejected=True) == 1
    assert len(emulator.predictions) == 1  # the prediction exists: a blind retry would bill twice


def test_sdk_reports_sync_timeout_with_task_id(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.processing_seconds = 0.3
    emulator.config.sync_timeout_seconds = 0.05
    client = make_client(emulator)
    body = {"images": [emulator_image_url], "prompt": "p"}
    with pytest.raises(RuntimeError, match="Sync mode timed out") as caught:
        client.run(EDIT, body, enable_sync_mode=True, timeout=30)
    first_id = next(iter(emulator.predictions))
    assert first_id in str(caught.value)
    result = client.run_no_throw(EDIT, body, enable_sync_mode=True, timeout=30)
    assert result["status"] == "processing" and result["task_id"] in emulator.predictions


def test_sdk_reports_failed_prediction(emulator: Emulator, emulator_image_url: str) -> None:
    with pytest.raises(RuntimeError, match=EMULATED_FAILURE):
        make_client(emulator).run(
            EDIT, {"images": [emulator_image_url], "prompt": "[fail] p"}, poll_interval=0.01, timeout=30
        )


def test_sdk_sees_401_for_a_wrong_key(emulator: Emulator, emulator_image_url: str) -> None:
    client = Client(api_key="wrong-key", base_url=emulator.base_url)
    with pytest.raises(RuntimeError, match="HTTP 401") as caught:
        client.run(EDIT, {"images": [emulator_image_url], "prompt": "p"}, timeout=30)
    assert "wrong-key" not in str(caught.value)
