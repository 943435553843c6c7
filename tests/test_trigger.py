"""WaveSpeedPredictionTrigger against the emulator: one event, every outcome, restartable."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger
from tests.conftest import connection_json

EDIT = "openai/gpt-image-2/edit"


def submit(image_url: str, prompt: str = "make it blue") -> str:
    hook = WaveSpeedHook(retry_min_wait=0.01, retry_max_wait=0.05)
    return hook.submit(EDIT, {"images": [image_url], "prompt": prompt}).id


async def events_of(trigger: WaveSpeedPredictionTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def test_serialize_round_trip_holds_nothing_secret(wavespeed_conn: Emulator) -> None:
    trigger = WaveSpeedPredictionTrigger("abc", "wavespeed_default", poll_interval=2.5, end_time=123.0, started_at=100.0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_wavespeed.triggers.prediction.WaveSpeedPredictionTrigger"
    assert kwargs == {
        "prediction_id": "abc",
        "wavespeed_conn_id": "wavespeed_default",
        "poll_interval": 2.5,
        "end_time": 123.0,
        "include_outputs": True,
        "hook_params": {},
        "carry": {},
        "end_from_trigger": False,
        "nsfw_policy": "allow",
        "cancel_on_kill": False,
        "poll_schedule": "backoff",
        "max_poll_interval": None,
        "media": None,
        "started_at": 100.0,
    }
    assert "test-key" not in json.dumps(kwargs)
    rebuilt = WaveSpeedPredictionTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


async def test_success_yields_one_event_with_outputs(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.processing_polls = 3
    prediction_id = submit(emulator_image_url)
    trigger = WaveSpeedPredictionTrigger(prediction_id, poll_interval=0.05, end_time=time.time() + 30)
    (event,) = await events_of(trigger)
    assert event["status"] == "success" and event["prediction_id"] == prediction_id
    assert len(event["outputs"]) == 1 and event["outputs"][0].startswith("http")
    assert event["prediction"]["status"] == "completed" and event["prediction"]["num_outputs"] == 1
    assert sum(1 for r in wavespeed_conn.requests if prediction_id in r.path and r.method == "GET") == 4


async def test_failed_prediction_event_carries_the_api_error(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    prediction_id = submit(emulator_image_url, "[fail] this")
    (event,) = await events_of(WaveSpeedPredictionTrigger(prediction_id, poll_interval=0.05, end_time=time.time() + 30))
    assert event["status"] == "failed" and "Emulated failure" in event["message"]
    assert event["outputs"] == []


async def test_deadline_yields_timeout(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.processing_seconds = 30
    prediction_id = submit(emulator_image_url)
    started = time.monotonic()
    (event,) = await events_of(WaveSpeedPredictionTrigger(prediction_id, poll_interval=0.1, end_time=time.time() + 0.5))
    assert event["status"] == "timeout" and prediction_id in event["message"]
    assert time.monotonic() - started < 2


async def test_non_retryable_error_yields_error(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(emulator.base_url, "sk-wrong-key-xyz"))
    (event,) = await events_of(WaveSpeedPredictionTrigger("abc123", poll_interval=0.05, end_time=time.time() + 30))
    assert event["status"] == "error" and "API key" in event["message"]
    assert "sk-wrong-key-xyz" not in json.dumps(event)


async def test_missing_connection_yields_error(monkeypatch: pytest.MonkeyPatch) -> None:
    (event,) = await events_of(WaveSpeedPredictionTrigger("abc123", "no_such_conn", 0.05, time.time() + 5))
    assert event["status"] == "error" and "no_such_conn" in event["message"]


async def test_a_failed_import_on_the_triggerer_yields_an_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """A triggerer host without aiohttp, say: the task fails with the reason instead of a crashed trigger."""
    from airflow_wavespeed.triggers import prediction

    async def missing() -> None:
        raise ImportError("No module named 'aiohttp'")

    monkeypatch.setattr(prediction, "_import_off_the_loop", missing)
    (event,) = await events_of(WaveSpeedPredictionTrigger("abc123", poll_interval=0.05, end_time=time.time() + 5))
    assert event["status"] == "error" and "aiohttp" in event["message"] and event["prediction_id"] == "abc123"


async def test_keeps_waiting_through_faults(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    prediction_id = submit(emulator_image_url)
    wavespeed_conn.config.seed = 3
    wavespeed_conn.config.poll_5xx_rate = 0.5
    wavespeed_conn.config.drop_rate = 0.2
    trigger = WaveSpeedPredictionTrigger(prediction_id, poll_interval=0.05, end_time=time.time() + 60)
    (event,) = await events_of(trigger)
    assert event["status"] == "success"


async def test_base64_outputs_stay_out_of_the_event(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    hook = WaveSpeedHook()
    prediction = hook.submit(EDIT, {"images": [emulator_image_url], "prompt": "x"}, enable_base64_output=True)
    trigger = WaveSpeedPredictionTrigger(prediction.id, poll_interval=0.05, end_time=time.time() + 30, include_outputs=False)
    (event,) = await events_of(trigger)
    assert event["status"] == "success" and event["outputs"] == []
    assert event["prediction"]["num_outputs"] == 1


async def test_base64_outputs_never_enter_an_event_even_when_outputs_are_asked_for(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    hook = WaveSpeedHook()
    prediction = hook.submit(EDIT, {"images": [emulator_image_url], "prompt": "x"}, enable_base64_output=True)
    trigger = WaveSpeedPredictionTrigger(prediction.id, poll_interval=0.05, end_time=time.time() + 30)
    (event,) = await events_of(trigger)
    assert event["status"] == "success" and event["outputs"] == []
    assert event["prediction"]["num_outputs"] == 1


async def test_many_triggers_share_one_connection_pool(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    from airflow_wavespeed.hooks.event_loop import LoopResources

    ids = [submit(emulator_image_url) for _ in range(20)]
    sessions: set[int] = set()
    original = LoopResources.session

    def spy(resources: LoopResources) -> Any:
        session = original(resources)
        sessions.add(id(session))
        return session

    LoopResources.session = spy  # type: ignore[method-assign]
    try:
        triggers = [WaveSpeedPredictionTrigger(i, poll_interval=0.05, end_time=time.time() + 30) for i in ids]
        results = await asyncio.gather(*(events_of(t) for t in triggers))
    finally:
        LoopResources.session = original  # type: ignore[method-assign]
    assert all(events[0]["status"] == "success" for events in results)
    assert len(sessions) == 1
    assert LoopResources._by_loop == {}, "the last trigger closed the pool"


RUN_SERIALIZED = """
import asyncio, importlib, json, sys
classpath, kwargs = json.loads(sys.argv[1])
module, _, name = classpath.rpartition(".")
trigger = getattr(importlib.import_module(module), name)(**kwargs)
async def main():
    async for event in trigger.run():
        print("EVENT " + json.dumps(event.payload), flush=True)
asyncio.run(main())
"""


def test_a_trigger_rebuilt_in_another_process_finishes_the_same_prediction(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    """A triggerer restart: the first process is killed mid-wait, a new one rebuilds from serialize()."""
    wavespeed_conn.config.processing_seconds = 3
    prediction_id = submit(emulator_image_url)
    serialized = json.dumps(WaveSpeedPredictionTrigger(prediction_id, poll_interval=0.2, end_time=time.time() + 60).serialize())
    env = {**os.environ}
    first = subprocess.Popen([sys.executable, "-c", RUN_SERIALIZED, serialized], env=env, stdout=subprocess.PIPE)
    time.sleep(1.0)
    first.kill()
    assert first.wait(10) != 0 and first.stdout is not None
    assert b"EVENT " not in first.stdout.read(), "the first trigger was killed before it finished"
    second = subprocess.run(
        [sys.executable, "-c", RUN_SERIALIZED, serialized], env=env, capture_output=True, timeout=120, check=True
    )
    (line,) = [line for line in second.stdout.decode().splitlines() if line.startswith("EVENT ")]
    event = json.loads(line.removeprefix("EVENT "))
    assert event["status"] == "success" and event["prediction_id"] == prediction_id
    assert wavespeed_conn.submit_count() == 1
