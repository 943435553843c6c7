"""``@task.wavespeed`` through dag.test(): an upstream task's prompt goes into the function, which returns
the inputs; the run defers. Each call of the function appends the try number to ``WAVESPEED_TASKFLOW_CALLS``
so the test can tell it was called once per submit (not again when the task resumes after deferral)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

with DAG(dag_id="wavespeed_taskflow", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

    @task
    def prompt() -> str:
        return "a red bicycle against a yellow wall"

    @task.wavespeed(model="wavespeed-ai/flux-dev", deferrable=True, poll_interval=0.05, retries=1, retry_delay=timedelta(seconds=0.1))
    def make_image(prompt: str, size: str, ti: Any = None) -> dict[str, Any]:
        with open(os.environ["WAVESPEED_TASKFLOW_CALLS"], "a") as calls:
            calls.write(f"{ti.try_number}\n")
        return {"prompt": prompt, "size": size}

    @task
    def count(urls: list[str]) -> int:
        return len(urls)

    count(make_image(prompt(), "{{ '512*512' }}"))
