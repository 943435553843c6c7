"""Every example DAG parses, and runs end to end through Airflow's dag.test() against the emulator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from airflow_wavespeed.emulator import Emulator
from tests.conftest import load_dag_bag

EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "example_dags"


@pytest.fixture(scope="module")
def dag_bag(airflow_db: None) -> Any:
    return load_dag_bag(EXAMPLE_DAGS)


@pytest.fixture
def airflow_env(wavespeed_conn: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Emulator:
    monkeypatch.setenv("WAVESPEED_OUTPUT_DIR", str(tmp_path / "out"))
    return wavespeed_conn


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key, map_index=map_index
        ).one()
        value = row.value
    import json

    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:  # a plain string is stored as it is
        return value


EXAMPLE_EDITS = [
    {"prompt": "Make it a snowy winter morning"},
    {"prompt": "Render it as a neon-lit night scene"},
    {"prompt": "Turn it into a pencil sketch"},
]


def test_every_example_dag_parses(dag_bag: Any) -> None:
    assert dag_bag.import_errors == {}
    expected = {"wavespeed_image_edit", "wavespeed_submit_then_sense", "wavespeed_batch_edit", "wavespeed_content_pipeline"}
    assert expected <= set(dag_bag.dag_ids)


def test_image_edit_dag_writes_edited_images(dag_bag: Any, airflow_env: Emulator) -> None:
    from PIL import Image

    from tests.conftest import EXAMPLE_OUTPUT_DIR

    out = EXAMPLE_OUTPUT_DIR / "edits-2-3"
    dag_run = dag_bag.get_dag("wavespeed_image_edit").test(run_conf={"output_name": out.name, "aspect_ratio": "2:3"})
    assert dag_run.state == "success"
    (path,) = xcom(dag_run, "edit_image")
    assert Path(path).parent == out and Image.open(path).size == (64, 96)
    prediction_id = xcom(dag_run, "edit_image", "prediction_id")
    assert Path(path).name.startswith(prediction_id)
    assert xcom(dag_run, "edit_image", "prediction")["status"] == "completed"
    assert airflow_env.submit_count() == 1


def test_submit_then_sense_dag(dag_bag: Any, airflow_env: Emulator) -> None:
    airflow_env.config.processing_polls = 2
    dag_run = dag_bag.get_dag("wavespeed_submit_then_sense").test()
    assert dag_run.state == "success"
    prediction_id = xcom(dag_run, "submit_edit")
    assert xcom(dag_run, "wait_for_edit") and xcom(dag_run, "wait_for_edit")[0].startswith(airflow_env.base_url)
    (described,) = xcom(dag_run, "describe_outputs")
    assert described["content_type"] == "image/png" and described["bytes"] > 0
    assert airflow_env.submit_count() == 1
    assert prediction_id in airflow_env.predictions


def test_batch_dag_maps_one_edit_per_pair_out_of_the_box(dag_bag: Any, airflow_env: Emulator) -> None:
    """No pool to create first (it once waited in "scheduled" forever without one), and each mapped edit
    is labelled by its prompt."""
    from airflow.models.pool import Pool

    assert Pool.get_pool("wavespeed") is None
    dag = dag_bag.get_dag("wavespeed_batch_edit")
    dag_run = dag.test()
    assert dag_run.state == "success"
    paths = [xcom(dag_run, "edit", map_index=n)[0] for n in range(3)]
    assert len(set(paths)) == 3 and all(Path(p).is_file() for p in paths)
    assert airflow_env.submit_count() == 3
    labels = sorted(ti.rendered_map_index for ti in dag_run.get_task_instances() if ti.task_id == "edit")
    assert labels == sorted(edit["prompt"] for edit in EXAMPLE_EDITS)


def test_a_retry_resumes_the_submitted_prediction_through_airflow(
    dag_bag: Any, airflow_env: Emulator, tmp_path: Path
) -> None:
    """The first try times out after submitting; the retry (Airflow ≥ 3.3) resumes it: one submit."""
    supports_store = _has_task_state_store()
    airflow_env.config.processing_seconds = 3.0
    dag = load_dag_bag(Path(__file__).parent / "dags").get_dag("wavespeed_retry_resume")  # type: ignore[attr-defined]
    dag_run = dag.test()
    if supports_store:
        assert dag_run.state == "success"
        assert airflow_env.submit_count(include_rejected=True) == 1
        # Which prediction each try used, for the WaveSpeed tab (Airflow cleared the first try's XComs).
        (prediction_id,) = airflow_env.predictions
        assert xcom(dag_run, "edit", key="prediction_tries") == [
            {"try": 1, "id": prediction_id, "how": "submitted"},
            {"try": 2, "id": prediction_id, "how": "resumed"},
        ]
        _the_tab_lists_each_try_with_its_prediction(dag_run, prediction_id)
    else:
        # Airflow 3.1/3.2 have no task state store: every retry submits again (documented in the README),
        # and each new prediction outlasts its try's timeout, so every try submits once and the run fails.
        tries = 1 + dag.get_task("edit").retries
        assert dag_run.state == "failed"
        assert airflow_env.submit_count(include_rejected=True) == tries


def _the_tab_lists_each_try_with_its_prediction(dag_run: Any, prediction_id: str) -> None:
    """The WaveSpeed tab of that task, read from the metadata DB as the api-server reads it."""
    from airflow.utils.session import create_session

    from airflow_wavespeed.plugins.www.records import task_instance
    from airflow_wavespeed.plugins.www.render import task_tab

    with create_session() as session:
        record = task_instance(session, dag_run.dag_id, dag_run.run_id, "edit", -1)
    assert record is not None and [t.try_number for t in record.tries] == [1]
    page = task_tab(record, [], [], run_id=dag_run.run_id)
    assert re.search(rf"<tr><td>1</td><td>[a-z_]+</td><td><code>{prediction_id}</code> <small>submitted</small>", page)
    assert "resumed by try 2, submitted by try 1" in page


def test_an_uncertain_submit_fails_the_task_without_using_its_retries(
    airflow_db: None, airflow_env: Emulator, emulator_image_url: str
) -> None:
    """The submit's answer is lost (HTTP 500 after creating it) and the history cannot tell it apart from
    another edit's (its items carry no inputs here): retries=2, yet one submit of this task in all."""
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook

    airflow_env.config.history_includes_input = False
    WaveSpeedHook().submit("openai/gpt-image-2/edit", {"images": [emulator_image_url], "prompt": "another edit"})
    airflow_env.config.submit_5xx_rate = 1.0
    dag = load_dag_bag(Path(__file__).parent / "dags").get_dag("wavespeed_uncertain_submit")  # type: ignore[attr-defined]
    dag_run = dag.test(run_conf={"image_url": emulator_image_url})
    assert dag_run.state == "failed"
    assert airflow_env.submit_count(include_rejected=True) == 2
    (ti,) = dag_run.get_task_instances()
    assert ti.state == "failed" and ti.try_number == 1


def test_a_lost_submit_answer_found_in_the_history_succeeds(
    airflow_db: None, airflow_env: Emulator, emulator_image_url: str
) -> None:
    """The same lost answer (issue 22), alone in the history: found again, waited for, one submit."""
    airflow_env.config.submit_5xx_rate = 1.0
    dag = load_dag_bag(Path(__file__).parent / "dags").get_dag("wavespeed_uncertain_submit")  # type: ignore[attr-defined]
    dag_run = dag.test(run_conf={"image_url": emulator_image_url})
    assert dag_run.state == "success"
    assert airflow_env.submit_count(include_rejected=True) == 1
    (ti,) = dag_run.get_task_instances()
    assert ti.try_number == 1


def _has_task_state_store() -> bool:
    try:
        from airflow.sdk import ResumableJobMixin  # noqa: F401  (arrived with the store in 3.3)
    except ImportError:
        return False
    return True


# -- issue 24: every example offline as the README says, with the retries it recommends --------------------

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_s3() -> Any:
    """``scripts/local_s3.py`` (``make local-s3``) as a user starts it; answers the connection it printed."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAVESPEED_S3_", "WAVESPEED_PUBLISH"))}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "local_s3.py"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    printed = []
    for line in process.stdout:  # the script prints the ready line last, or exits
        printed.append(line)
        if line.startswith("Local S3 ready at"):
            break
    exports = [line.split("=", 1)[1].strip().strip("'") for line in printed if "export AIRFLOW_CONN_AWS_DEFAULT=" in line]
    assert len(exports) == 1 and process.poll() is None, "".join(printed)
    yield exports[0]
    process.terminate()
    process.wait(timeout=30)


def test_the_s3_pipeline_runs_on_the_documented_local_s3(
    airflow_db: None, wavespeed_conn: Emulator, local_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make local-s3``, its connection exported, the DAG triggered with its defaults: the edit lands in S3."""
    import json

    import boto3

    from tests.s3_fixtures import load_example_dags

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", local_s3)
    dags = load_example_dags(monkeypatch, "wavespeed-demo")  # the script's and the DAG's default bucket
    run = dags["wavespeed_s3_pipeline"].test()
    assert run.state == "success"
    (stored,) = xcom(run, "store_in_s3", map_index=0)
    assert stored.startswith("s3://wavespeed-demo/edits/")
    extra = json.loads(local_s3)["extra"]
    s3 = boto3.client("s3", endpoint_url=extra["endpoint_url"], region_name=extra["region_name"],
                      aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip
    body = s3.get_object(Bucket="wavespeed-demo", Key=stored.removeprefix("s3://wavespeed-demo/"))["Body"].read()
    assert body.startswith(b"\x89PNG")
    assert s3.head_bucket(Bucket="wavespeed-published"), "the review example's bucket is made too"
    assert wavespeed_conn.submit_count() == 1


def test_every_example_task_has_the_retries_the_readme_recommends(dag_bag: Any) -> None:
    """README, Known Airflow issues: ``retries`` >= 1 for tasks that wait (the fast-prediction race); a
    submit that does not wait keeps none (Billing safety: on 3.1/3.2 its retry would submit again)."""
    from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator
    from airflow_wavespeed.sensors.prediction import WaveSpeedPredictionSensor

    seen = 0
    for dag_id in dag_bag.dag_ids:
        for task in dag_bag.get_dag(dag_id).tasks:
            operator_class = getattr(task, "operator_class", type(task))  # a mapped task names its class
            if not issubclass(operator_class, (WaveSpeedRunModelOperator, WaveSpeedPredictionSensor)):
                continue
            kwargs = getattr(task, "partial_kwargs", None) or {}
            waits = kwargs.get("wait_for_completion", getattr(task, "wait_for_completion", True))
            retries = kwargs.get("retries", task.retries)
            if waits:
                assert retries >= 1, f"{dag_id}.{task.task_id} has retries={retries}"
            else:
                assert retries == 0, f"{dag_id}.{task.task_id} submits without waiting but retries={retries}"
            seen += 1
    assert seen >= 6, "the examples' edits and sensor were not found"
