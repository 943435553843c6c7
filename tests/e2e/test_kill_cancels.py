"""Killing a task with ``cancel_on_kill`` cancels its prediction, in a real Airflow (issue 22).

A scheduler, dag-processor, triggerer and api-server (SQLite, LocalExecutor) run the DAGs of
``tests/e2e/dags``; the emulator's predictions take minutes. Each task is marked failed through the REST
API once it waits: the worker's supervisor then terminates the task (``on_kill``), and on Airflow ≥ 3.3
the triggerer calls the deferred task's trigger's ``on_kill``. The emulator must answer ``cancelled``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.cluster import AirflowCluster, EmulatorProcess
from tests.e2e.processes import Budget, wait_for

pytestmark = pytest.mark.e2e

DAGS = Path(__file__).parent / "dags"
WORKER_DAG, DEFERRED_DAG = "wavespeed_kill_worker", "wavespeed_kill_deferred"
MODULE_BUDGET_SECONDS = 300.0


def _trigger_on_kill_exists() -> bool:
    from airflow.triggers.base import BaseTrigger

    return "on_kill" in vars(BaseTrigger)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AirflowCluster, EmulatorProcess, Budget]]:
    budget = Budget(MODULE_BUDGET_SECONDS)
    root = tmp_path_factory.mktemp("kill-cancels")
    (root / "process-logs").mkdir()
    api_key = f"ws-e2e-{secrets.token_hex(12)}"
    emulator = EmulatorProcess(api_key, root / "process-logs", budget, processing_seconds=600.0)
    cluster: AirflowCluster | None = None
    try:
        connection = {"conn_type": "wavespeed", "password": api_key, "host": emulator.base_url}
        cluster = AirflowCluster(root, connection, budget, extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(DAGS)})
        cluster.migrate()
        cluster.start_all()
        cluster.wait_healthy()
        cluster.wait_dags({WORKER_DAG, DEFERRED_DAG})
        yield cluster, emulator, budget
    finally:
        if cluster is not None:
            cluster.stop_all()
        emulator.close()


def _predictions(emulator: EmulatorProcess) -> dict[str, dict[str, Any]]:
    summaries = emulator._session.get(f"{emulator.base_url}/_emulator/predictions", timeout=10).json()
    return {p["prompt"]: p for p in summaries}


def _kill_and_expect_cancelled(
    stack: tuple[AirflowCluster, EmulatorProcess, Budget], dag_id: str, waiting_state: str, prompt: str
) -> None:
    cluster, emulator, budget = stack
    run_id = cluster.api.trigger(dag_id)
    path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/generate"

    def waiting() -> bool:
        # Deferred: the triggerer runs the trigger once it polled (a deferring task never polls on the
        # worker); killed before that, Airflow drops the trigger without running it, and no on_kill.
        if cluster.api.get(path)["state"] != waiting_state or prompt not in _predictions(emulator):
            return False
        prediction_id = _predictions(emulator)[prompt]["id"]
        return waiting_state != "deferred" or any(
            r["method"] == "GET" and r["prediction_id"] == prediction_id for r in emulator.request_log()
        )

    wait_for(waiting, timeout=120, what=f"{dag_id} to wait ({waiting_state})", budget=budget, processes=cluster.live())
    cluster.api.patch(path, {"new_state": "failed"})

    def cancelled() -> bool:
        return _predictions(emulator)[prompt]["status"] == "cancelled"

    wait_for(cancelled, timeout=90, what=f"the prediction of {dag_id} to be cancelled", budget=budget, processes=cluster.live())
    assert cluster.api.get(path)["state"] == "failed"
    deletes = [r for r in emulator.request_log() if r["method"] == "DELETE" and r["status"] == 200]
    assert [r["prediction_id"] for r in deletes].count(_predictions(emulator)[prompt]["id"]) >= 1


def test_killing_a_running_task_cancels_its_prediction(stack: tuple[AirflowCluster, EmulatorProcess, Budget]) -> None:
    _kill_and_expect_cancelled(stack, WORKER_DAG, "running", "killed while running")


@pytest.mark.skipif(not _trigger_on_kill_exists(), reason="BaseTrigger.on_kill arrived in Airflow 3.3")
def test_killing_a_deferred_task_cancels_its_prediction(stack: tuple[AirflowCluster, EmulatorProcess, Budget]) -> None:
    _kill_and_expect_cancelled(stack, DEFERRED_DAG, "deferred", "killed while deferred")
