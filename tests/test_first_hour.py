"""What a new user's first hour in the Airflow UI showed (issue 14), each fixed behaviour tested.

The REST side of "Test connection" runs on the real Airflow of ``tests/e2e``; the pool fallback and the
mapped labels run through ``dag.test()`` in ``tests/test_example_dags.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
from airflow_wavespeed.links import WaveSpeedPredictionLink, prediction_url
from airflow_wavespeed.operators.image_edit import PROMPT_LABEL, WaveSpeedImageEditOperator
from tests.conftest import connection_json
from tests.task_context import make_context

ROOT = Path(__file__).resolve().parents[1]


def test_the_extra_link_opens_a_keyless_page_of_the_prediction(
    wavespeed_conn: Emulator, sample_png_path: Path
) -> None:
    edit = WaveSpeedImageEditOperator(
        task_id="edit", images=[str(sample_png_path)], prompt="make it <b>blue</b>", deferrable=False
    )
    context = make_context()
    (output,) = edit.execute(context)
    link = WaveSpeedPredictionLink().get_link(edit, ti_key=None)  # what Airflow writes when the run ends
    prediction_id = context["ti"].xcoms["prediction_id"]
    assert link == f"{wavespeed_conn.base_url}/predictions/{prediction_id}"
    page = requests.get(link, timeout=10)  # as a browser: no Authorization header
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "completed" in page.text and "make it &lt;b&gt;blue&lt;/b&gt;" in page.text, "escaped, not rendered"
    assert f'src="{output}"' in page.text, "the output image is shown"
    assert "/media/" in page.text, "the uploaded input image is shown"
    assert prediction_url("https://api.wavespeed.ai", "abc") == "https://wavespeed.ai/predictions?id=abc"


def test_connection_test_messages_name_no_temporary_id(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow tests a form under a random id the user never chose ('YL20akw3')."""
    monkeypatch.setenv("AIRFLOW_CONN_YL20AKW3", connection_json(emulator.base_url, "sk-wrong-" + "x" * 20))
    ok, message = WaveSpeedHook("YL20akw3").test_connection()
    assert not ok and "refused the API key" in message and "this connection" in message
    assert "YL20akw3" not in message

    monkeypatch.setenv("AIRFLOW_CONN_YL20AKW3", connection_json(f"{emulator.base_url}/api/v3/", "k" * 20))
    ok, message = WaveSpeedHook("YL20akw3").test_connection()
    assert not ok and "the base URL is the host only" in message and "YL20akw3" not in message

    monkeypatch.setenv("AIRFLOW_CONN_YL20AKW3", json.dumps({**json.loads(connection_json(emulator.base_url)), "port": 0}))
    ok, message = WaveSpeedHook("YL20akw3").test_connection()
    assert ok and "balance" in message, "a form's port of 0 is no port"


def test_default_output_names_are_portable_and_unique_per_run(wavespeed_conn: Emulator, emulator_image_url: str, tmp_path: Path) -> None:
    stored = []
    for run_id in ("manual__2026-11-30T14:07:41.559831+00:00", "manual__2026-11-30T14:07:42.000001+00:00"):
        edit = WaveSpeedImageEditOperator(
            task_id="edit", images=[emulator_image_url], prompt="p", deferrable=False,
            output_uri=str(tmp_path), key_template="{run_id}/{prediction_id}_{n}.{ext}",
        )  # fmt: skip
        (path,) = edit.execute(make_context(run_id=run_id))
        stored.append(Path(path))
    assert all(":" not in str(path) and "+" not in str(path) for path in stored)
    assert stored[0].parent.name == "manual__2026-11-30T14_07_41.559831_00_00"
    assert stored[0].parent != stored[1].parent


def test_the_log_says_what_was_uploaded_and_where_outputs_went(
    wavespeed_conn: Emulator, sample_png_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: Any
) -> None:
    caplog.set_level(logging.INFO)
    edit = WaveSpeedImageEditOperator(
        task_id="edit", images=[str(sample_png_path)], prompt="p", deferrable=False, output_uri=str(tmp_path)
    )
    (path,) = edit.execute(make_context())
    out, err = capfd.readouterr()
    logs = "\n".join((caplog.text, out, err))
    assert f"Uploaded images[0] {sample_png_path} as {wavespeed_conn.base_url}/media/" in logs
    assert "Stored the outputs of prediction" in logs and path in logs


def test_one_constant_labels_mapped_edits_by_their_prompt(airflow_db: None) -> None:
    """The batch example labels its edits with PROMPT_LABEL (its dag.test() run checks the labels)."""
    from tests.conftest import load_dag_bag

    dag: Any = load_dag_bag(ROOT / "example_dags").get_dag("wavespeed_batch_edit")  # type: ignore[attr-defined]
    assert dag.get_task("edit").partial_kwargs["map_index_template"] == PROMPT_LABEL


def test_the_trigger_form_describes_every_field_and_cannot_pick_a_worker_directory(airflow_db: None) -> None:
    from tests.conftest import load_dag_bag

    dag: Any = load_dag_bag(ROOT / "example_dags").get_dag("wavespeed_image_edit")  # type: ignore[attr-defined]
    params = dag.params
    assert "output_dir" not in params
    for name in ("images", "prompt", "aspect_ratio", "output_name"):
        assert params.get_param(name).description, f"{name} has no help text"
    schema = params.get_param("output_name").schema
    assert schema["pattern"] and not __import__("re").fullmatch(schema["pattern"], "../../dags")
    task = dag.get_task("edit_image")
    assert task.output_uri.endswith("/{{ params.output_name }}") and task.output_uri.startswith("/")


@pytest.mark.parametrize("uri", ["/tmp/out/../dags", "file:///tmp/out/../../etc", "../elsewhere"])
def test_a_local_output_uri_may_not_climb(uri: str) -> None:
    from airflow_wavespeed.exceptions import WaveSpeedInputError

    with pytest.raises(WaveSpeedInputError, match="output_uri may not contain '..' segments"):
        WaveSpeedImageEditOperator(task_id="e", images=["https://e.com/a.png"], prompt="p", output_uri=uri)


# -- issue 24: what the triggerer logs of an event ------------------------------------------------------


async def _event_of(prediction_id: str) -> Any:
    import time

    from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger

    (event,) = [e async for e in WaveSpeedPredictionTrigger(prediction_id, poll_interval=0.05, end_time=time.time() + 30).run()]
    return event


@pytest.mark.parametrize("prompt", ["make it blue", "[fail] " + "a long prompt " * 300], ids=["success", "failed"])
async def test_the_triggerer_logs_an_event_in_one_short_line(
    wavespeed_conn: Emulator, emulator_image_url: str, prompt: str
) -> None:
    """Airflow's triggerer logs ``result=event`` (its repr) at INFO: one short line, the payload unchanged."""
    prediction_id = WaveSpeedHook().submit("openai/gpt-image-2/edit", {"images": [emulator_image_url], "prompt": prompt}).id
    event = await _event_of(prediction_id)
    line = repr(event)
    status = "failed" if prompt.startswith("[fail]") else "success"
    assert line.startswith(f"TriggerEvent<{status}: prediction {prediction_id}") and len(line) < 400, line
    assert ("1 output(s)" in line) if status == "success" else ("Emulated failure" in line)
    assert "'outputs'" not in line and emulator_image_url not in line
    assert event.payload["status"] == status and event.payload["prediction_id"] == prediction_id


async def test_a_summarized_event_crosses_the_triggerers_pipe_as_a_plain_event(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    """The triggerer's subprocess sends events to its supervisor as the ``DiscrimatedTriggerEvent`` union:
    ours travels as the same JSON as a plain ``TriggerEvent`` and comes back as one, payload intact."""
    from airflow.triggers.base import DiscrimatedTriggerEvent, TriggerEvent
    from pydantic import TypeAdapter

    prediction_id = WaveSpeedHook().submit("openai/gpt-image-2/edit", {"images": [emulator_image_url], "prompt": "p"}).id
    event = await _event_of(prediction_id)
    adapter: TypeAdapter[Any] = TypeAdapter(DiscrimatedTriggerEvent)
    wire = adapter.dump_json(event, warnings="error")
    assert wire == adapter.dump_json(TriggerEvent(event.payload))  # type: ignore[no-untyped-call]
    back = adapter.validate_json(wire)
    assert type(back) is TriggerEvent and back.payload == event.payload
