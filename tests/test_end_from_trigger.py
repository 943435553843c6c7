"""end_from_trigger (issue 12): a successful wait ends the task in the triggerer when nothing is left for
a worker; every other outcome resumes on a worker. The one-launch behaviour itself is shown on the real
cluster (tests/cluster)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator
from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger
from tests.conftest import load_dag_bag
from tests.task_context import make_context

ROOT = Path(__file__).resolve().parents[1]


def deferred_trigger(operator: WaveSpeedImageEditOperator) -> WaveSpeedPredictionTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(make_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, WaveSpeedPredictionTrigger)
    return trigger


async def final_event(trigger: WaveSpeedPredictionTrigger) -> Any:
    (event,) = [event async for event in trigger.run()]
    return event


def edit(image_url: str, **kwargs: Any) -> WaveSpeedImageEditOperator:
    arguments = {"task_id": "edit", "images": [image_url], "prompt": "p", "deferrable": True, "poll_interval": 0.05}
    return WaveSpeedImageEditOperator(**{**arguments, **kwargs})


async def test_a_success_ends_in_the_triggerer_with_the_tasks_xcoms(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    from airflow.triggers.base import TaskSuccessEvent

    trigger = deferred_trigger(edit(emulator_image_url, end_from_trigger=True, max_cost_usd=1.0))
    assert trigger.end_from_trigger and trigger.serialize()[1]["end_from_trigger"] is True
    event = await final_event(trigger)
    assert isinstance(event, TaskSuccessEvent)
    outputs, metadata = event.xcoms["return_value"], event.xcoms["prediction"]
    assert len(outputs) == 1 and outputs[0].startswith(wavespeed_conn.base_url + "/outputs/")
    assert metadata["status"] == "completed" and metadata["cost_usd"] == 0.06 and metadata["prompt"] == "p"
    assert set(metadata["task_timings"]) == {"operator_seconds", "triggerer_seconds"}


@pytest.mark.parametrize("left", ["output_uri", "outlets", "on_success_callback"])
def test_work_left_for_a_worker_keeps_the_task_there(wavespeed_conn: Emulator, emulator_image_url: str, left: str) -> None:
    from airflow.sdk import Asset

    work = {
        "output_uri": {"output_uri": "/tmp/wavespeed-end-from-trigger"},
        "outlets": {"outlets": [Asset("s3://bucket/x")]},
        "on_success_callback": {"on_success_callback": lambda context: None},
    }[left]
    trigger = deferred_trigger(edit(emulator_image_url, end_from_trigger=True, **work))
    assert trigger.end_from_trigger is False


async def test_other_outcomes_resume_on_a_worker(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    from airflow.triggers.base import TaskSuccessEvent

    failed = await final_event(deferred_trigger(edit(emulator_image_url, prompt="[fail] x", end_from_trigger=True)))
    flagged = await final_event(
        deferred_trigger(edit(emulator_image_url, prompt="[nsfw] x", end_from_trigger=True, nsfw_policy="fail"))
    )
    late = edit(emulator_image_url, end_from_trigger=True)
    wavespeed_conn.config.processing_seconds = 30
    trigger = deferred_trigger(late)
    trigger.end_time = time.time() + 0.3
    timed_out = await final_event(trigger)
    for event in (failed, flagged, timed_out):
        assert not isinstance(event, TaskSuccessEvent)
    assert [e.payload["status"] for e in (failed, flagged, timed_out)] == ["failed", "success", "timeout"]


def test_dag_test_resumes_with_the_bare_word_and_still_completes(airflow_db: None, wavespeed_conn: Emulator) -> None:
    """dag.test() ignores the event's XComs and calls execute_complete with "success": the task fetches
    the prediction by id and completes; the downstream task reads the outputs."""
    dag: Any = load_dag_bag(ROOT / "tests" / "dags").get_dag("wavespeed_end_from_trigger")  # type: ignore[attr-defined]
    dag_run = dag.test()
    assert dag_run.state == "success"
    assert wavespeed_conn.submit_count() == 1


def test_consumers_accept_the_json_text_of_triggerer_xcoms() -> None:
    from airflow_wavespeed.utils.validation import check_outputs

    urls = ["https://cdn.example/a.png", "https://cdn.example/b.png"]
    assert check_outputs('["https://cdn.example/a.png", "https://cdn.example/b.png"]') == urls
    assert check_outputs(urls) == urls
