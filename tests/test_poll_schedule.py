"""The poll schedule: the interval grows while a prediction keeps processing, a fixed one stays possible,
the deadline and a restart keep their meaning. Unit checks of the formula, then the trigger, the operator
and the sensor against the emulator."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.exceptions import WaveSpeedInputError
from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator
from airflow_wavespeed.sensors.prediction import WaveSpeedPredictionSensor
from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger, defer_to_trigger
from airflow_wavespeed.triggers.schedule import JITTER, PACES, PollSchedule
from tests.task_context import make_context
from tests.test_trigger import events_of, submit

EDIT = "openai/gpt-image-2/edit"


def polls_until(duration: float, schedule: PollSchedule, draw: float) -> tuple[int, float]:
    """(polls, seconds the completion is seen late) for a job of ``duration`` with a fixed jitter draw."""
    waited, polls = 0.0, 0
    while True:
        polls += 1
        if waited >= duration:
            return polls, waited - duration
        waited += schedule.delay(waited, lambda: draw)


def test_backoff_starts_at_poll_interval_then_grows_to_its_ceiling() -> None:
    schedule = PollSchedule(2.0, media="video")
    assert schedule.delay(0.0) == 2.0 and schedule.delay(6.0) == 2.0  # 0.3 x 6 s is below the start
    assert schedule.delay(100.0, lambda: 0.0) == pytest.approx(30.0)  # 0.3 x 100 s, no jitter drawn
    assert schedule.delay(100.0, lambda: 1.0) == pytest.approx(30.0 * (1 - JITTER))  # jitter only shortens
    assert schedule.delay(10_000.0, lambda: 0.0) == PACES["video"].ceiling
    assert PollSchedule(2.0, media="video", max_poll_interval=15.0).delay(10_000.0, lambda: 0.0) == 15.0
    # A ceiling below the start never makes the interval shorter than poll_interval.
    assert PollSchedule(20.0, media="image").delay(10_000.0, lambda: 1.0) == 20.0


def test_fixed_polls_every_poll_interval_and_unknown_media_paces_like_none() -> None:
    assert {PollSchedule(2.0, "fixed", "video").delay(waited) for waited in (0, 50, 5_000)} == {2.0}
    assert PollSchedule(2.0, media="hologram").delay(300.0, lambda: 0.0) == PollSchedule(2.0).delay(300.0, lambda: 0.0)


@pytest.mark.parametrize("draw", [0.0, 0.5, 1.0])
def test_a_six_minute_video_costs_at_most_25_polls_and_a_20_s_image_is_seen_within_10_percent(draw: float) -> None:
    polls, _ = polls_until(360.0, PollSchedule(2.0, media="video"), draw)
    assert polls <= 25
    assert polls_until(360.0, PollSchedule(2.0, "fixed"), draw)[0] == 181
    for duration in (19.0, 20.0, 21.5):
        _, late = polls_until(duration, PollSchedule(2.0, media="image"), draw)
        assert late <= 0.1 * duration


async def test_the_trigger_polls_less_as_a_prediction_keeps_processing(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    """A 3 s job at poll_interval=0.1: the schedule bounds the polls, whatever the machine's load."""
    wavespeed_conn.config.processing_polls = 0
    wavespeed_conn.config.processing_seconds = 3.0
    prediction_id = submit(emulator_image_url)
    trigger = WaveSpeedPredictionTrigger(prediction_id, poll_interval=0.1, end_time=time.time() + 60, media="video")
    (event,) = await events_of(trigger)
    assert event["status"] == "success"
    polls = sum(1 for r in wavespeed_conn.requests if r.path.endswith(f"{prediction_id}/result"))
    # The most the schedule allows (every draw shortening as much as it may), plus the poll after the end.
    ceiling = polls_until(3.0 + 0.5, PollSchedule(0.1, media="video"), 1.0)[0]
    assert 2 <= polls <= ceiling < 30  # a fixed 0.1 s would be about 30


async def test_near_the_deadline_a_grown_interval_falls_back_to_poll_interval(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    """A wait far into its growth (started 1,000 s ago: a 60 s interval) with 20 s left still polls
    every poll_interval, so it sees a completion 1 s away instead of timing out early."""
    wavespeed_conn.config.processing_polls = 0
    wavespeed_conn.config.processing_seconds = 1.0
    prediction_id = submit(emulator_image_url)
    trigger = WaveSpeedPredictionTrigger(
        prediction_id, poll_interval=0.1, end_time=time.time() + 20, media="video", started_at=time.time() - 1000
    )
    (event,) = await asyncio.wait_for(events_of(trigger), timeout=15)
    assert event["status"] == "success"


def test_a_restarted_trigger_keeps_its_schedule_and_its_place_in_it() -> None:
    trigger = WaveSpeedPredictionTrigger(
        "abc", poll_interval=2.0, poll_schedule="backoff", max_poll_interval=40.0, media="video", started_at=1_000.0
    )
    classpath, kwargs = trigger.serialize()
    rebuilt = WaveSpeedPredictionTrigger(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.started_at == 1_000.0  # the growth goes on where it was, not from poll_interval
    assert rebuilt._schedule == PollSchedule(2.0, "backoff", "video", 40.0)
    # A trigger serialized before the schedule existed rebuilds with backoff from now on.
    del kwargs["poll_schedule"], kwargs["max_poll_interval"], kwargs["media"], kwargs["started_at"]
    older = WaveSpeedPredictionTrigger(**kwargs)
    assert older.poll_schedule == "backoff" and time.time() - older.started_at < 60


def test_the_operator_and_the_sensor_hand_their_schedule_to_the_trigger(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    wavespeed_conn.config.processing_polls = 5
    operator = WaveSpeedRunModelOperator(
        task_id="run",
        model=EDIT,
        inputs={"images": [emulator_image_url], "prompt": "make it blue"},
        deferrable=True,
        poll_interval=0.5,
        poll_schedule="fixed",
        max_poll_interval=3.0,
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(make_context())
    trigger: Any = deferred.value.trigger
    assert (trigger.poll_schedule, trigger.max_poll_interval, trigger.poll_interval) == ("fixed", 3.0, 0.5)

    sensor = WaveSpeedPredictionSensor(
        task_id="wait", prediction_id=trigger.prediction_id, deferrable=True, poke_interval=1.0, max_poll_interval=9.0
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(make_context())
    trigger = deferred.value.trigger
    assert (trigger.poll_schedule, trigger.max_poll_interval, trigger.poll_interval) == ("backoff", 9.0, 1.0)


def test_bad_schedule_arguments_fail_naming_them(wavespeed_conn: Emulator) -> None:
    with pytest.raises(WaveSpeedInputError, match="poll_schedule must be one of backoff, fixed"):
        WaveSpeedPredictionSensor(task_id="wait", prediction_id="abc", poll_schedule="sometimes")
    with pytest.raises(WaveSpeedInputError, match="max_poll_interval must be at least poll_interval"):
        WaveSpeedPredictionSensor(task_id="wait", prediction_id="abc", poke_interval=30, max_poll_interval=10)
    with pytest.raises(WaveSpeedInputError, match="max_poll_interval must be a positive number"):
        defer_to_trigger(
            WaveSpeedPredictionSensor(task_id="wait", prediction_id="abc"), "abc", wavespeed_conn_id="x",
            poll_interval=1.0, timeout=10.0, hook_params={}, max_poll_interval=-1.0,
        )  # fmt: skip
    assert wavespeed_conn.requests == []
