"""Every example DAG parses, and runs end to end through Airflow's dag.test() against the emulator."""

from __future__ import annotations

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
    expected = {"wavespeed_image_edit", "wavespeed_submit_then_sense", "wavespeed_batch_edit"}
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
    else:
        # Airflow 3.1/3.2 have no task state store: every retry submits again (documented in the README),
        # and each new prediction outlasts its try's timeout, so every try submits once and the run fails.
        tries = 1 + dag.get_task("edit").retries
        assert dag_run.state == "failed"
        assert airflow_env.submit_count(include_rejected=True) == tries


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
