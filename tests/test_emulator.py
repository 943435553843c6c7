"""The WaveSpeed emulator over real loopback HTTP: API fidelity, lifecycle, faults, control, CLI."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from PIL import Image, ImageChops, ImageOps, ImageStat

from airflow_wavespeed.emulator import Emulator, EmulatorConfig
from airflow_wavespeed.emulator.images import output_size, render_sample_input
from airflow_wavespeed.emulator.state import EMULATED_FAILURE
from tests.emulator_fixtures import EMULATOR_API_KEY, upload_to_emulator

# Fixtures `emulator`, `emulator_image_url`, `sample_png` come from tests/emulator_fixtures.py via conftest.py.
EDIT = "openai/gpt-image-2/edit"
AUTH = {"Authorization": "Bearer test-key"}
ROOT = Path(__file__).resolve().parents[1]


# -- helpers ---------------------------------------------------------------------------------------


def submit(emu: Emulator, body: dict[str, Any], model: str = EDIT, **kwargs: Any) -> requests.Response:
    return requests.post(f"{emu.base_url}/api/v3/{model}", json=body, headers=AUTH, timeout=10, **kwargs)


def poll(emu: Emulator, prediction_id: str, **kwargs: Any) -> requests.Response:
    return requests.get(
        f"{emu.base_url}/api/v3/predictions/{prediction_id}/result", headers=AUTH, timeout=10, **kwargs
    )


def wait_done(emu: Emulator, prediction_id: str, deadline: float = 10.0) -> dict[str, Any]:
    """Poll until terminal; answers the `data` object."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        data: dict[str, Any] = poll(emu, prediction_id).json()["data"]
        if data["status"] in ("completed", "failed"):
            return data
        time.sleep(0.01)
    raise AssertionError(f"prediction {prediction_id} did not finish")


def run_edit(emu: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    response = submit(emu, body)
    assert response.status_code == 200, response.text
    return wait_done(emu, response.json()["data"]["id"])


def fetch_image(url: str) -> Image.Image:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


@pytest.fixture
def http_input_server(sample_png: bytes) -> Iterator[tuple[str, list[str]]]:
    """A second, independent HTTP server on loopback serving /in.png, /notes.txt; 404 otherwise."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            hits.append(self.path)
            body, ctype = {
                "/in.png": (sample_png, "image/png"),
                "/notes.txt": (b"not an image", "text/plain"),
            }.get(self.path, (b"", ""))
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", ctype or "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- happy path ------------------------------------------------------------------------------------


def test_submit_then_poll_to_completion(emulator: Emulator, sample_png: bytes) -> None:
    url = upload_to_emulator(emulator, sample_png, "my photo.png")
    assert re.fullmatch(rf"{emulator.base_url}/media/[0-9a-f]{{32}}/my_photo\.png", url)

    created = submit(emulator, {"images": [url], "prompt": "make it blue", "aspect_ratio": "1:1"})
    assert created.status_code == 200
    envelope = created.json()
    assert (envelope["code"], envelope["message"]) == (200, "success")
    data = envelope["data"]
    prediction_id = data["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", prediction_id)
    assert data == {
        "id": prediction_id,
        "model": EDIT,
        "outputs": [],
        "urls": {"get": f"{emulator.base_url}/api/v3/predictions/{prediction_id}/result"},
        "has_nsfw_contents": [],
        "status": "created",
        "created_at": data["created_at"],
        "error": "",
        "timings": {"inference": 0},
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["created_at"])

    first = poll(emulator, prediction_id).json()["data"]  # processing_polls=1: one poll in processing
    assert first["status"] == "processing" and first["outputs"] == []
    done = poll(emulator, prediction_id).json()["data"]
    assert done["status"] == "completed"
    assert done["outputs"] == [f"{emulator.base_url}/outputs/{prediction_id}/0.png"]
    assert done["has_nsfw_contents"] == [False]
    assert done["timings"]["inference"] >= 1

    output = fetch_image(done["outputs"][0])
    assert (output.format, output.size) == ("PNG", (64, 64))
    # The edit is visible: the output is far from the input merely fitted to the same size.
    fitted = ImageOps.fit(Image.open(io.BytesIO(sample_png)).convert("RGB"), output.size)
    difference = ImageStat.Stat(ImageChops.difference(fitted, output.convert("RGB"))).mean
    assert sum(difference) / 3 > 15

    assert emulator.submit_count() == 1
    assert [(r.method, r.status) for r in emulator.requests] == [
        ("POST", 200),  # upload
        ("POST", 200),  # submit
        ("GET", 200),
        ("GET", 200),
        ("GET", 200),  # output file
    ]
    assert {r.prediction_id for r in emulator.requests[1:]} == {prediction_id}
    assert emulator.predictions[prediction_id].status == "completed"


def test_get_prediction_without_result_suffix(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.processing_polls = 0
    prediction_id = submit(emulator, {"images": [emulator_image_url], "prompt": "p"}).json()["data"]["id"]
    response = requests.get(
        f"{emulator.base_url}/api/v3/predictions/{prediction_id}", headers=AUTH, timeout=10
    )
    assert response.json()["data"]["status"] == "completed"


@pytest.mark.parametrize(
    ("aspect_ratio", "size"),
    [("1:1", (64, 64)), ("2:3", (64, 96)), ("3:2", (96, 64)), ("16:9", (96, 54)), (None, (96, 64))],
    ids=["1:1", "2:3", "3:2", "16:9", "detected-from-3:2-input"],
)
def test_output_size_follows_aspect_ratio(
    emulator: Emulator, emulator_image_url: str, aspect_ratio: str | None, size: tuple[int, int]
) -> None:
    emulator.config.processing_polls = 0
    body: dict[str, Any] = {"images": [emulator_image_url], "prompt": "resize me"}
    if aspect_ratio is not None:
        body["aspect_ratio"] = aspect_ratio
    data = run_edit(emulator, body)
    assert fetch_image(data["outputs"][0]).size == size


def test_real_sizes_at_scale_one() -> None:
    assert output_size("1:1") == (1024, 1024)
    assert output_size("2:3") == (1024, 1536)
    assert output_size("3:2") == (1536, 1024)
    assert output_size("9:21") == (656, 1536)


def test_jpeg_output_and_several_inputs(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.processing_polls = 0
    second = emulator.add_upload(render_sample_input(40, 40), "small.png")
    data = run_edit(
        emulator,
        {"images": [emulator_image_url, second], "prompt": "p", "output_format": "jpeg", "unknown": 1},
    )
    assert data["outputs"][0].endswith("/0.jpeg")
    response = requests.get(data["outputs"][0], timeout=10)
    assert response.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).format == "JPEG"


def test_generic_model_generates_png(emulator: Emulator) -> None:
    emulator.config.processing_polls = 0
    response = submit(emulator, {"prompt": "a cat"}, model="wavespeed-ai/flux-dev")
    assert response.json()["data"]["model"] == "wavespeed-ai/flux-dev"
    data = wait_done(emulator, response.json()["data"]["id"])
    assert data["status"] == "completed"
    assert fetch_image(data["outputs"][0]).size == (64, 64)


def test_processing_seconds(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.processing_polls = 0
    emulator.config.processing_seconds = 0.3
    started = time.monotonic()
    prediction_id = submit(emulator, {"images": [emulator_image_url], "prompt": "p"}).json()["data"]["id"]
    assert poll(emulator, prediction_id).json()["data"]["status"] == "processing"
    wait_done(emulator, prediction_id)
    assert time.monotonic() - started >= 0.3


def test_balance(emulator: Emulator) -> None:
    emulator.config.balance = 12.5
    response = requests.get(f"{emulator.base_url}/api/v3/balance", headers=AUTH, timeout=10)
    assert response.json() == {"code": 200, "message": "success", "data": {"balance": 12.5}}


# -- auth and validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Bearer "}, {"Authorization": "test-key"}],
    ids=["missing", "wrong-key", "empty-bearer", "no-scheme"],
)
@pytest.mark.parametrize("route", ["submit", "result", "balance", "upload"])
def test_auth_rejected(emulator: Emulator, headers: dict[str, str], route: str) -> None:
    base = emulator.base_url
    if route == "submit":
        response = requests.post(f"{base}/api/v3/{EDIT}", json={"prompt": "x"}, headers=headers, timeout=10)
    elif route == "result":
        response = requests.get(f"{base}/api/v3/predictions/abc/result", headers=headers, timeout=10)
    elif route == "balance":
        response = requests.get(f"{base}/api/v3/balance", headers=headers, timeout=10)
    else:
        response = requests.post(
            f"{base}/api/v3/media/upload/binary", files={"file": ("a.png", b"x")}, headers=headers, timeout=10
        )
    assert response.status_code == 401
    assert response.json() == {"code": 401, "message": "Unauthorized: invalid or missing API key"}
    assert "test-key" not in response.text and "wrong-key" not in response.text
    assert emulator.submit_count() == 0
    assert emulator.requests[-1].status == 401


def test_any_bearer_accepted_without_configured_key() -> None:
    with Emulator(config=EmulatorConfig(scale=0.0625)) as emu:
        ok = requests.get(f"{emu.base_url}/api/v3/balance", headers={"Authorization": "Bearer x"}, timeout=10)
        missing = requests.get(f"{emu.base_url}/api/v3/balance", timeout=10)
    assert (ok.status_code, missing.status_code) == (200, 401)


LONG_PROMPT = "x" * 32001


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"prompt": "p"}, "images is required", id="images-missing"),
        pytest.param({"images": None, "prompt": "p"}, "images is required", id="images-null"),
        pytest.param({"images": "http://a/b.png", "prompt": "p"}, "images must be a list", id="images-str"),
        pytest.param({"images": [], "prompt": "p"}, "at least 1", id="images-empty"),
        pytest.param({"images": ["http://a/b.png"] * 17, "prompt": "p"}, "at most 16", id="images-17"),
        pytest.param({"images": [3], "prompt": "p"}, "images[0] must be a non-empty string", id="images-int"),
        pytest.param({"images": ["u", " "], "prompt": "p"}, "images[1]", id="images-blank"),
        pytest.param({"images": ["u"]}, "prompt is required", id="prompt-missing"),
        pytest.param({"images": ["u"], "prompt": 5}, "prompt must be a string", id="prompt-int"),
        pytest.param({"images": ["u"], "prompt": "  "}, "prompt must not be empty", id="prompt-blank"),
        pytest.param({"images": ["u"], "prompt": LONG_PROMPT}, "at most 32000", id="prompt-too-long"),
        pytest.param({"images": ["u"], "prompt": "p", "aspect_ratio": "7:5"}, "aspect_ratio", id="ratio"),
        pytest.param({"images": ["u"], "prompt": "p", "aspect_ratio": 1}, "aspect_ratio", id="ratio-int"),
        pytest.param({"images": ["u"], "prompt": "p", "resolution": "8k"}, "resolution", id="resolution"),
        pytest.param({"images": ["u"], "prompt": "p", "quality": "ultra"}, "quality", id="quality"),
        pytest.param({"images": ["u"], "prompt": "p", "output_format": "gif"}, "output_format", id="format"),
        pytest.param(
            {"images": ["u"], "prompt": "p", "enable_sync_mode": "true"}, "enable_sync_mode", id="sync-str"
        ),
        pytest.param(
            {"images": ["u"], "prompt": "p", "enable_base64_output": 1}, "enable_base64_output", id="b64-int"
        ),
        pytest.param(["not", "an", "object"], "JSON object", id="body-list"),
    ],
)
def test_validation_400(emulator: Emulator, body: Any, message: str) -> None:
    response = requests.post(f"{emulator.base_url}/api/v3/{EDIT}", json=body, headers=AUTH, timeout=10)
    assert response.status_code == 400
    payload = response.json()
    assert payload["code"] == 400 and message in payload["message"]
    assert emulator.submit_count() == 0 and emulator.submit_count(include_rejected=True) == 1


def test_invalid_json_400(emulator: Emulator) -> None:
    response = requests.post(
        f"{emulator.base_url}/api/v3/{EDIT}",
        data=b"{not json",
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400 and response.json()["code"] == 400


def test_base64_with_webhook_rejected(emulator: Emulator) -> None:
    body = {"images": ["u"], "prompt": "p", "enable_base64_output": True}
    response = submit(emulator, body, params={"webhook": "https://example.com/hook"})
    assert response.status_code == 400


def test_optional_fields_accepted(emulator: Emulator, emulator_image_url: str) -> None:
    body = {
        "images": [emulator_image_url],
        "prompt": "p",
        "aspect_ratio": None,
        "resolution": "4k",
        "quality": "high",
        "output_format": "png",
        "enable_sync_mode": False,
        "enable_base64_output": False,
        "seed": 42,
    }
    assert submit(emulator, body).status_code == 200


@pytest.mark.parametrize("suffix", ["/result", ""])
def test_unknown_prediction_404(emulator: Emulator, suffix: str) -> None:
    response = requests.get(f"{emulator.base_url}/api/v3/predictions/nope{suffix}", headers=AUTH, timeout=10)
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "prediction not found"}


# -- sync mode and base64 --------------------------------------------------------------------------


def test_sync_mode_completes_in_one_request(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.processing_polls = 5  # ignored in sync mode: nobody polls
    response = submit(emulator, {"images": [emulator_image_url], "prompt": "p", "enable_sync_mode": True})
    envelope = response.json()
    assert envelope["code"] == 200 and envelope["data"]["status"] == "completed"
    assert fetch_image(envelope["data"]["outputs"][0]).size == (96, 64)
    assert [r.method for r in emulator.requests] == ["POST", "GET"]


def test_sync_mode_timeout_answers_5004(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.processing_seconds = 0.4
    emulator.config.sync_timeout_seconds = 0.1
    response = submit(emulator, {"images": [emulator_image_url], "prompt": "p", "enable_sync_mode": True})
    assert response.status_code == 200
    envelope = response.json()
    assert (envelope["code"], envelope["message"]) == (5004, "Sync mode timed out")
    assert envelope["data"]["status"] == "processing"
    assert envelope["data"]["error"] == "Sync mode timed out"
    # The task goes on and is fetchable by id (sync predictions complete on time alone).
    assert wait_done(emulator, envelope["data"]["id"])["status"] == "completed"
    assert emulator.submit_count() == 1


def test_sync_mode_gateway_504(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.sync_504_rate = 1.0
    response = submit(emulator, {"images": [emulator_image_url], "prompt": "p", "enable_sync_mode": True})
    assert response.status_code == 504
    assert "text/html" in response.headers["Content-Type"]
    (prediction_id,) = emulator.predictions
    assert emulator.requests[0].prediction_id == prediction_id
    assert wait_done(emulator, prediction_id)["status"] == "completed"


@pytest.mark.parametrize("prefix", [False, True], ids=["plain", "data-uri"])
def test_base64_output(emulator: Emulator, emulator_image_url: str, prefix: bool) -> None:
    emulator.config.base64_data_uri_prefix = prefix
    body = {"images": [emulator_image_url], "prompt": "p", "enable_base64_output": True}
    (output,) = run_edit(emulator, body)["outputs"]
    assert output.startswith("data:image/png;base64,") is prefix
    raw = base64.b64decode(output.removeprefix("data:image/png;base64,"), validate=True)
    assert raw.startswith(b"\x89PNG") and Image.open(io.BytesIO(raw)).size == (96, 64)


# -- inputs fetched over HTTP ----------------------------------------------------------------------


def test_unreachable_input_fails_naming_the_url(emulator: Emulator) -> None:
    url = "http://127.0.0.1:1/x.png"
    data = run_edit(emulator, {"images": [url], "prompt": "p"})
    assert data["status"] == "failed"
    assert data["error"].startswith(f"Failed to fetch input image {url}: ")
    assert data["outputs"] == []


def test_input_fetched_from_another_server(
    emulator: Emulator, http_input_server: tuple[str, list[str]]
) -> None:
    base, hits = http_input_server
    data = run_edit(emulator, {"images": [f"{base}/in.png"], "prompt": "p"})
    assert data["status"] == "completed"
    assert hits == ["/in.png"]
    assert fetch_image(data["outputs"][0]).size == (96, 64)


@pytest.mark.parametrize(
    ("path", "reason"), [("/notes.txt", "not a supported image"), ("/missing.png", "HTTP 404")]
)
def test_bad_input_from_another_server(
    emulator: Emulator, http_input_server: tuple[str, list[str]], path: str, reason: str
) -> None:
    base, _ = http_input_server
    data = run_edit(emulator, {"images": [f"{base}{path}"], "prompt": "p"})
    assert (data["status"], data["error"]) == (
        "failed",
        f"Failed to fetch input image {base}{path}: {reason}",
    )


def test_own_output_can_be_chained_as_input(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.processing_polls = 0
    first = run_edit(emulator, {"images": [emulator_image_url], "prompt": "one"})
    second = run_edit(emulator, {"images": first["outputs"], "prompt": "two"})
    assert second["status"] == "completed"


def test_corrupt_image_fails_the_prediction(emulator: Emulator) -> None:
    url = emulator.add_upload(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "broken.png")
    data = run_edit(emulator, {"images": [url], "prompt": "p"})
    assert data["status"] == "failed" and data["error"].startswith("Failed to process input image")


# -- markers -----------------------------------------------------------------------------------------


def test_fail_marker(emulator: Emulator, emulator_image_url: str) -> None:
    data = run_edit(emulator, {"images": [emulator_image_url], "prompt": "please [fail]"})
    assert (data["status"], data["error"], data["outputs"]) == ("failed", EMULATED_FAILURE, [])


def test_fail_rate(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.fail_rate = 1.0
    assert run_edit(emulator, {"images": [emulator_image_url], "prompt": "p"})["status"] == "failed"


def test_nsfw_marker(emulator: Emulator, emulator_image_url: str) -> None:
    data = run_edit(emulator, {"images": [emulator_image_url], "prompt": "[nsfw] p"})
    assert (data["status"], data["has_nsfw_contents"]) == ("completed", [True])


# -- faults --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "header"), [("1", "1"), ("0.2", "0.2"), (None, None)])
def test_submit_429_count(
    emulator: Emulator, emulator_image_url: str, retry_after: str | None, header: str | None
) -> None:
    emulator.config.submit_429_count = 2
    emulator.config.retry_after = retry_after
    body = {"images": [emulator_image_url], "prompt": "p"}
    for _ in range(2):
        response = submit(emulator, body)
        assert response.status_code == 429
        assert response.json() == {"code": 429, "message": "Rate limit exceeded"}
        assert response.headers.get("Retry-After") == header
        assert emulator.predictions == {}
    assert submit(emulator, body).status_code == 200
    assert emulator.config.submit_429_count == 0
    assert (emulator.submit_count(), emulator.submit_count(include_rejected=True)) == (1, 3)


def test_submit_429_rate(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.submit_429_rate = 1.0
    assert submit(emulator, {"images": [emulator_image_url], "prompt": "p"}).status_code == 429
    assert emulator.submit_count() == 0


def _created(emulator: Emulator, url: str) -> str:
    prediction_id: str = submit(emulator, {"images": [url], "prompt": "p"}).json()["data"]["id"]
    return prediction_id


def test_poll_5xx_does_not_advance(emulator: Emulator, emulator_image_url: str) -> None:
    prediction_id = _created(emulator, emulator_image_url)
    emulator.config.seed = 7
    emulator.state.reseed()
    emulator.config.poll_5xx_rate = 1.0
    statuses = set()
    for _ in range(16):
        response = poll(emulator, prediction_id)
        statuses.add(response.status_code)
        if response.status_code in (500, 503):
            assert response.json()["code"] == response.status_code
        else:
            assert "text/html" in response.headers["Content-Type"]
    assert statuses == {500, 502, 503, 504}
    assert emulator.predictions[prediction_id].polls == 0
    emulator.config.poll_5xx_rate = 0.0
    assert poll(emulator, prediction_id).json()["data"]["status"] == "processing"  # first counted poll


def test_poll_429(emulator: Emulator, emulator_image_url: str) -> None:
    prediction_id = _created(emulator, emulator_image_url)
    emulator.config.poll_429_rate = 1.0
    emulator.config.retry_after = "0"
    response = poll(emulator, prediction_id)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "0")
    assert emulator.predictions[prediction_id].polls == 0


def test_malformed_bodies(emulator: Emulator, emulator_image_url: str) -> None:
    prediction_id = _created(emulator, emulator_image_url)
    emulator.config.seed = 1
    emulator.state.reseed()
    emulator.config.malformed_rate = 1.0
    kinds = set()
    for _ in range(20):
        response = poll(emulator, prediction_id)
        assert response.status_code == 200
        try:
            payload = response.json()
        except ValueError:
            kinds.add("not-json")
            continue
        if "data" not in payload:
            kinds.add("no-data")
        else:
            assert "status" not in payload["data"]
            kinds.add("no-status")
    assert kinds == {"not-json", "no-data", "no-status"}  # truncated JSON also lands in not-json
    assert emulator.predictions[prediction_id].polls == 0


def test_drop_closes_connection(emulator: Emulator, emulator_image_url: str) -> None:
    prediction_id = _created(emulator, emulator_image_url)
    emulator.config.drop_rate = 1.0
    with pytest.raises(requests.ConnectionError):
        poll(emulator, prediction_id)
    assert emulator.requests[-1].status == "dropped"
    assert emulator.predictions[prediction_id].polls == 0


async def test_drop_seen_by_aiohttp_as_disconnect(emulator: Emulator, emulator_image_url: str) -> None:
    prediction_id = _created(emulator, emulator_image_url)
    emulator.config.drop_rate = 1.0
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.get(f"{emulator.base_url}/api/v3/predictions/{prediction_id}/result", headers=AUTH)


def test_slow_polls(emulator: Emulator, emulator_image_url: str) -> None:
    prediction_id = _created(emulator, emulator_image_url)
    emulator.config.slow_rate = 1.0
    emulator.config.slow_seconds = 0.3
    started = time.monotonic()
    assert poll(emulator, prediction_id).status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(requests.ReadTimeout):
        requests.get(
            f"{emulator.base_url}/api/v3/predictions/{prediction_id}/result", headers=AUTH, timeout=0.1
        )


def test_submit_drop_creates_then_drops(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.submit_drop_rate = 1.0
    with pytest.raises(requests.ConnectionError):
        submit(emulator, {"images": [emulator_image_url], "prompt": "p"})
    assert emulator.submit_count() == 1
    (prediction_id,) = emulator.predictions
    assert (emulator.requests[0].status, emulator.requests[0].prediction_id) == ("dropped", prediction_id)
    assert wait_done(emulator, prediction_id)["status"] == "completed"


def test_submit_5xx_creates_then_500(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.submit_5xx_rate = 1.0
    response = submit(emulator, {"images": [emulator_image_url], "prompt": "p"})
    assert response.status_code == 500 and response.json()["code"] == 500
    assert emulator.submit_count() == 1
    (prediction_id,) = emulator.predictions
    assert wait_done(emulator, prediction_id)["status"] == "completed"


def test_upload_5xx_stores_nothing(emulator: Emulator, sample_png: bytes) -> None:
    emulator.config.upload_5xx_rate = 1.0
    with pytest.raises(requests.HTTPError):
        upload_to_emulator(emulator, sample_png)
    assert emulator.requests[-1].status == 503
    assert emulator.uploads == {}


def test_a_503_carries_retry_after_only_when_asked(emulator: Emulator, sample_png: bytes) -> None:
    emulator.config.upload_5xx_rate = 1.0
    for setting, header in ((None, None), ("2", "2")):
        emulator.config.unavailable_retry_after = setting
        with pytest.raises(requests.HTTPError) as raised:
            upload_to_emulator(emulator, sample_png)
        assert raised.value.response.status_code == 503
        assert raised.value.response.headers.get("Retry-After") == header


def test_seed_makes_faults_reproducible(sample_png: bytes) -> None:
    # A server of its own: on the shared one, stray requests from earlier tests could draw from the RNG.
    with Emulator(api_key=EMULATOR_API_KEY, config=EmulatorConfig(processing_polls=1, scale=0.0625)) as emulator:
        prediction_id = _created(emulator, emulator.add_upload(sample_png, "input.png"))

        def run() -> list[int]:
            emulator.config.seed = 123
            emulator.state.reseed()
            emulator.config.poll_5xx_rate = 0.5
            return [poll(emulator, prediction_id).status_code for _ in range(12)]

        assert run() == run()


# -- uploads and files -----------------------------------------------------------------------------


def _encode(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ],
)
def test_upload_accepts_image_formats(emulator: Emulator, fmt: str, content_type: str) -> None:
    data = _encode(fmt)
    response = requests.post(
        f"{emulator.base_url}/api/v3/media/upload/binary",
        headers=AUTH,
        files={"file": (f"pic.{fmt.lower()}", data)},
        timeout=10,
    )
    payload = response.json()["data"]
    assert (payload["type"], payload["filename"], payload["size"]) == (
        "image",
        f"pic.{fmt.lower()}",
        len(data),
    )
    served = requests.get(payload["download_url"], timeout=10)
    assert (served.content, served.headers["Content-Type"]) == (data, content_type)


def test_upload_rejects_non_images_and_missing_field(emulator: Emulator) -> None:
    url = f"{emulator.base_url}/api/v3/media/upload/binary"
    not_image = requests.post(url, headers=AUTH, files={"file": ("a.png", b"hello")}, timeout=10)
    assert not_image.status_code == 400 and "Unsupported file type" in not_image.json()["message"]
    wrong_field = requests.post(url, headers=AUTH, files={"image": ("a.png", _encode("PNG"))}, timeout=10)
    assert wrong_field.status_code == 400
    not_multipart = requests.post(url, headers=AUTH, json={"file": "x"}, timeout=10)
    assert not_multipart.status_code == 400
    assert emulator.uploads == {}


def test_upload_size_limit_413(emulator: Emulator) -> None:
    emulator.config.max_upload_bytes = 1000
    big = render_sample_input(200, 200)
    assert len(big) > 1000
    response = requests.post(
        f"{emulator.base_url}/api/v3/media/upload/binary",
        headers=AUTH,
        files={"file": ("a.png", big)},
        timeout=10,
    )
    assert response.status_code == 413 and response.json()["code"] == 413


def test_unknown_files_404(emulator: Emulator) -> None:
    assert requests.get(f"{emulator.base_url}/media/abc/x.png", timeout=10).status_code == 404
    assert requests.get(f"{emulator.base_url}/outputs/abc/0.png", timeout=10).status_code == 404


def test_large_output_is_streamed_padded(emulator: Emulator, emulator_image_url: str) -> None:
    emulator.config.processing_polls = 0
    emulator.config.large_output_bytes = 3 * 1024 * 1024 + 5
    data = run_edit(emulator, {"images": [emulator_image_url], "prompt": "p"})
    with requests.get(data["outputs"][0], stream=True, timeout=10) as response:
        assert response.headers["Content-Length"] == str(3 * 1024 * 1024 + 5)
        assert response.headers["Content-Type"] == "image/png"
        body = b"".join(response.iter_content(1 << 20))
    assert len(body) == 3 * 1024 * 1024 + 5
    assert Image.open(io.BytesIO(body)).size == (96, 64)


# -- control endpoints, log, lifecycle -----------------------------------------------------------------


def test_control_endpoints(emulator: Emulator, emulator_image_url: str) -> None:
    base = emulator.base_url
    changed = requests.post(
        f"{base}/_emulator/config", json={"poll_5xx_rate": 0.25, "retry_after": "2"}, timeout=10
    )
    assert changed.status_code == 200
    assert changed.json()["poll_5xx_rate"] == 0.25 and changed.json()["processing_polls"] == 1
    assert (emulator.config.poll_5xx_rate, emulator.config.retry_after) == (0.25, "2")
    for bad in ({"nope": 1}, {"poll_5xx_rate": 2}, {"processing_polls": "3"}, {"scale": 0}):
        response = requests.post(f"{base}/_emulator/config", json=bad, timeout=10)
        assert response.status_code == 400, bad
    assert emulator.config.poll_5xx_rate == 0.25  # the rejected changes left it alone
    requests.post(f"{base}/_emulator/config", json={"poll_5xx_rate": 0}, timeout=10)

    emulator.config.submit_429_count = 1
    submit(emulator, {"images": [emulator_image_url], "prompt": "p"})
    prediction_id = _created(emulator, emulator_image_url)
    poll(emulator, prediction_id)

    stats = requests.get(f"{base}/_emulator/stats", timeout=10).json()
    assert stats == {"submits": 1, "submits_rejected": 1, "predictions": {"processing": 1}, "polls": 1}
    log = requests.get(f"{base}/_emulator/requests", timeout=10).json()
    assert [(r["method"], r["status"], r["prediction_id"]) for r in log] == [
        ("POST", 429, None),
        ("POST", 200, prediction_id),
        ("GET", 200, prediction_id),
    ]
    assert all(set(r) == {"method", "path", "status", "prediction_id", "time"} for r in log)
    assert "test-key" not in json.dumps(log)
    summaries = requests.get(f"{base}/_emulator/predictions", timeout=10).json()
    assert [s["id"] for s in summaries] == [prediction_id]

    reset = requests.post(f"{base}/_emulator/reset", timeout=10)
    assert reset.status_code == 200
    assert requests.get(f"{base}/_emulator/requests", timeout=10).json() == []
    assert emulator.predictions == {} and emulator.submit_count(include_rejected=True) == 0


def test_reset_restores_initial_config(emulator: Emulator) -> None:
    emulator.config.drop_rate = 1.0
    emulator.config.processing_polls = 9
    config = emulator.config
    emulator.reset()
    assert emulator.config is config  # references held by tests stay valid
    assert (config.drop_rate, config.processing_polls, config.scale) == (0.0, 1, 0.0625)


def _emulator_threads() -> int:
    return sum(thread.name == "wavespeed-emulator" for thread in threading.enumerate())


def test_stop_is_prompt_with_a_request_in_flight() -> None:
    threads_before = _emulator_threads()
    emu = Emulator(config=EmulatorConfig(processing_seconds=30, scale=0.0625)).start()
    url = emu.add_upload(render_sample_input(32, 32))
    errors: list[BaseException] = []

    def sync_submit() -> None:
        try:
            requests.post(
                f"{emu.base_url}/api/v3/{EDIT}",
                json={"images": [url], "prompt": "p", "enable_sync_mode": True},
                headers={"Authorization": "Bearer k"},
                timeout=10,
            )
        except requests.RequestException as exc:
            errors.append(exc)

    client = threading.Thread(target=sync_submit)
    client.start()
    deadline = time.monotonic() + 5
    while not emu.predictions and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 3
    client.join(5)
    assert errors and not client.is_alive()
    assert _emulator_threads() == threads_before


def test_restart_after_stop() -> None:
    emu = Emulator(api_key="k")
    for _ in range(2):
        with emu:
            response = requests.get(
                f"{emu.base_url}/api/v3/balance", headers={"Authorization": "Bearer k"}, timeout=5
            )
            assert response.status_code == 200
    with pytest.raises(RuntimeError):
        emu.base_url  # noqa: B018 - not running


def test_cli_subprocess() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_wavespeed.emulator",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--balance",
            "7.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"WaveSpeed emulator listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        base = match.group(1)
        response = requests.get(
            f"{base}/api/v3/balance", headers={"Authorization": "Bearer cli-key"}, timeout=10
        )
        assert response.json()["data"] == {"balance": 7.5}
        assert requests.get(f"{base}/api/v3/balance", headers=AUTH, timeout=10).status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()


def test_cli_rejects_bad_flag_values() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_wavespeed.emulator", "--poll-5xx-rate", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=30,
    )
    assert result.returncode == 2 and "poll_5xx_rate must be between 0 and 1" in result.stderr
