"""WaveSpeedHook over real HTTP against the emulator: success, every error class, the retry rule."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from pathlib import Path

import pytest
import requests

from airflow_wavespeed.emulator import Emulator, EmulatorConfig
from airflow_wavespeed.exceptions import (
    WaveSpeedAuthError,
    WaveSpeedBadRequestError,
    WaveSpeedConnectionConfigError,
    WaveSpeedError,
    WaveSpeedInputError,
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedRateLimitError,
    WaveSpeedServerError,
    WaveSpeedSubmitUncertainError,
    WaveSpeedTimeoutError,
    WaveSpeedTransportError,
    may_retry,
)
from airflow_wavespeed.hooks import event_loop
from airflow_wavespeed.hooks.answers import parse_retry_after
from airflow_wavespeed.hooks.event_loop import LoopResources
from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
from airflow_wavespeed.prediction import PredictionStatus
from tests.conftest import connection_json
from tests.emulator_fixtures import EMULATOR_API_KEY

EDIT = "openai/gpt-image-2/edit"
RESULT_PATH = "/api/v3/predictions/{}/result"


def fast_hook(**kwargs: float) -> WaveSpeedHook:
    """A hook whose backoff is milliseconds, so retry tests count attempts without waiting."""
    options = {"retry_min_wait": 0.01, "retry_max_wait": 0.05, "read_timeout": 5.0}
    options.update(kwargs)
    return WaveSpeedHook(**options)  # type: ignore[arg-type]


def edit_inputs(image_url: str, prompt: str = "make it blue") -> dict[str, object]:
    return {"images": [image_url], "prompt": prompt, "aspect_ratio": "1:1"}


def captured_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Log lines so far, wherever Airflow's logging config sent them (stdlib records or structlog output)."""
    out, err = capfd.readouterr()
    return "\n".join((caplog.text, out, err))


def polls(emu: Emulator, prediction_id: str) -> int:
    return sum(1 for r in emu.requests if r.path == RESULT_PATH.format(prediction_id))


# ---------------------------------------------------------------- success paths


def test_submit_poll_and_fetch_a_real_edited_image(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    from PIL import Image

    hook = fast_hook()
    submitted = hook.submit(EDIT, edit_inputs(emulator_image_url))
    assert submitted.status in (PredictionStatus.CREATED, PredictionStatus.PROCESSING)
    assert submitted.model == EDIT and submitted.outputs == []

    done = hook.wait_for_prediction(submitted.id, poll_interval=0.05, timeout=20)
    assert done.status is PredictionStatus.COMPLETED
    assert done.id == submitted.id and len(done.outputs) == 1
    assert done.has_nsfw_contents == [False] and done.inference_ms is not None
    image = Image.open(io.BytesIO(requests.get(done.outputs[0], timeout=10).content))
    assert image.size == (64, 64)  # 1:1 → 1024x1024 at the test scale of 1/16
    assert wavespeed_conn.submit_count() == 1


def test_xcom_metadata_is_small_and_json_safe(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    import json

    hook = fast_hook()
    done = hook.wait_for_prediction(hook.submit(EDIT, edit_inputs(emulator_image_url)).id, poll_interval=0.05)
    metadata = done.to_xcom()
    assert json.loads(json.dumps(metadata)) == metadata
    assert set(metadata) == {"id", "model", "status", "created_at", "inference_ms", "has_nsfw_contents", "error", "num_outputs"}
    assert metadata["status"] == "completed" and metadata["num_outputs"] == 1
    assert done.urls == {"get": f"{wavespeed_conn.base_url}/api/v3/predictions/{done.id}/result"}


def test_a_prediction_parses_odd_optional_fields_without_losing_its_id() -> None:
    from airflow_wavespeed.prediction import Prediction

    prediction = Prediction.from_data(
        {"id": "p1", "status": "created", "timings": {"inference": float("inf")}, "urls": {"get": 3}}
    )
    assert (prediction.id, prediction.inference_ms, prediction.urls) == ("p1", None, {})


def test_sync_mode_answers_completed_in_one_request(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    prediction = fast_hook().submit(EDIT, edit_inputs(emulator_image_url), enable_sync_mode=True)
    assert prediction.status is PredictionStatus.COMPLETED and len(prediction.outputs) == 1
    assert not [r for r in wavespeed_conn.requests if r.path.startswith("/api/v3/predictions/")]


def test_sync_mode_timeout_returns_the_running_prediction(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.processing_seconds = 1.0
    wavespeed_conn.config.sync_timeout_seconds = 0.2
    prediction = fast_hook().submit(EDIT, edit_inputs(emulator_image_url), enable_sync_mode=True)
    assert prediction.status is PredictionStatus.PROCESSING and prediction.id
    assert "timed out" in prediction.message.lower()
    done = fast_hook().wait_for_prediction(prediction.id, poll_interval=0.1, timeout=20)
    assert done.status is PredictionStatus.COMPLETED
    assert wavespeed_conn.submit_count(include_rejected=True) == 1


def test_failed_prediction_is_terminal_with_the_api_error(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    hook = fast_hook()
    prediction = hook.wait_for_prediction(
        hook.submit(EDIT, edit_inputs(emulator_image_url, "[fail] please")).id, poll_interval=0.05
    )
    assert prediction.status is PredictionStatus.FAILED and prediction.status.is_terminal()
    assert "Emulated failure" in prediction.error


def test_wait_for_prediction_enforces_its_deadline(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.processing_seconds = 30
    hook = fast_hook()
    prediction = hook.submit(EDIT, edit_inputs(emulator_image_url))
    started = time.monotonic()
    with pytest.raises(WaveSpeedTimeoutError, match=prediction.id):
        hook.wait_for_prediction(prediction.id, poll_interval=0.1, timeout=0.5)
    assert time.monotonic() - started < 3


async def test_async_poll_on_the_shared_session(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    hook = fast_hook()
    prediction = hook.submit(EDIT, edit_inputs(emulator_image_url))
    try:
        first = await hook.aget_prediction(prediction.id)
        second = await hook.aget_prediction(prediction.id)
    finally:
        await LoopResources.current().close()
    assert first.id == prediction.id
    assert second.status is PredictionStatus.COMPLETED and second.outputs


# ---------------------------------------------------------------- errors


def test_wrong_key_is_an_auth_error_naming_the_connection(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    secret = "sk-wrong-key-7f3a9c"
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(emulator.base_url, secret))
    with pytest.raises(WaveSpeedAuthError, match="wavespeed_default") as raised:
        fast_hook().get_prediction("abc")
    assert raised.value.http_status == 401
    assert secret not in str(raised.value) and secret not in captured_logs(caplog, capfd)


def test_missing_key_is_a_clear_error_before_any_request(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(emulator.base_url, api_key=None))
    with pytest.raises(WaveSpeedConnectionConfigError, match="'wavespeed_default' has no WaveSpeed API key"):
        fast_hook().submit(EDIT, {"images": ["https://x/y.png"], "prompt": "p"})
    assert emulator.requests == []


def test_base_url_without_scheme_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json("api.wavespeed.ai", "k" * 20))
    with pytest.raises(WaveSpeedConnectionConfigError, match="http:// or https://"):
        _ = fast_hook().base_url


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", '{"conn_type": "wavespeed", "password": "key-12345"}')
    assert fast_hook().base_url == "https://api.wavespeed.ai"


def test_bad_request_carries_the_api_message(wavespeed_conn: Emulator) -> None:
    with pytest.raises(WaveSpeedBadRequestError, match="prompt") as raised:
        fast_hook().submit(EDIT, {"images": ["https://example.com/a.png"]})
    assert raised.value.http_status == 400
    assert wavespeed_conn.submit_count() == 0


def test_unknown_prediction_is_not_found(wavespeed_conn: Emulator) -> None:
    with pytest.raises(WaveSpeedNotFoundError, match="nope"):
        fast_hook().get_prediction("nope")


@pytest.mark.parametrize("bad_id", ["", "../balance", "a/b", "x" * 200, None], ids=["empty", "dotdot", "slash", "long", "none"])
def test_prediction_id_is_checked_before_any_request(wavespeed_conn: Emulator, bad_id: object) -> None:
    with pytest.raises(WaveSpeedInputError, match="prediction_id"):
        fast_hook().get_prediction(bad_id)  # type: ignore[arg-type]
    assert wavespeed_conn.requests == []


@pytest.mark.parametrize("bad_model", ["", "/openai/x", "OpenAI/GPT", "no-slash", "a/../b"], ids=["empty", "leading-slash", "upper", "one-segment", "dotdot"])
def test_model_is_checked_before_any_request(wavespeed_conn: Emulator, bad_model: str) -> None:
    with pytest.raises(WaveSpeedInputError, match="model"):
        fast_hook().submit(bad_model, {"prompt": "x"})
    assert wavespeed_conn.requests == []


# ---------------------------------------------------------------- the retry rule


@pytest.mark.parametrize(
    ("fault", "error", "read_timeout"),
    [
        ({"poll_5xx_rate": 1.0}, WaveSpeedServerError, 5.0),
        ({"poll_429_rate": 1.0, "retry_after": "0"}, WaveSpeedRateLimitError, 5.0),
        ({"malformed_rate": 1.0}, WaveSpeedMalformedResponseError, 5.0),
        ({"drop_rate": 1.0}, WaveSpeedTransportError, 5.0),
        ({"slow_rate": 1.0, "slow_seconds": 1.0}, WaveSpeedTransportError, 0.2),
    ],
    ids=["5xx", "429", "malformed", "dropped", "read-timeout"],
)
def test_polls_retry_each_fault_a_bounded_number_of_times(
    wavespeed_conn: Emulator, emulator_image_url: str, fault: dict[str, object], error: type, read_timeout: float
) -> None:
    hook = fast_hook(max_attempts=4, read_timeout=read_timeout)
    prediction = hook.submit(EDIT, edit_inputs(emulator_image_url))
    for name, value in fault.items():
        setattr(wavespeed_conn.config, name, value)
    started = time.monotonic()
    with pytest.raises(error):
        hook.get_prediction(prediction.id)
    assert time.monotonic() - started < 4 * read_timeout + 2
    # A slow answer is logged when the emulator sends it, after the client gave up on it: wait for it.
    deadline = time.monotonic() + 10
    while polls(wavespeed_conn, prediction.id) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)  # room for a fifth, which must not come
    assert polls(wavespeed_conn, prediction.id) == 4


async def test_async_polls_share_the_same_rule(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    hook = fast_hook(max_attempts=3)
    prediction = hook.submit(EDIT, edit_inputs(emulator_image_url))
    wavespeed_conn.config.poll_5xx_rate = 1.0
    try:
        with pytest.raises(WaveSpeedServerError):
            await hook.aget_prediction(prediction.id)
    finally:
        await LoopResources.current().close()
    assert polls(wavespeed_conn, prediction.id) == 3


async def test_async_polls_honour_retry_after_and_the_total_time_bound(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    """The first poll runs outside tenacity; its failure must still get the rule's wait and bounds."""
    hook = fast_hook(max_attempts=3)
    prediction = hook.submit(EDIT, edit_inputs(emulator_image_url))
    wavespeed_conn.config.poll_429_rate = 1.0
    wavespeed_conn.config.retry_after = "0.3"
    bounded = fast_hook(max_attempts=100, retry_min_wait=0.2, retry_max_wait=0.2, retry_max_seconds=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(WaveSpeedRateLimitError):
            await hook.aget_prediction(prediction.id)
        assert time.monotonic() - started >= 0.6, "two Retry-After: 0.3 waits, the first after the bare try"
        assert polls(wavespeed_conn, prediction.id) == 3

        wavespeed_conn.config.poll_429_rate = 0.0
        wavespeed_conn.config.poll_5xx_rate = 1.0
        started = time.monotonic()
        with pytest.raises(WaveSpeedServerError):
            await bounded.aget_prediction(prediction.id)
        assert time.monotonic() - started < 2.0
        assert 3 + 2 <= polls(wavespeed_conn, prediction.id) < 3 + 10
    finally:
        await LoopResources.current().close()


def count_connection_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The connection ids the hook's async connection reads asked for, in order (the reads still happen)."""
    reads: list[str] = []
    real_read = WaveSpeedHook.aget_connection

    async def counting_read(conn_id: str) -> object:
        reads.append(conn_id)
        return await real_read(conn_id)

    monkeypatch.setattr(WaveSpeedHook, "aget_connection", staticmethod(counting_read))
    return reads


async def test_async_hooks_on_one_loop_read_the_connection_once(
    wavespeed_conn: Emulator, emulator_image_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A triggerer's many triggers share one connection read instead of one lookup each."""
    prediction = fast_hook().submit(EDIT, edit_inputs(emulator_image_url))
    reads = count_connection_reads(monkeypatch)
    try:
        done = await asyncio.gather(*(fast_hook().aget_prediction(prediction.id) for _ in range(20)))
        await fast_hook().aget_prediction(prediction.id)
    finally:
        await LoopResources.current().close()
    assert {p.id for p in done} == {prediction.id}
    assert reads == ["wavespeed_default"]


async def test_async_poll_rereads_a_rotated_key_and_never_caches_a_failed_read(
    wavespeed_conn: Emulator, emulator_image_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prediction = fast_hook().submit(EDIT, edit_inputs(emulator_image_url))
    try:
        monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(wavespeed_conn.base_url, None))
        with pytest.raises(WaveSpeedConnectionConfigError):
            await fast_hook().aget_prediction(prediction.id)
        monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(wavespeed_conn.base_url))
        assert (await fast_hook().aget_prediction(prediction.id)).id == prediction.id  # the old key, now cached

        rotated = "rotated-" + "k" * 24
        monkeypatch.setattr(wavespeed_conn.state, "api_key", rotated)
        monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(wavespeed_conn.base_url, rotated))
        assert (await fast_hook().aget_prediction(prediction.id)).id == prediction.id
        refused = [r for r in wavespeed_conn.requests if r.path == RESULT_PATH.format(prediction.id) and r.status == 401]
        assert len(refused) == 1, "one refusal with the cached key, then the re-read key"

        monkeypatch.setattr(wavespeed_conn.state, "api_key", "another-" + "k" * 24)
        with pytest.raises(WaveSpeedAuthError):  # re-read, same key: the refusal stands
            await fast_hook().aget_prediction(prediction.id)
    finally:
        await LoopResources.current().close()


async def test_many_polls_refused_at_once_reread_the_rotated_key_once(
    wavespeed_conn: Emulator, emulator_image_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a key rotation every waiting trigger is refused together: one re-read serves them all."""
    prediction = fast_hook().submit(EDIT, edit_inputs(emulator_image_url))
    reads = count_connection_reads(monkeypatch)
    try:
        await fast_hook().aget_prediction(prediction.id)
        rotated = "rotated-" + "k" * 24
        monkeypatch.setattr(wavespeed_conn.state, "api_key", rotated)
        monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(wavespeed_conn.base_url, rotated))
        done = await asyncio.gather(*(fast_hook().aget_prediction(prediction.id) for _ in range(20)))
    finally:
        await LoopResources.current().close()
    assert {p.id for p in done} == {prediction.id}
    assert len(reads) == 2, "the first read, then one re-read for all twenty refused polls"


async def test_async_polls_keep_the_last_good_key_when_a_connection_refresh_fails(
    wavespeed_conn: Emulator,
    emulator_image_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A refresh that fails (API server restarting) must not fail every waiting task."""
    prediction = fast_hook().submit(EDIT, edit_inputs(emulator_image_url))
    monkeypatch.setattr(event_loop, "CONNECTION_CACHE_SECONDS", 0.0)  # every call refreshes
    try:
        await fast_hook().aget_prediction(prediction.id)
        monkeypatch.delenv("AIRFLOW_CONN_WAVESPEED_DEFAULT")  # the connection can no longer be read
        caplog.set_level(logging.WARNING)
        assert (await fast_hook().aget_prediction(prediction.id)).id == prediction.id
        logs = captured_logs(caplog, capfd)
        assert "Re-reading Airflow connection 'wavespeed_default' failed" in logs
        assert EMULATOR_API_KEY not in logs
    finally:
        await LoopResources.current().close()
    with pytest.raises(Exception, match="wavespeed_default"):  # cache dropped: no good key to fall back on
        await fast_hook().aget_prediction(prediction.id)


def test_polls_ride_out_intermittent_faults(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    hook = fast_hook(max_attempts=10)
    prediction = hook.submit(EDIT, edit_inputs(emulator_image_url))
    wavespeed_conn.config.seed = 7
    wavespeed_conn.config.poll_5xx_rate = 0.3
    wavespeed_conn.config.malformed_rate = 0.2
    done = hook.wait_for_prediction(prediction.id, poll_interval=0.02, timeout=20)
    assert done.status is PredictionStatus.COMPLETED


def test_submit_is_not_retried_after_a_500(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.submit_5xx_rate = 1.0
    with pytest.raises(WaveSpeedSubmitUncertainError, match="may have been created") as raised:
        fast_hook().submit(EDIT, edit_inputs(emulator_image_url))
    assert "not submitted again" in str(raised.value)
    assert wavespeed_conn.submit_count(include_rejected=True) == 1


def test_submit_is_not_retried_after_a_dropped_connection(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.submit_drop_rate = 1.0
    with pytest.raises(WaveSpeedSubmitUncertainError):
        fast_hook().submit(EDIT, edit_inputs(emulator_image_url))
    assert wavespeed_conn.submit_count(include_rejected=True) == 1


def test_submit_is_not_retried_after_a_read_timeout(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.processing_seconds = 2.0
    with pytest.raises(WaveSpeedSubmitUncertainError):
        fast_hook(sync_read_timeout=0.3).submit(EDIT, edit_inputs(emulator_image_url), enable_sync_mode=True)
    assert wavespeed_conn.submit_count(include_rejected=True) == 1


@pytest.mark.parametrize(
    "body",
    [
        '{"code": 201, "message": "accepted", "data": null}',
        '{"code": 200, "message": "success", "data": {"id": "p1", "status": "created", "outputs": "x"}}',
    ],
    ids=["unexpected-code", "outputs-not-a-list"],
)
def test_a_submit_answer_we_cannot_read_is_uncertain(
    wavespeed_conn: Emulator, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    """Only answers that prove nothing was created pass through; any other may describe a billed prediction."""
    hook = fast_hook()
    sent = []

    def answer(*args: object, **kwargs: object) -> requests.Response:
        sent.append(1)
        response = requests.Response()
        response.status_code, response._content = 200, body.encode()
        return response

    monkeypatch.setattr(hook.session, "request", answer)
    with pytest.raises(WaveSpeedSubmitUncertainError, match="may have been created"):
        hook.submit(EDIT, {"images": ["https://example.com/a.png"], "prompt": "p"})
    assert sent == [1]


def test_submit_retries_429_and_honours_retry_after(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.submit_429_count = 2
    wavespeed_conn.config.retry_after = "0.4"
    started = time.monotonic()
    prediction = fast_hook().submit(EDIT, edit_inputs(emulator_image_url))
    elapsed = time.monotonic() - started
    assert prediction.id
    assert elapsed >= 0.8, "two Retry-After: 0.4 waits"  # the backoff alone would be ~0.03 s
    assert wavespeed_conn.submit_count(include_rejected=True) == 3
    assert wavespeed_conn.submit_count() == 1


def test_submit_gives_up_on_429_with_a_rate_limit_error(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.submit_429_rate = 1.0
    wavespeed_conn.config.retry_after = "0"
    with pytest.raises(WaveSpeedRateLimitError, match="429"):
        fast_hook(max_attempts=3).submit(EDIT, edit_inputs(emulator_image_url))
    assert wavespeed_conn.submit_count(include_rejected=True) == 3
    assert wavespeed_conn.submit_count() == 0


def test_submit_retries_a_refused_connection_then_says_nothing_was_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json("http://127.0.0.1:1", "k" * 20))
    hook = fast_hook(max_attempts=3)
    attempts = []
    real_request = hook.session.request
    monkeypatch.setattr(hook.session, "request", lambda *a, **k: attempts.append(1) or real_request(*a, **k))
    with pytest.raises(WaveSpeedTransportError, match="could not connect") as raised:
        hook.submit(EDIT, {"images": ["https://example.com/a.png"], "prompt": "p"})
    assert raised.value.request_sent is False
    assert len(attempts) == 3


def test_retry_sequence_is_bounded_in_total_time(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    hook = fast_hook(max_attempts=100, retry_min_wait=0.2, retry_max_wait=0.2, retry_max_seconds=1.0)
    prediction = hook.submit(EDIT, edit_inputs(emulator_image_url))
    wavespeed_conn.config.poll_5xx_rate = 1.0
    started = time.monotonic()
    with pytest.raises(WaveSpeedServerError):
        hook.get_prediction(prediction.id)
    assert time.monotonic() - started < 2.0
    assert polls(wavespeed_conn, prediction.id) < 10


@pytest.mark.parametrize(
    ("error", "for_submit", "retryable"),
    [
        (WaveSpeedRateLimitError("x", http_status=429), True, True),
        (WaveSpeedRateLimitError("x", http_status=429), False, True),
        (WaveSpeedTransportError("x", request_sent=False), True, True),
        (WaveSpeedTransportError("x", request_sent=True), True, False),
        (WaveSpeedTransportError("x", request_sent=True), False, True),
        (WaveSpeedServerError("x", http_status=500), True, False),
        (WaveSpeedServerError("x", http_status=503), False, True),
        (WaveSpeedServerError("x", http_status=501), False, False),
        (WaveSpeedServerError("x", http_status=5003), False, True),
        (WaveSpeedServerError("x", http_status=5000), False, True),
        (WaveSpeedServerError("x", http_status=5003), True, False),
        (WaveSpeedMalformedResponseError("x", http_status=200, body=""), False, True),
        (WaveSpeedMalformedResponseError("x", http_status=200, body=""), True, False),
        (WaveSpeedBadRequestError("x", http_status=400), False, False),
        (WaveSpeedAuthError("x", http_status=401), False, False),
        (WaveSpeedNotFoundError("x", http_status=404), False, False),
        (ValueError("x"), False, False),
    ],
    ids=[
        "429-submit", "429-poll", "refused-submit", "sent-submit", "sent-poll", "500-submit", "503-poll",
        "501-poll", "code-5003-poll", "code-5000-poll", "code-5003-submit", "malformed-poll", "malformed-submit", "400", "401", "404", "other",
    ],
)
def test_retry_rule_table(error: BaseException, for_submit: bool, retryable: bool) -> None:
    assert may_retry(error, billable=for_submit) is retryable


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("", None), ("3", 3.0), ("0.25", 0.25), ("-4", 0.0), ("soon", None)],
    ids=["absent", "empty", "int", "fraction", "negative", "garbage"],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_parse_retry_after_http_date() -> None:
    from email.utils import formatdate

    assert 8 <= (parse_retry_after(formatdate(time.time() + 10, usegmt=True)) or 0) <= 10


# ---------------------------------------------------------------- uploads


def test_upload_a_path_bytes_and_file_objects(wavespeed_conn: Emulator, sample_png: bytes, sample_png_path: Path) -> None:
    hook = fast_hook()
    urls = [
        hook.upload_media(sample_png_path),
        hook.upload_media(str(sample_png_path)),
        hook.upload_media(sample_png),
        hook.upload_media(io.BytesIO(sample_png), filename="from-buffer.png"),
    ]
    with sample_png_path.open("rb") as handle:
        urls.append(hook.upload_media(handle))
    for url in urls:
        assert requests.get(url, timeout=10).content == sample_png
    assert urls[0].endswith("input.png") and urls[2].endswith(".png")


def test_upload_retries_files_and_spooled_streams(wavespeed_conn: Emulator, sample_png: bytes) -> None:
    class Stream(io.RawIOBase):
        def __init__(self) -> None:
            self.inner = io.BytesIO(sample_png)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            data = self.inner.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)

    wavespeed_conn.config.upload_5xx_rate = 1.0
    with pytest.raises(WaveSpeedServerError):
        fast_hook(max_attempts=3).upload_media(io.BytesIO(sample_png), filename="a.png")
    uploads = [r for r in wavespeed_conn.requests if r.path == "/api/v3/media/upload/binary"]
    assert len(uploads) == 3
    with pytest.raises(WaveSpeedServerError):
        fast_hook(max_attempts=3).upload_media(Stream(), filename="b.png")
    uploads = [r for r in wavespeed_conn.requests if r.path == "/api/v3/media/upload/binary"]
    assert len(uploads) == 6
    wavespeed_conn.config.upload_5xx_rate = 0.0
    assert requests.get(fast_hook().upload_media(Stream(), filename="c.png"), timeout=10).content == sample_png


def test_a_503_with_retry_after_waits_as_told(wavespeed_conn: Emulator, sample_png: bytes) -> None:
    """A service in maintenance answers 503 with Retry-After: each retry waits that long, not the backoff."""
    wavespeed_conn.config.upload_5xx_rate = 1.0
    wavespeed_conn.config.unavailable_retry_after = "0.3"
    started = time.monotonic()
    with pytest.raises(WaveSpeedServerError, match="503") as raised:
        fast_hook(max_attempts=3).upload_media(sample_png, filename="a.png")
    elapsed = time.monotonic() - started
    assert raised.value.retry_after == 0.3
    assert elapsed >= 0.6, "two Retry-After: 0.3 waits (the backoff alone is at most 0.1 s)"
    assert len([r for r in wavespeed_conn.requests if r.path == "/api/v3/media/upload/binary"]) == 3


@pytest.mark.parametrize(
    ("source", "filename", "message"),
    [(b"", None, "empty"), (b"hello", "notes.txt", "is not an image WaveSpeed accepts"), ("/no/such/file.png", None, "no file")],
    ids=["empty-bytes", "text-file", "missing-path"],
)
def test_upload_rejects_bad_input_before_sending(
    wavespeed_conn: Emulator, source: object, filename: str | None, message: str
) -> None:
    with pytest.raises(WaveSpeedInputError, match=message):
        fast_hook().upload_media(source, filename=filename)  # type: ignore[arg-type]
    assert wavespeed_conn.requests == []


# ---------------------------------------------------------------- test_connection and secrets


def test_test_connection_both_ways(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(emulator.base_url))
    ok, message = fast_hook().test_connection()
    assert ok and "balance" in message
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(emulator.base_url, "sk-bad-key-123"))
    ok, message = fast_hook().test_connection()
    assert not ok and "API key" in message and "sk-bad-key-123" not in message


def test_the_key_never_shows(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    sample_png: bytes,
) -> None:
    secret = "ws-live-SECRET-5d1e8f0a9b"
    caplog.set_level(logging.DEBUG)
    with Emulator(api_key=secret, config=EmulatorConfig(processing_polls=1, scale=0.0625)) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(emu.base_url, secret))
        hook = fast_hook(max_attempts=2)
        prediction = hook.submit(EDIT, edit_inputs(hook.upload_media(sample_png)))
        hook.wait_for_prediction(prediction.id, poll_interval=0.05)
        texts = [repr(hook), str(vars(hook)), repr(hook._credentials)]  # once the hook holds the key
        emu.config.poll_5xx_rate = 1.0
        for call in (lambda: hook.get_prediction(prediction.id), lambda: hook.get_prediction("missing-id")):
            with pytest.raises(WaveSpeedError) as raised:
                call()
            texts.append(str(raised.value))
        emu.config.poll_5xx_rate = 0.0
        emu.config.submit_5xx_rate = 1.0
        with pytest.raises(WaveSpeedError) as raised:
            hook.submit(EDIT, edit_inputs("https://example.com/a.png"))
        texts.append(str(raised.value))
    logs = captured_logs(caplog, capfd)
    assert "Submitted WaveSpeed prediction" in logs, "the hook's log lines were captured"
    assert all(secret not in text for text in [*texts, logs])


def test_an_error_status_that_carries_the_prediction_is_a_prediction_to_wait_on() -> None:
    """Sync mode's code 5004 may come over a 5xx: the body's prediction id must not be dropped."""
    import json

    from airflow_wavespeed.prediction import parse_envelope

    running = {"id": "abc123", "status": "processing", "outputs": []}
    body = json.dumps({"code": 5004, "message": "sync mode timed out", "data": running})
    for http_status in (200, 504):
        data, message = parse_envelope(http_status, body, context="submit")
        assert data == running and message == "sync mode timed out"
    with pytest.raises(WaveSpeedServerError, match="HTTP 504"):
        parse_envelope(504, "<html><h1>504 Gateway Time-out</h1></html>", context="submit")
    with pytest.raises(WaveSpeedBadRequestError):  # only a 5xx is read as "still running"
        parse_envelope(400, json.dumps({"code": 400, "message": "bad", "data": running}), context="submit")
    with pytest.raises(WaveSpeedServerError, match=r"\(code 5003\): unavailable"):  # no prediction: an error
        parse_envelope(200, json.dumps({"code": 5003, "message": "unavailable", "data": None}), context="poll")
    failed = {**running, "status": "failed", "error": "backend fault"}
    with pytest.raises(WaveSpeedServerError, match="HTTP 500"):  # over a 5xx only a running prediction counts
        parse_envelope(500, json.dumps({"code": 500, "message": "boom", "data": failed}), context="poll")
    with pytest.raises(WaveSpeedBadRequestError, match=r"\(code 1401\)"):  # 1xxx codes are input errors
        parse_envelope(200, json.dumps({"code": 1401, "message": "invalid parameter", "data": None}), context="x")


def test_an_uncertain_submit_fails_the_task_without_its_retries() -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    assert issubclass(WaveSpeedSubmitUncertainError, AirflowFailException)


def test_timedelta_timeouts_are_taken_as_seconds(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    """Issue 11, point 7: a timedelta in hook_params once reached requests, inside the submit's try."""
    from datetime import timedelta

    hook = WaveSpeedHook(read_timeout=timedelta(seconds=5), connect_timeout=timedelta(seconds=2))
    assert (hook.limits.read_timeout, hook.limits.connect_timeout) == (5.0, 2.0)
    assert hook.submit(EDIT, edit_inputs(emulator_image_url)).id
    assert wavespeed_conn.submit_count() == 1


def test_the_retry_rule_warns_nothing_and_keeps_its_bounds() -> None:
    """tenacity 9.2 deprecates wait_exponential_jitter's ``initial`` with a warning that would reach every
    task log; the rule's backoff (the same formula) is built without it."""
    import warnings

    import tenacity

    from airflow_wavespeed.hooks.limits import RequestLimits
    from airflow_wavespeed.hooks.transport import retry_rule

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rule = retry_rule(RequestLimits(retry_min_wait=0.5, retry_max_wait=4))
        waits = []
        for attempt in range(1, 8):
            state = tenacity.RetryCallState(None, None, (), {})
            state.attempt_number = attempt
            waits.append(rule["wait"](state))
    assert 0.5 <= waits[0] <= 1.5 and 1.0 <= waits[1] <= 2.0, waits
    assert all(wait <= 4 for wait in waits) and waits[-1] == 4, waits
