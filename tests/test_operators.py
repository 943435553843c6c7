"""Operators and sensor step by step against the emulator: submit, defer, complete, resume, NSFW, storage."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSkipException, TaskDeferred

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.exceptions import (
    WaveSpeedError,
    WaveSpeedNSFWError,
    WaveSpeedPredictionFailedError,
    WaveSpeedTimeoutError,
)
from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
from airflow_wavespeed.links import WaveSpeedPredictionLink
from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator
from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator
from airflow_wavespeed.prediction import Prediction, PredictionStatus, accepted_outputs
from airflow_wavespeed.sensors.prediction import WaveSpeedPredictionSensor
from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger
from airflow_wavespeed.utils.ledger import STATE_STORE_KEY
from tests.emulator_fixtures import loopback_download
from tests.task_context import DictStateStore, make_context

RESULT = "/api/v3/predictions/{}/result"


def edit(image_url: str, **kwargs: Any) -> WaveSpeedImageEditOperator:
    kwargs.setdefault("prompt", "make the sky purple")
    kwargs.setdefault("deferrable", True)
    kwargs.setdefault("poll_interval", 0.05)
    return WaveSpeedImageEditOperator(task_id="edit", images=[image_url], **kwargs)


def run_trigger(trigger: WaveSpeedPredictionTrigger) -> dict[str, Any]:
    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger yielded nothing")

    return asyncio.run(first_event())


def run_deferred(operator: Any, context: dict[str, Any]) -> Any:
    """execute() → TaskDeferred → the trigger → the named method, as Airflow does it."""
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    event = run_trigger(deferred.value.trigger)
    return getattr(operator, deferred.value.method_name)(context, event=event, **(deferred.value.kwargs or {}))


# ---------------------------------------------------------------- the deferrable flow


def test_deferrable_edit_defers_then_returns_output_urls(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    operator = edit(emulator_image_url, timeout=120)
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, WaveSpeedPredictionTrigger)
    prediction_id = context["ti"].xcoms["prediction_id"]
    assert trigger.prediction_id == prediction_id and trigger.poll_interval == 0.05
    assert trigger.end_time is not None and 100 < trigger.end_time - time.time() <= 120
    assert deferred.value.method_name == "execute_complete" and not deferred.value.kwargs
    # Airflow writes the link when the run ends (deferring too) from get_link: no XCom read needed.
    link = WaveSpeedPredictionLink().get_link(operator, ti_key=None)  # type: ignore[arg-type]
    assert link == f"{wavespeed_conn.base_url}/predictions/{prediction_id}"  # the emulator's keyless page

    outputs = operator.execute_complete(context, event=run_trigger(trigger))
    assert len(outputs) == 1 and outputs[0].startswith(wavespeed_conn.base_url + "/outputs/")
    metadata = context["ti"].xcoms["prediction"]
    assert metadata["id"] == prediction_id and metadata["status"] == "completed"
    assert set(metadata["task_timings"]) == {"operator_seconds", "triggerer_seconds"}
    assert metadata["task_timings"]["triggerer_seconds"] > 0
    assert wavespeed_conn.submit_count() == 1


def test_worker_time_rides_in_the_trigger_event(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    """The deferring run's seconds go to the trigger and come back in its event, so a resume needs no
    XCom read (and dag.test(), which drops defer()'s kwargs, keeps them too)."""
    operator = edit(emulator_image_url, timeout=120)
    context = make_context(task_id=operator.task_id)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    assert "prediction" not in context["ti"].xcoms, "one push of the metadata, at the end"
    carried = deferred.value.trigger.carry["operator_seconds"]
    assert carried > 0

    resumed = edit(emulator_image_url, timeout=120)  # another worker process
    resumed.execute_complete(context, event=run_trigger(deferred.value.trigger))
    timings = context["ti"].xcoms["prediction"]["task_timings"]
    assert timings["operator_seconds"] >= carried and timings["triggerer_seconds"] > 0


def test_non_deferrable_edit_polls_in_the_task(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.processing_polls = 3
    outputs = edit(emulator_image_url, deferrable=False).execute(make_context())
    assert len(outputs) == 1
    assert wavespeed_conn.submit_count() == 1


def test_sync_mode_finishes_without_polling_or_deferring(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    outputs = edit(emulator_image_url, enable_sync_mode=True).execute(make_context())
    assert len(outputs) == 1
    assert not [r for r in wavespeed_conn.requests if r.path.startswith("/api/v3/predictions/")]


def test_sync_mode_that_times_out_falls_back_to_waiting_by_id(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.processing_seconds = 1.0
    wavespeed_conn.config.sync_timeout_seconds = 0.2
    outputs = run_deferred(edit(emulator_image_url, enable_sync_mode=True), make_context())
    assert len(outputs) == 1
    assert wavespeed_conn.submit_count(include_rejected=True) == 1


def test_sync_mode_timeout_answered_over_http_504_falls_back_to_waiting_by_id(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    """Code 5004 with the prediction in the body over a gateway-style 504: wait by id, never resubmit."""
    wavespeed_conn.config.processing_seconds = 1.0
    wavespeed_conn.config.sync_timeout_seconds = 0.2
    wavespeed_conn.config.sync_timeout_http_status = 504
    context = make_context()
    outputs = run_deferred(edit(emulator_image_url, enable_sync_mode=True), context)
    assert len(outputs) == 1
    assert wavespeed_conn.submit_count(include_rejected=True) == 1
    assert context["ti"].xcoms["prediction"]["status"] == "completed"


def test_wait_for_completion_false_returns_the_prediction_id(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    context = make_context()
    prediction_id = edit(emulator_image_url, wait_for_completion=False).execute(context)
    assert prediction_id == context["ti"].xcoms["prediction_id"]
    assert context["ti"].xcoms["prediction"]["status"] in ("created", "processing")
    assert not [r for r in wavespeed_conn.requests if r.path == RESULT.format(prediction_id)]


def test_a_local_image_without_an_extension_is_uploaded_named_by_its_bytes(
    wavespeed_conn: Emulator, tmp_path: Path, sample_png: bytes
) -> None:
    path = tmp_path / "photo"
    path.write_bytes(sample_png)
    run_deferred(edit(str(path)), make_context())
    (upload,) = wavespeed_conn.uploads.values()
    assert upload.data == sample_png
    (prediction,) = wavespeed_conn.predictions.values()
    assert prediction.image_urls[0].endswith("/photo.png") and prediction.status == "completed"


def test_local_image_is_uploaded_and_extra_inputs_pass_through(wavespeed_conn: Emulator, sample_png_path: Path) -> None:
    operator = edit(str(sample_png_path), extra_inputs={"output_format": "jpeg", "quality": "high"}, aspect_ratio="2:3")
    outputs = run_deferred(operator, make_context())
    assert outputs[0].endswith(".jpeg")
    (prediction,) = wavespeed_conn.predictions.values()
    assert prediction.image_urls[0].startswith(wavespeed_conn.base_url + "/media/")
    assert prediction.aspect_ratio == "2:3"


def test_aspect_ratio_none_lets_the_api_choose(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    run_deferred(edit(emulator_image_url, aspect_ratio=None), make_context())
    (prediction,) = wavespeed_conn.predictions.values()
    assert prediction.aspect_ratio in (None, "3:2")  # the emulator detects 3:2 from the 300x200 input


def test_run_model_operator_runs_any_model(wavespeed_conn: Emulator) -> None:
    operator = WaveSpeedRunModelOperator(
        task_id="flux", model="wavespeed-ai/flux-dev", inputs={"prompt": "a lighthouse"}, deferrable=True, poll_interval=0.05
    )
    outputs = run_deferred(operator, make_context())
    assert len(outputs) == 1 and wavespeed_conn.submit_count() == 1


# ---------------------------------------------------------------- failures reach the user, with the id


def test_failed_prediction_raises_with_its_id_and_the_api_error(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    context = make_context()
    with pytest.raises(WaveSpeedPredictionFailedError, match="Emulated failure") as raised:
        run_deferred(edit(emulator_image_url, prompt="[fail] it"), context)
    assert raised.value.prediction_id == context["ti"].xcoms["prediction_id"]
    assert raised.value.prediction_id in str(raised.value)
    assert context["ti"].xcoms["prediction"]["status"] == "failed"


def test_timeout_raises_with_the_prediction_id(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.processing_seconds = 30
    context = make_context()
    with pytest.raises(WaveSpeedTimeoutError) as raised:
        run_deferred(edit(emulator_image_url, timeout=0.3), context)
    assert raised.value.prediction_id == context["ti"].xcoms["prediction_id"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (None, "no usable event"),
        ({"status": "weird"}, "no usable event"),
        ("success", "no usable event"),
        ({"status": "error", "prediction_id": "p1", "message": "boom"}, "p1 failed: boom"),
        ({"status": "success", "prediction_id": "p1", "prediction": None}, "p1"),
        ({"status": "timeout", "prediction_id": "p1", "message": "too slow"}, "too slow"),
    ],
    ids=["none", "unknown-status", "not-a-dict", "error", "success-without-metadata", "timeout"],
)
def test_execute_complete_never_passes_quietly(wavespeed_conn: Emulator, event: Any, message: str) -> None:
    operator = edit("https://example.com/a.png")
    with pytest.raises(WaveSpeedError, match=message):
        operator.execute_complete(make_context(), event=event)


# ---------------------------------------------------------------- NSFW policy


def completed(outputs: list[str], flags: list[bool]) -> Prediction:
    return Prediction(id="p", model="m", status=PredictionStatus.COMPLETED, outputs=outputs, has_nsfw_contents=flags)


A, B = "https://cdn.example.com/a.png", "https://cdn.example.com/b.png"


@pytest.mark.parametrize(
    ("policy", "flags", "expected"),
    [
        ("allow", [True, False], [A, B]),
        ("drop", [True, False], [B]),
        ("drop", [False, False], [A, B]),
        ("drop", [True, True], WaveSpeedNSFWError),
        ("fail", [False, True], WaveSpeedNSFWError),
        ("fail", [False, False], [A, B]),
        ("drop", [True], [B]),  # fewer flags than outputs: an unflagged output is kept
    ],
    ids=["allow", "drop-one", "drop-none", "drop-all", "fail", "fail-clean", "short-flags"],
)
def test_nsfw_policy_table(policy: str, flags: list[bool], expected: Any) -> None:
    if isinstance(expected, list):
        assert accepted_outputs(completed([A, B], flags), policy) == expected
    else:
        with pytest.raises(expected, match="NSFW"):
            accepted_outputs(completed([A, B], flags), policy)


def test_base64_outputs_are_handed_on_only_to_storage() -> None:
    inline = completed(["iVBORw0KGgo="], [])
    with pytest.raises(WaveSpeedError, match="p has base64 outputs, which never go through XCom"):
        accepted_outputs(inline, "allow")
    assert accepted_outputs(inline, "allow", will_store=True) == ["iVBORw0KGgo="]


def test_a_success_event_without_its_outputs_fails_an_operator_that_does_not_store(
    wavespeed_conn: Emulator,
) -> None:
    """Outputs left out of the event are base64; without output_uri they have nowhere to go but XCom."""
    metadata = {"id": "p1", "model": "openai/gpt-image-2/edit", "status": "completed", "num_outputs": 1, "has_nsfw_contents": []}
    event = {"status": "success", "prediction_id": "p1", "outputs": [], "message": "", "prediction": metadata}
    operator = edit("https://example.com/in.png")
    with pytest.raises(WaveSpeedError, match="p1 has base64 outputs"):
        operator.execute_complete(make_context(), event=event)
    assert wavespeed_conn.requests == []


def test_nsfw_fail_policy_through_the_emulator(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    context = make_context()
    with pytest.raises(WaveSpeedNSFWError):
        run_deferred(edit(emulator_image_url, prompt="[nsfw] x", nsfw_policy="fail"), context)
    assert context["ti"].xcoms["prediction"]["has_nsfw_contents"] == [True]
    assert len(run_deferred(edit(emulator_image_url, prompt="[nsfw] x"), make_context())) == 1


# ---------------------------------------------------------------- outputs to a local directory


def test_output_uri_writes_real_images(wavespeed_conn: Emulator, emulator_image_url: str, tmp_path: Path) -> None:
    from PIL import Image

    context = make_context(dag_id="d", run_id="r1", task_id="t")
    paths = run_deferred(edit(emulator_image_url, output_uri=str(tmp_path), aspect_ratio="3:2"), context)
    prediction_id = context["ti"].xcoms["prediction_id"]
    assert paths == [str(tmp_path / f"{prediction_id}_0.png")]
    assert Image.open(paths[0]).size == (96, 64)  # 1536x1024 at 1/16


def test_base64_outputs_are_decoded_to_storage_not_xcom(
    wavespeed_conn: Emulator, emulator_image_url: str, tmp_path: Path
) -> None:
    from PIL import Image

    wavespeed_conn.config.base64_data_uri_prefix = True
    context = make_context()
    paths = run_deferred(edit(emulator_image_url, enable_base64_output=True, output_uri=f"file://{tmp_path}"), context)
    assert Image.open(paths[0]).format == "PNG"
    assert all(len(str(value)) < 2000 for value in context["ti"].xcoms.values())


def test_key_template_and_replace_false(wavespeed_conn: Emulator, emulator_image_url: str, tmp_path: Path) -> None:
    from airflow_wavespeed.exceptions import OutputExistsError

    operator = edit(emulator_image_url, output_uri=str(tmp_path), key_template="{dag_id}/../../{task_id}_{n}.{ext}")
    (path,) = run_deferred(operator, make_context(dag_id="d", task_id="t"))
    assert Path(path).parent.parent == tmp_path and Path(path).name == "t_0.png", "'..' cannot climb out"
    from airflow_wavespeed.utils.storage import store_outputs

    with pytest.raises(OutputExistsError):
        store_outputs(
            [emulator_image_url], str(tmp_path), download=loopback_download(), names={"dag_id": "d", "task_id": "t"},
            name_template="{dag_id}/{task_id}_{n}.{ext}", replace=False,
        )


def test_output_size_cap(wavespeed_conn: Emulator, emulator_image_url: str, tmp_path: Path) -> None:
    from airflow_wavespeed.exceptions import OutputTooLargeError

    with pytest.raises(OutputTooLargeError, match="max_output_bytes"):
        run_deferred(edit(emulator_image_url, output_uri=str(tmp_path), max_output_bytes=100), make_context())
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- a retry never bills twice


def test_retry_resumes_a_running_prediction_without_submitting(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.processing_seconds = 1.0
    store = DictStateStore()
    first = make_context(store=store)
    with pytest.raises(TaskDeferred):
        edit(emulator_image_url).execute(first)  # the first try dies here, after submitting
    assert store.values[STATE_STORE_KEY]["id"] == first["ti"].xcoms["prediction_id"]

    second = make_context(store=store, try_number=2)
    outputs = run_deferred(edit(emulator_image_url), second)
    assert second["ti"].xcoms["prediction_id"] == first["ti"].xcoms["prediction_id"]
    assert len(outputs) == 1
    assert wavespeed_conn.submit_count(include_rejected=True) == 1
    assert STATE_STORE_KEY not in store.values, "cleared on success, so a deliberate re-run submits afresh"


def test_no_store_delete_where_airflow_clears_the_store_on_success(
    wavespeed_conn: Emulator, emulator_image_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``[state_store] clear_on_success`` Airflow's API server drops the key as the task succeeds: the
    ledger's own delete would be one more Execution API call per edit (``bench/RESULTS.md``, where the calls go)."""
    deletes: list[str] = []
    store = DictStateStore()
    monkeypatch.setattr(store, "delete", deletes.append)
    run_deferred(edit(emulator_image_url), make_context(store=store))
    assert deletes == [STATE_STORE_KEY], "by default the ledger clears its record on success"

    deletes.clear()
    monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "True")
    run_deferred(edit(emulator_image_url), make_context(store=store))
    assert deletes == [], "Airflow clears the store itself: no call of ours"
    assert wavespeed_conn.submit_count() == 2


def test_retry_of_a_finished_prediction_returns_its_outputs(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    store = DictStateStore()
    with pytest.raises(TaskDeferred):
        edit(emulator_image_url).execute(make_context(store=store))
    time.sleep(0.1)
    WaveSpeedHook().wait_for_prediction(store.values[STATE_STORE_KEY]["id"], poll_interval=0.05)
    outputs = edit(emulator_image_url).execute(make_context(store=store, try_number=2))
    assert len(outputs) == 1 and wavespeed_conn.submit_count(include_rejected=True) == 1


def test_retry_after_a_failed_prediction_submits_a_new_one(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    store = DictStateStore()
    with pytest.raises(WaveSpeedPredictionFailedError):
        run_deferred(edit(emulator_image_url, prompt="[fail] x"), make_context(store=store))
    with pytest.raises(WaveSpeedPredictionFailedError):
        run_deferred(edit(emulator_image_url, prompt="[fail] x"), make_context(store=store, try_number=2))
    assert wavespeed_conn.submit_count() == 2


def test_a_stored_prediction_is_not_resumed_once_the_inputs_changed(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    """A task cleared after its prompt was fixed submits the new edit; unchanged inputs still resume."""
    store = DictStateStore()
    with pytest.raises(TaskDeferred):
        edit(emulator_image_url, prompt="first wording").execute(make_context(store=store))
    first_id = store.values[STATE_STORE_KEY]["id"]
    with pytest.raises(TaskDeferred):
        edit(emulator_image_url, prompt="first wording").execute(make_context(store=store, try_number=2))
    assert store.values[STATE_STORE_KEY]["id"] == first_id and wavespeed_conn.submit_count() == 1

    context = make_context(store=store, try_number=3)
    with pytest.raises(TaskDeferred):
        edit(emulator_image_url, prompt="second wording").execute(context)
    assert wavespeed_conn.submit_count() == 2
    assert context["ti"].xcoms["prediction_id"] == store.values[STATE_STORE_KEY]["id"] != first_id


def test_each_try_records_which_prediction_it_used(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    """For the WaveSpeed tab: Airflow clears a try's XComs when the next starts, so the ledger keeps the list
    and a retry pushes it (``prediction_tries``); a first try pushes nothing more than before."""
    store = DictStateStore()
    first = make_context(store=store)
    with pytest.raises(TaskDeferred):
        edit(emulator_image_url).execute(first)
    assert "prediction_tries" not in first["ti"].xcoms
    (prediction_id,) = wavespeed_conn.predictions
    second = make_context(store=store, try_number=2)
    with pytest.raises(TaskDeferred):
        edit(emulator_image_url).execute(second)
    expected = [{"try": 1, "id": prediction_id, "how": "submitted"}, {"try": 2, "id": prediction_id, "how": "resumed"}]
    assert second["ti"].xcoms["prediction_tries"] == expected == store.values[STATE_STORE_KEY]["tries"]


def test_a_malformed_or_unwritable_record_of_tries_never_stops_a_resume() -> None:
    from airflow_wavespeed.utils.ledger import PredictionLedger

    store = DictStateStore()
    store.values[STATE_STORE_KEY] = {"id": "abc", "submission": "d", "tries": [{"try": "1"}, "x", {"try": 1, "id": "abc"}]}
    ledger = PredictionLedger(store, "d", try_number=2)
    assert ledger.recorded() == "abc" and ledger.tries == [{"try": 1, "id": "abc", "how": "submitted"}]

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("store down")

    store.set = refuse  # type: ignore[method-assign]
    ledger.note_resumed("abc")  # only a warning: the id a retry needs is already recorded
    assert ledger.tries[-1] == {"try": 2, "id": "abc", "how": "resumed"}


def test_without_a_state_store_a_retry_submits_again(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    """Airflow 3.1/3.2: no task state store, so each try submits (the README says so)."""
    for try_number in (1, 2):
        with pytest.raises(TaskDeferred):
            edit(emulator_image_url).execute(make_context(try_number=try_number))
    assert wavespeed_conn.submit_count() == 2


# ---------------------------------------------------------------- templated arguments


def test_templated_arguments_are_checked_after_rendering(wavespeed_conn: Emulator) -> None:
    from airflow_wavespeed.exceptions import WaveSpeedInputError

    operator = WaveSpeedImageEditOperator(
        task_id="t", images="{{ params.images }}", prompt="{{ params.prompt }}", aspect_ratio="{{ params.ar }}"
    )
    operator.images, operator.prompt, operator.aspect_ratio = ["https://example.com/a.png"], "ok", "7:5"
    with pytest.raises(WaveSpeedInputError, match="aspect_ratio"):
        operator.execute(make_context())
    assert wavespeed_conn.requests == []


# ---------------------------------------------------------------- the sensor


def submitted(image_url: str, prompt: str = "x") -> str:
    return WaveSpeedHook().submit("openai/gpt-image-2/edit", {"images": [image_url], "prompt": prompt}).id


def sensor(prediction_id: str, **kwargs: Any) -> WaveSpeedPredictionSensor:
    kwargs.setdefault("poke_interval", 0.05)
    return WaveSpeedPredictionSensor(task_id="wait", prediction_id=prediction_id, timeout=30, **kwargs)


def test_sensor_poke_mode_returns_outputs(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.processing_polls = 3
    outputs = sensor(submitted(emulator_image_url), deferrable=False).execute(make_context())
    assert len(outputs) == 1 and outputs[0].startswith("http")


def test_sensor_deferrable_defers_then_returns_outputs(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.processing_polls = 2
    context = make_context()
    outputs = run_deferred(sensor(submitted(emulator_image_url), deferrable=True), context)
    assert len(outputs) == 1 and context["ti"].xcoms["prediction"]["status"] == "completed"


def test_sensor_on_a_finished_prediction_does_not_defer(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    prediction_id = submitted(emulator_image_url)
    WaveSpeedHook().wait_for_prediction(prediction_id, poll_interval=0.05)
    assert len(sensor(prediction_id, deferrable=True).execute(make_context())) == 1


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_sensor_failed_prediction_raises_or_skips(wavespeed_conn: Emulator, emulator_image_url: str, deferrable: bool) -> None:
    prediction_id = submitted(emulator_image_url, "[fail] x")
    run = run_deferred if deferrable else (lambda op, ctx: op.execute(ctx))
    with pytest.raises(WaveSpeedPredictionFailedError, match=prediction_id):
        run(sensor(prediction_id, deferrable=deferrable), make_context())
    with pytest.raises(AirflowSkipException, match=prediction_id):
        run(sensor(prediction_id, deferrable=deferrable, soft_fail=True), make_context())


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_sensor_refuses_to_pass_base64_outputs_through_xcom(
    wavespeed_conn: Emulator, emulator_image_url: str, deferrable: bool
) -> None:
    wavespeed_conn.config.processing_polls = 2
    prediction_id = (
        WaveSpeedHook()
        .submit("openai/gpt-image-2/edit", {"images": [emulator_image_url], "prompt": "x"}, enable_base64_output=True)
        .id
    )
    run = run_deferred if deferrable else (lambda op, ctx: op.execute(ctx))
    context = make_context()
    with pytest.raises(WaveSpeedError, match=f"{prediction_id} has base64 outputs, which never go through XCom"):
        run(sensor(prediction_id, deferrable=deferrable), context)
    assert "return_value" not in context["ti"].xcoms
    assert context["ti"].xcoms["prediction"]["num_outputs"] == 1


def test_sensor_rejects_a_bad_prediction_id_at_construction() -> None:
    from airflow_wavespeed.exceptions import WaveSpeedInputError

    with pytest.raises(WaveSpeedInputError, match="prediction_id"):
        sensor("../etc/passwd")
    assert sensor("{{ ti.xcom_pull('submit') }}").prediction_id.startswith("{{")


def test_operator_modules_import_no_heavy_clients() -> None:
    """What every DAG parse pays: no requests, aiohttp, boto3, S3Hook or Pillow at import time."""
    import subprocess
    import sys

    heavy = ("requests", "aiohttp", "boto3", "airflow.providers.amazon.aws.hooks.s3", "PIL")
    code = (
        "import sys, airflow.sdk\n"
        "import airflow_wavespeed.operators.image_edit, airflow_wavespeed.operators.run_model\n"
        "import airflow_wavespeed.sensors.prediction, airflow_wavespeed.triggers.prediction\n"
        "import airflow_wavespeed.transfers.wavespeed_to_s3\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_dag_parse_loads_only_what_building_a_task_needs() -> None:
    """The hook, the trigger, storage and the prediction model load when a task runs, not per DAG parse."""
    import subprocess
    import sys

    runtime_only = (
        "airflow_wavespeed.hooks.wavespeed",
        "airflow_wavespeed.hooks.transport",
        "airflow_wavespeed.hooks.answers",
        "airflow_wavespeed.hooks.deadline",
        "airflow_wavespeed.triggers.prediction",
        "airflow.triggers.base",
        "airflow_wavespeed.prediction",
        "airflow_wavespeed.utils.storage",
        "airflow_wavespeed.utils.inputs",
        "airflow_wavespeed.utils.ledger",
    )
    code = (
        "import sys, airflow.sdk\n"
        "before = set(sys.modules)\n"  # Airflow 3.1's airflow.sdk loads airflow.triggers.base itself
        "import airflow_wavespeed.operators.image_edit, airflow_wavespeed.operators.run_model\n"
        "import airflow_wavespeed.sensors.prediction, airflow_wavespeed.transfers.wavespeed_to_s3\n"
        f"print(sorted(m for m in {runtime_only!r} if m in sys.modules and m not in before))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
