"""``@task.wavespeed``: registered as the provider's task decorator, it runs, defers and stores as
WaveSpeedRunModelOperator does, on the inputs its function returns (called once per submit)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.exceptions import WaveSpeedInputError
from tests.conftest import load_dag_bag
from tests.task_context import DictStateStore, make_context

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_catalog() -> None:
    from airflow_wavespeed.catalog.lookup import forget_catalogs

    forget_catalogs()


def test_the_provider_registers_task_wavespeed() -> None:
    from airflow.sdk import task

    from airflow_wavespeed import get_provider_info
    from airflow_wavespeed.decorators.wavespeed import wavespeed_task

    assert get_provider_info()["task-decorators"] == [
        {"name": "wavespeed", "class-name": "airflow_wavespeed.decorators.wavespeed.wavespeed_task"}
    ]
    assert task.wavespeed is wavespeed_task  # resolved by Airflow's providers manager from the provider info


def test_dag_test_calls_the_function_once_defers_and_hands_on_the_outputs(
    airflow_db: None, wavespeed_conn: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_example_dags import xcom

    calls = tmp_path / "calls"
    monkeypatch.setenv("WAVESPEED_TASKFLOW_CALLS", str(calls))
    wavespeed_conn.config.processing_polls = 3  # the task defers, then resumes in execute_complete
    dag: Any = load_dag_bag(ROOT / "tests" / "dags").get_dag("wavespeed_taskflow")  # type: ignore[attr-defined]
    run = dag.test()

    assert run.state == "success"
    assert calls.read_text() == "1\n", "called once, on submit; not again when resumed after deferral"
    (prediction,) = wavespeed_conn.predictions.values()
    assert prediction.model == "wavespeed-ai/flux-dev" and prediction.prompt == "a red bicycle against a yellow wall"
    assert prediction.params["size"] == "512*512"  # op_args are templated
    (url,) = xcom(run, "make_image")
    assert url.startswith(wavespeed_conn.base_url) and xcom(run, "count") == 1
    assert xcom(run, "make_image", "prediction_id") == prediction.id
    assert xcom(run, "make_image", "prediction")["status"] == "completed"


def make_task(function: Any, **kwargs: Any) -> Any:
    from airflow.sdk import DAG, task

    with DAG(dag_id="taskflow_unit", schedule=None, start_date=datetime(2026, 1, 1)):
        return task.wavespeed(model="wavespeed-ai/flux-dev", task_id="run", poll_interval=0.05, **kwargs)(function)().operator


def test_a_return_that_is_not_a_dict_is_refused_before_any_request(wavespeed_conn: Emulator) -> None:
    def prompt_only() -> str:
        return "a red bicycle"

    with pytest.raises(WaveSpeedInputError, match=r"prompt_only\(\) must return the inputs of wavespeed-ai/flux-dev as a dict"):
        make_task(prompt_only).execute(make_context())
    assert wavespeed_conn.requests == [] and wavespeed_conn.submit_count(include_rejected=True) == 0


def test_a_typo_in_the_returned_inputs_is_refused_with_zero_submits(wavespeed_conn: Emulator) -> None:
    with pytest.raises(WaveSpeedInputError, match="promt"):
        make_task(lambda: {"promt": "a red bicycle"}).execute(make_context())
    assert wavespeed_conn.submit_count(include_rejected=True) == 0


def test_inputs_are_the_functions_to_return() -> None:
    with pytest.raises(WaveSpeedInputError, match="takes no inputs="):
        make_task(lambda: {"prompt": "x"}, inputs={"prompt": "y"})


def test_a_retry_resumes_the_submitted_prediction_without_calling_the_function_again(
    wavespeed_conn: Emulator,
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    calls: list[int] = []

    def inputs() -> dict[str, Any]:
        calls.append(1)
        return {"prompt": "a red bicycle"}

    wavespeed_conn.config.processing_polls = 3
    store = DictStateStore()
    with pytest.raises(TaskDeferred):
        make_task(inputs, deferrable=True).execute(make_context(store=store))
    (url,) = make_task(inputs, deferrable=False).execute(make_context(store=store, try_number=2))
    assert calls == [1] and wavespeed_conn.submit_count() == 1 and url.startswith(wavespeed_conn.base_url)


def test_importing_the_decorator_loads_no_heavy_clients() -> None:
    heavy = ("requests", "aiohttp", "boto3", "airflow.providers.amazon.aws.hooks.s3", "PIL", "airflow_wavespeed.hooks.wavespeed")
    code = (
        "import sys, airflow.sdk\n"
        "import airflow_wavespeed.decorators.wavespeed\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
