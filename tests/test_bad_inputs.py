"""Bad input is refused before any request: each error names the argument, the emulator sees nothing."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator
from tests.conftest import connection_json
from tests.task_context import make_context

GOOD: dict[str, Any] = {"images": ["https://example.com/in.png"], "prompt": "make it blue"}

CONSTRUCTION_CASES = [
    ({"images": []}, "images"),
    ({"images": None}, "images"),
    ({"images": [f"https://example.com/{n}.png" for n in range(17)]}, "at most 16"),
    ({"images": ["ftp://example.com/a.png"]}, "images\\[0\\].*ftp://"),
    ({"images": ["s3://bucket"]}, "images\\[0\\].*s3://bucket/key"),
    ({"images": ["https://"]}, "images\\[0\\]"),
    ({"images": [42]}, "images\\[0\\]"),
    ({"images": [""]}, "images\\[0\\]"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   \n\t"}, "prompt"),
    ({"prompt": "x" * 32_001}, "prompt.*32000"),
    ({"prompt": None}, "prompt"),
    ({"aspect_ratio": "7:5"}, "aspect_ratio.*1:1, 2:3, 3:2"),
    ({"aspect_ratio": "square"}, "aspect_ratio"),
    ({"enable_sync_mode": "yes"}, "enable_sync_mode"),
    ({"enable_base64_output": 1}, "enable_base64_output"),
    ({"wait_for_completion": "false"}, "wait_for_completion"),
    ({"nsfw_policy": "ignore"}, "nsfw_policy.*allow, fail, drop"),
    ({"poll_interval": 0}, "poll_interval"),
    ({"poll_interval": -5}, "poll_interval"),
    ({"poll_schedule": "exponential"}, "poll_schedule must be one of backoff, fixed"),
    ({"max_poll_interval": 0}, "max_poll_interval must be a positive number"),
    ({"poll_interval": 10, "max_poll_interval": 5}, "max_poll_interval must be at least poll_interval"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": float("nan")}, "timeout"),
    ({"enable_base64_output": True}, "enable_base64_output=True needs output_uri"),
    ({"output_uri": "/tmp/edits", "wait_for_completion": False}, "output_uri needs wait_for_completion=True"),
    (
        {"enable_base64_output": True, "output_uri": "/tmp/edits", "wait_for_completion": False},
        "output_uri needs wait_for_completion=True",
    ),
    ({"extra_inputs": ["quality", "high"]}, "extra_inputs must be a dict"),
    ({"extra_inputs": {"prompt": "sneaky"}}, "extra_inputs may not set prompt"),
    ({"output_uri": "ftp://host/dir"}, "output_uri"),
    ({"output_uri": "s3://bucket/edits/../other"}, "output_uri may not contain '.' or '..' segments"),
    ({"input_mode": "copy"}, "input_mode.*presign, upload"),
    ({"max_output_bytes": 0}, "max_output_bytes"),
    ({"key_template": "{unknown_field}.png"}, "key_template.*allowed fields"),
    # Issue 10, point 8: what fails before a byte is sent is an input error, found at parse time.
    ({"extra_inputs": {"seed": object()}}, "extra_inputs must hold JSON values only"),
    ({"extra_inputs": {"strength": float("nan")}}, "no NaN or infinity"),
    ({"extra_inputs": {"strength": float("inf")}}, "no NaN or infinity"),
    # Point 9: bounded timeouts, format specs checked with typed values, prompts that are text.
    ({"timeout": 1e14}, "timeout must be at most 604800 seconds"),
    ({"poll_interval": 1e14}, "poll_interval must be at most"),
    ({"key_template": "{prediction_id}_{n:.0}.{ext}"}, "key_template .* is not valid: Precision not allowed"),
    ({"key_template": "{n:q}.{ext}"}, "key_template .* is not valid"),
    ({"key_template": "{dag_id:>>>}.{ext}"}, "key_template .* is not valid"),
    ({"prompt": "\x00"}, "prompt holds the control character .* at position 0"),
    ({"prompt": "make it \x1b[31mred"}, "prompt holds the control character"),
    ({"prompt": "make it \ud800 blue"}, "prompt is not valid text"),
    ({"hook_params": {"api_key": "sk-123"}}, "hook_params may not set api_key; allowed: connect_timeout"),
    ({"hook_params": {"read_timeout": -1}}, "read_timeout must be a positive number"),
    ({"hook_params": {"max_response_bytes": 0}}, "max_response_bytes must be a positive int"),
    ({"allow_private_output_hosts": "yes"}, "allow_private_output_hosts must be True or False"),
]


@pytest.mark.parametrize(
    ("override", "message"),
    CONSTRUCTION_CASES,
    ids=lambda value: None if isinstance(value, dict) else str(value)[:30],
)
def test_rejected_at_construction(wavespeed_conn: Emulator, override: dict[str, Any], message: str) -> None:
    from airflow_wavespeed.exceptions import WaveSpeedInputError

    with pytest.raises(WaveSpeedInputError, match=message):
        WaveSpeedImageEditOperator(task_id="edit", **{**GOOD, **override})
    assert wavespeed_conn.requests == []


EXECUTE_CASES = [
    pytest.param({"images": ["/no/such/file.png"]}, None, "images\\[0\\]: no file", id="missing-local-file"),
    pytest.param({"images": ["file:///no/such.png"]}, None, "images\\[0\\]: no file", id="missing-file-uri"),
    pytest.param({"wavespeed_conn_id": "no_such_connection"}, None, "no_such_connection", id="unknown-connection"),
    pytest.param({}, {"password": None}, "has no WaveSpeed API key", id="connection-without-key"),
    pytest.param({}, {"host": "api.wavespeed.ai"}, "must be a full base URL", id="base-url-without-scheme"),
    # Issue 10, point 8: a key that cannot be sent as a header is a connection error, not "maybe billed".
    pytest.param({}, {"password": "sk-key\r\nX-Injected: 1"}, "API key with spaces, line breaks", id="key-with-crlf"),
    pytest.param({}, {"password": "sk-k\u00e9y-" + "x" * 20}, "non-ASCII characters", id="key-not-latin-1"),
]


@pytest.mark.parametrize(("override", "connection", "message"), EXECUTE_CASES)
def test_rejected_at_execute_before_any_request(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    override: dict[str, Any],
    connection: dict[str, Any] | None,
    message: str,
) -> None:
    conn = {"base_url": emulator.base_url, "api_key": "test-key"}
    if connection:
        conn.update({"base_url": connection.get("host", emulator.base_url), "api_key": connection.get("password", "test-key")})
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(conn["base_url"], conn["api_key"]))
    operator = WaveSpeedImageEditOperator(task_id="edit", **{**GOOD, **override})
    with pytest.raises(Exception, match=message):
        operator.execute(make_context())
    assert emulator.requests == []


def test_templated_values_are_checked_after_rendering(wavespeed_conn: Emulator) -> None:
    from airflow_wavespeed.exceptions import WaveSpeedInputError

    operator = WaveSpeedImageEditOperator(task_id="edit", images="{{ params.images }}", prompt="{{ params.prompt }}")
    operator.images, operator.prompt = ["gopher://x/y.png"], "fine"
    with pytest.raises(WaveSpeedInputError, match="images\\[0\\].*gopher"):
        operator.execute(make_context())
    assert wavespeed_conn.requests == []


def test_a_local_file_of_a_refused_type_stops_the_task_before_any_upload(
    wavespeed_conn: Emulator, tmp_path: Any, sample_png: bytes
) -> None:
    """The first image is fine; the second is not an uploadable type, so nothing is uploaded at all."""
    from airflow_wavespeed.exceptions import WaveSpeedInputError

    good, bad = tmp_path / "a.png", tmp_path / "b.heic"
    good.write_bytes(sample_png)
    bad.write_bytes(b"not really an image")
    operator = WaveSpeedImageEditOperator(task_id="edit", images=[str(good), str(bad)], prompt="make it blue")
    with pytest.raises(WaveSpeedInputError, match="images\\[1\\]: '[^']*b.heic' is not an image WaveSpeed accepts.*PNG"):
        operator.execute(make_context())
    assert wavespeed_conn.requests == []


def test_a_text_file_named_png_stops_the_task_before_any_upload(wavespeed_conn: Emulator, tmp_path: Any) -> None:
    """Issue 10, point 9: a name can lie; the bytes decide."""
    from airflow_wavespeed.exceptions import WaveSpeedInputError

    disguised = tmp_path / "photo.png"
    disguised.write_text("not an image at all")
    operator = WaveSpeedImageEditOperator(task_id="edit", images=[str(disguised)], prompt="make it blue")
    with pytest.raises(WaveSpeedInputError, match="images\\[0\\]: '[^']*photo.png' is not an image .* first bytes"):
        operator.execute(make_context())
    assert wavespeed_conn.requests == []


SENSOR_CASES = [
    pytest.param({"poke_interval": 0}, "poke_interval", id="sensor-zero-poke-interval"),
    pytest.param({"timeout": 0}, "timeout", id="sensor-zero-timeout"),
    pytest.param({"deferrable": "yes"}, "deferrable must be True or False", id="sensor-non-bool-deferrable"),
    pytest.param({"nsfw_policy": "ignore"}, "nsfw_policy", id="sensor-unknown-nsfw-policy"),
    pytest.param({"prediction_id": "../balance"}, "prediction_id", id="sensor-bad-prediction-id"),
    # Issue 10, point 9: '..' and a trailing newline passed the old pattern; ids are single path segments.
    pytest.param({"prediction_id": ".."}, "prediction_id", id="sensor-dot-dot-id"),
    pytest.param({"prediction_id": "abc\n"}, "prediction_id", id="sensor-id-with-newline"),
    pytest.param({"prediction_id": "x" * 300}, "prediction_id", id="sensor-id-300-chars"),
    pytest.param({"timeout": 1e14}, "timeout must be at most", id="sensor-huge-timeout"),
    pytest.param({"hook_params": {"api_key": "sk"}}, "hook_params may not set api_key", id="sensor-hook-params-key"),
]


@pytest.mark.parametrize(("override", "message"), SENSOR_CASES)
def test_sensor_arguments_are_checked_at_construction(
    wavespeed_conn: Emulator, override: dict[str, Any], message: str
) -> None:
    from airflow_wavespeed.exceptions import WaveSpeedInputError
    from airflow_wavespeed.sensors.prediction import WaveSpeedPredictionSensor

    with pytest.raises(WaveSpeedInputError, match=message):
        WaveSpeedPredictionSensor(task_id="wait", **{"prediction_id": "abc123", **override})
    assert wavespeed_conn.requests == []
