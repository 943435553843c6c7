"""E2E DAGs for issue 22: a generation waiting on a worker and one deferred to the triggerer, both with
``cancel_on_kill``; ``tests/e2e/test_kill_cancels.py`` marks them failed through the REST API."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

for dag_id, deferrable in (("wavespeed_kill_worker", False), ("wavespeed_kill_deferred", True)):
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
        WaveSpeedRunModelOperator(
            task_id="generate",
            model="wavespeed-ai/flux-dev",
            inputs={"prompt": f"killed while {'deferred' if deferrable else 'running'}"},
            deferrable=deferrable,
            poll_interval=1.0,
            cancel_on_kill=True,
            retries=0,
        )
