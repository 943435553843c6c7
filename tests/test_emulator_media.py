"""The emulator's outputs of every kind, decoded with real decoders, and its catalog, validation and quotes.

Every output is fetched from a submit through the real routes and read by PyAV (a video's frames, an
audio's samples) or parsed as a GLB (header, JSON chunk, BIN chunk); the official SDK runs a
text-to-video model and gets a video that decodes.
"""

from __future__ import annotations

import io
import json
import struct
import time
from typing import Any

import av
import jsonschema
import pytest
import requests
from wavespeed import Client

from airflow_wavespeed.emulator import Emulator, catalog
from airflow_wavespeed.media.types import sniff

AUTH = {"Authorization": "Bearer test-key"}
T2V = "wavespeed-ai/wan-2.2/t2v-480p"
I2V = "wavespeed-ai/wan-2.2/i2v-480p"


def run(emu: Emulator, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """Submit in sync mode through the real route; the completed prediction's data."""
    response = requests.post(
        f"{emu.base_url}/api/v3/{model}", json={**body, "enable_sync_mode": True}, headers=AUTH, timeout=60
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    assert data["status"] == "completed", data
    return data


def fetch(url: str) -> requests.Response:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    return response


def video_frames(data: bytes) -> tuple[int, int, int, str]:
    """Frames decoded, width, height and codec of an MP4."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return frames, stream.width, stream.height, stream.codec_context.name


def audio_samples(data: bytes) -> tuple[int, int]:
    """Samples decoded and sample rate of an audio file."""
    with av.open(io.BytesIO(data), mode="r") as container:
        rate = container.streams.audio[0].codec_context.sample_rate
        return sum(frame.samples for frame in container.decode(audio=0)), rate


def parse_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    magic, version, length = struct.unpack("<4sII", data[:12])
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack("<I4s", data[12:20])
    assert json_type == b"JSON" and json_length % 4 == 0
    document = json.loads(data[20 : 20 + json_length])
    bin_length, bin_type = struct.unpack("<I4s", data[20 + json_length : 28 + json_length])
    assert bin_type == b"BIN\x00"
    return document, data[28 + json_length : 28 + json_length + bin_length]


def test_text_to_video_is_a_faststart_h264_mp4_whose_frames_decode(emulator: Emulator) -> None:
    (url,) = run(emulator, T2V, {"prompt": "a lighthouse at dusk", "duration": 5})["outputs"]
    response = fetch(url)
    assert url.endswith("/0.mp4") and response.headers["Content-Type"] == "video/mp4"
    data = response.content
    assert data[4:8] == b"ftyp" and data.index(b"moov") < data.index(b"mdat"), "moov first: plays while loading"
    frames, width, height, codec = video_frames(data)
    assert codec == "h264" and frames == 5 * 8 and width % 2 == 0 and height % 2 == 0
    assert sniff(data[:1024]).media == "video"  # type: ignore[union-attr]


def test_image_to_video_animates_the_input_image(emulator: Emulator, emulator_image_url: str) -> None:
    (url,) = run(emulator, I2V, {"image": emulator_image_url, "prompt": "slow zoom", "duration": 8})["outputs"]
    frames, width, height, _ = video_frames(fetch(url).content)
    assert frames == 8 * 8 and width > height, "the 3:2 input gives a landscape clip"


@pytest.mark.parametrize(
    ("model", "body", "ext", "content_type"),
    [
        ("minimax/speech-02-hd", {"text": "Hello from the emulator, " * 3, "voice_id": "Calm_Woman"}, "mp3", "audio/mpeg"),
        ("minimax/music-02", {"prompt": "lofi", "lyrics": "la la", "sample_rate": 16000}, "wav", "audio/wav"),
        ("someone/tts-model", {"text": "any name saying tts speaks"}, "mp3", "audio/mpeg"),
    ],
    ids=["speech", "music", "unlisted-tts"],
)
def test_audio_outputs_hold_real_samples(
    emulator: Emulator, model: str, body: dict[str, Any], ext: str, content_type: str
) -> None:
    (url,) = run(emulator, model, body)["outputs"]
    response = fetch(url)
    assert url.endswith(f"/0.{ext}") and response.headers["Content-Type"] == content_type
    samples, rate = audio_samples(response.content)
    assert samples > rate // 2, "at least half a second of sound"
    if ext == "wav":
        assert rate == 16000 and samples == 3 * 16000, "sample_rate followed, three seconds by default"


def test_image_to_3d_is_a_valid_glb(emulator: Emulator, emulator_image_url: str) -> None:
    (url,) = run(emulator, "wavespeed-ai/hunyuan3d-v3/image-to-3d", {"image": emulator_image_url})["outputs"]
    response = fetch(url)
    assert url.endswith("/0.glb") and response.headers["Content-Type"] == "model/gltf-binary"
    document, binary = parse_glb(response.content)
    assert document["asset"]["version"] == "2.0"
    positions, indices = document["accessors"]
    assert positions["type"] == "VEC3" and positions["count"] == 8 and indices["count"] == 36
    assert sum(view["byteLength"] for view in document["bufferViews"]) == len(binary) == document["buffers"][0]["byteLength"]
    corners = [struct.unpack_from("<3f", binary, 12 * i) for i in range(8)]
    assert {c for corner in corners for c in corner} == {-0.5, 0.5}


@pytest.mark.parametrize("model", ["wavespeed-ai/any-llm", "acme/own-llm"])
def test_a_text_model_answers_text_not_a_url(emulator: Emulator, model: str) -> None:
    (answer,) = run(emulator, model, {"prompt": "What is a DAG?"})["outputs"]
    assert answer == "Emulated answer to: What is a DAG?"


@pytest.mark.parametrize(
    ("model", "media"),
    [
        ("acme/cool-t2v-fast", "video"),
        ("acme/text-to-video-pro", "video"),
        ("acme/i2v-lite", "video"),
        ("acme/voice/speech-1", "audio"),
        ("acme/music-maker", "audio"),
        ("acme/shape-3d", "3d"),
        ("acme/plain-image", "image"),
        ("acme/gemini/text-to-speech", "audio"),
        ("acme/rapid/text-to-3d", "3d"),
    ],
)
def test_an_unlisted_model_is_answered_by_the_kind_its_name_says(
    emulator: Emulator, emulator_image_url: str, model: str, media: str
) -> None:
    (url,) = run(emulator, model, {"prompt": "p", "image": emulator_image_url})["outputs"]
    assert sniff(fetch(url).content[:1024]).media == media  # type: ignore[union-attr]


def test_lip_sync_and_upscaler_take_audio_and_video_inputs(emulator: Emulator, emulator_image_url: str) -> None:
    (voice_url,) = run(emulator, "minimax/speech-02-hd", {"text": "Say it twice. " * 2, "voice_id": "Casual_Guy"})["outputs"]
    (talk_url,) = run(emulator, "wavespeed-ai/infinitetalk", {"image": emulator_image_url, "audio": voice_url})["outputs"]
    talk = fetch(talk_url).content
    frames, *_ = video_frames(talk)
    speech_seconds = audio_samples(fetch(voice_url).content)[0] / 24000
    assert abs(frames / 8 - speech_seconds) < 0.5, "the clip lasts as long as the speech"
    with av.open(io.BytesIO(talk), mode="r") as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    samples, rate = audio_samples(talk)
    assert rate == 24000 and abs(samples / rate - speech_seconds) < 0.2, "the speech is the clip's sound track"
    (upscaled,) = run(emulator, "wavespeed-ai/video-upscaler", {"video": talk_url, "target_resolution": "720p"})["outputs"]
    _, width, height, codec = video_frames(fetch(upscaled).content)
    assert codec == "h264" and min(width, height) == 44, "720p at the tests' scale of 1/16 (45), made even"


def test_a_media_input_of_the_wrong_kind_fails_the_prediction(emulator: Emulator, emulator_image_url: str) -> None:
    response = requests.post(
        f"{emulator.base_url}/api/v3/wavespeed-ai/video-upscaler", json={"video": emulator_image_url}, headers=AUTH, timeout=30
    )
    prediction_id = response.json()["data"]["id"]
    for _ in range(50):
        data = requests.get(f"{emulator.base_url}/api/v3/predictions/{prediction_id}/result", headers=AUTH, timeout=10).json()["data"]
        if data["status"] == "failed":
            break
        time.sleep(0.05)
    assert data["status"] == "failed" and "not a supported video" in data["error"]


def test_the_sdk_runs_a_text_to_video_model_and_gets_a_video_that_decodes(emulator: Emulator) -> None:
    client = Client(api_key="test-key", base_url=emulator.base_url, retry_interval=0.01, max_connection_retries=8)
    output = client.run(T2V, {"prompt": "waves on a beach", "duration": 5}, poll_interval=0.05, timeout=60)
    (url,) = output["outputs"]
    frames, *_ = video_frames(fetch(url).content)
    assert frames == 40


def test_switches_strip_the_extension_and_lie_about_the_type(emulator: Emulator) -> None:
    emulator.config.output_url_extensions = False
    emulator.config.output_content_type = "application/octet-stream"
    (url,) = run(emulator, T2V, {"prompt": "no extension"})["outputs"]
    response = fetch(url)
    assert url.rsplit("/", 1)[-1] == "0" and response.headers["Content-Type"] == "application/octet-stream"
    assert video_frames(response.content)[0] == 40


@pytest.mark.parametrize(("marker", "start"), [("[html-output]", b"<!doctype html>"), ("[svg-output]", b"<svg")])
def test_a_prompt_marker_makes_a_hostile_output(emulator: Emulator, marker: str, start: bytes) -> None:
    (url,) = run(emulator, T2V, {"prompt": f"a clip {marker}"})["outputs"]
    assert fetch(url).content.startswith(start) and sniff(fetch(url).content) is None


def test_a_padded_video_stays_a_valid_mp4(emulator: Emulator) -> None:
    emulator.config.large_output_bytes = 2 * 1024 * 1024
    (url,) = run(emulator, T2V, {"prompt": "padded"})["outputs"]
    data = fetch(url).content
    assert len(data) == 2 * 1024 * 1024
    assert video_frames(data)[0] == 40
    boxes, offset = [], 0
    while offset < len(data):
        size, name = struct.unpack(">I4s", data[offset : offset + 8])
        boxes.append(name)
        offset += size
    assert offset == len(data) and boxes[-1] == b"free", boxes


def test_video_takes_longer_than_an_image(emulator: Emulator) -> None:
    emulator.config.processing_seconds = 0.2
    emulator.config.processing_polls = 0
    started = time.monotonic()
    run(emulator, "wavespeed-ai/flux-dev", {"prompt": "fast"})
    image_seconds = time.monotonic() - started
    started = time.monotonic()
    run(emulator, T2V, {"prompt": "slow"})
    assert time.monotonic() - started >= 0.8 > image_seconds, "video 4x the base, image 1x"


def test_the_catalog_lists_every_kind_with_valid_schemas(emulator: Emulator) -> None:
    response = requests.get(f"{emulator.base_url}/api/v3/models", headers=AUTH, timeout=10)
    assert response.status_code == 200 and response.json()["code"] == 200
    models = {item["model_id"]: item for item in response.json()["data"]}
    kinds = {item["type"] for item in models.values()}
    assert {"text-to-image", "image-to-image", "text-to-video", "image-to-video", "video-to-video",
            "audio-to-video", "text-to-audio", "image-to-3d", "text-to-text"} <= kinds  # fmt: skip
    for item in models.values():
        (schema,) = item["api_schema"]["api_schemas"]
        assert schema["api_path"] == f"/api/v3/{item['model_id']}" and schema["method"] == "POST"
        jsonschema.Draft7Validator.check_schema(schema["request_schema"])
        assert set(schema["request_schema"]["required"]) <= set(schema["request_schema"]["properties"])
    i2v = models[I2V]["api_schema"]["api_schemas"][0]["request_schema"]
    assert i2v["properties"]["image"] == {"type": "string", "format": "uri"} and i2v["properties"]["duration"]["enum"] == [5, 8]
    assert requests.get(f"{emulator.base_url}/api/v3/models", timeout=10).status_code == 401


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        (I2V, {"prompt": "no image"}, "image is required"),
        (I2V, {"image": "https://e.com/a.png", "prompt": "p", "duration": 7}, "duration: 7 is not one of"),
        ("minimax/speech-02-hd", {"text": "t", "voice_id": "Nobody"}, "voice_id: 'Nobody' is not one of"),
        ("minimax/speech-02-hd", {"text": "t", "voice_id": "Calm_Woman", "speed": 3}, "speed: 3 is greater than the maximum"),
    ],
)
def test_a_listed_model_validates_its_inputs_with_a_400_naming_the_field(
    emulator: Emulator, model: str, body: dict[str, Any], message: str
) -> None:
    response = requests.post(f"{emulator.base_url}/api/v3/{model}", json=body, headers=AUTH, timeout=10)
    assert response.status_code == 400 and message in response.json()["message"]
    assert emulator.submit_count() == 0


def quote(emu: Emulator, endpoint: str, model: str, inputs: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{emu.base_url}/api/v3/model/{endpoint}", json={"model_id": model, "inputs": inputs}, headers=AUTH, timeout=10
    )


def test_both_price_endpoints_and_the_switch_that_404s_one(emulator: Emulator) -> None:
    emulator.config.price_discount_rate = 0.2
    price = quote(emulator, "price", I2V, {"duration": 8}).json()["data"]
    assert price == {"model_id": I2V, "price": 0.24, "discounted_price": 0.192, "discount_rate": 0.2, "currency": "USD"}
    assert quote(emulator, "pricing", catalog.EDIT_MODEL, {}).json()["data"]["unit_price"] == 0.06
    emulator.config.price_endpoints = "pricing"
    assert quote(emulator, "price", I2V, {}).status_code == 404
    assert quote(emulator, "pricing", I2V, {}).json()["data"]["unit_price"] == 0.15
    emulator.config.update({"price_endpoints": ["price"]})
    assert quote(emulator, "pricing", I2V, {}).status_code == 404 and quote(emulator, "price", I2V, {}).ok
    emulator.config.model_prices = f"{I2V}=none"
    assert "price" not in quote(emulator, "price", I2V, {}).json()["data"], "no price is unknown, never 0"


@pytest.mark.parametrize(
    ("data", "filename", "media"),
    [
        (None, "clip.mp4", "video"),
        (None, "voice.mp3", "audio"),
        (None, "cube.glb", "3d"),
    ],
)
def test_uploads_take_video_audio_and_3d_typed_by_their_bytes(
    emulator: Emulator, data: bytes | None, filename: str, media: str
) -> None:
    from airflow_wavespeed.emulator import media as encoders

    made = {
        "video": lambda: run(emulator, T2V, {"prompt": "x"})["outputs"][0],
        "audio": lambda: run(emulator, "minimax/speech-02-hd", {"text": "x", "voice_id": "Calm_Woman"})["outputs"][0],
    }
    body = fetch(made[media]()).content if media in made else encoders.encode_glb((1, 2, 3))
    response = requests.post(
        f"{emulator.base_url}/api/v3/media/upload/binary", files={"file": ("upload", body)}, headers=AUTH, timeout=10
    )
    assert response.status_code == 200, response.text
    answer = response.json()["data"]
    assert answer["type"] == media and answer["download_url"].endswith(filename.rsplit(".", 1)[-1])
    assert fetch(answer["download_url"]).content == body
    text = requests.post(
        f"{emulator.base_url}/api/v3/media/upload/binary", files={"file": ("notes.txt", b"plain text")}, headers=AUTH, timeout=10
    )
    assert text.status_code == 400 and "Unsupported file type" in text.json()["message"]


def test_the_sdk_uploads_a_video_through_the_ticket_flow_and_a_model_takes_it(emulator: Emulator, tmp_path: Any) -> None:
    clip = fetch(run(emulator, T2V, {"prompt": "to upload"})["outputs"][0]).content
    path = tmp_path / "my clip.mp4"
    path.write_bytes(clip)
    client = Client(api_key="test-key", base_url=emulator.base_url, retry_interval=0.01, max_connection_retries=8)
    url = client.upload(str(path))
    assert url.endswith(".mp4") and fetch(url).content == clip
    assert fetch(url).headers["Content-Type"] == "video/mp4"
    (upscaled,) = run(emulator, "wavespeed-ai/video-upscaler", {"video": url})["outputs"]
    assert video_frames(fetch(upscaled).content)[0] == 40
    assert emulator.add_upload(clip, "direct.mp4").endswith("/direct.mp4")
    with pytest.raises(ValueError, match="not an accepted image, video, audio, 3d file"):
        emulator.add_upload(b"plain text")


def test_the_prediction_page_plays_a_video_output(emulator: Emulator) -> None:
    data = run(emulator, T2V, {"prompt": "on the page"})
    page = requests.get(f"{emulator.base_url}/predictions/{data['id']}", timeout=10)
    assert page.status_code == 200 and f'<video src="{data["outputs"][0]}" controls' in page.text


def test_the_new_switches_from_the_command_line_and_the_control_endpoint(emulator: Emulator) -> None:
    from airflow_wavespeed.emulator.__main__ import build_parser

    args = build_parser().parse_args(
        ["--no-output-url-extensions", "--output-content-type", "text/plain", "--price-endpoints", "pricing",
         "--media-latency-factors", "video=6,audio=2"]
    )  # fmt: skip
    assert (args.output_url_extensions, args.output_content_type, args.price_endpoints) == (False, "text/plain", "pricing")
    assert args.media_latency_factors == "video=6,audio=2"
    control = f"{emulator.base_url}/_emulator/config"
    for bad in ({"price_endpoints": ["quote"]}, {"media_latency_factors": "video=fast"}, {"media_latency_factors": "video=-1"}):
        assert requests.post(control, json=bad, timeout=10).status_code == 400, bad
    changed = requests.post(control, json={"media_latency_factors": {"video": 8}, "price_endpoints": ["price"]}, timeout=10)
    assert changed.ok and emulator.config.latency_factor("video") == 8.0 and not emulator.config.price_endpoint_enabled("pricing")
