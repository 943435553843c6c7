"""The contenders of ``bench/cluster.py``: the same batch of mapped tasks, each a wait of the same latency.

Environment: ``WAVESPEED_BENCH_TASKS`` (mapped tasks per run), ``WAVESPEED_BENCH_LATENCY`` (seconds),
``WAVESPEED_BENCH_IMAGE`` (an input URL on the emulator), ``WAVESPEED_BENCH_KEY`` and
``WAVESPEED_BENCH_URL`` (for the SDK contender, which reads no Airflow connection), and
``WAVESPEED_BENCH_DAGS`` (comma-separated DAG ids to build; all when unset: an older provider measured by
``bench/cluster.py --provider-at`` cannot build the DAGs that use newer arguments).
"""

from __future__ import annotations

import json
import os
from datetime import datetime

from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor
from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import DAG

from airflow_wavespeed.operators.image_edit import GPT_IMAGE_2_EDIT, WaveSpeedImageEditOperator

TASKS = int(os.environ.get("WAVESPEED_BENCH_TASKS", "100"))
LATENCY = float(os.environ.get("WAVESPEED_BENCH_LATENCY", "10"))
IMAGE = os.environ.get("WAVESPEED_BENCH_IMAGE", "https://example.com/in.png")
PROMPTS = [f"bench edit {n}" for n in range(TASKS)]
#: Each sensor waits LATENCY seconds from its own start, as an edit waits for the model.
TARGET = "{{ macros.datetime.utcnow() + macros.timedelta(seconds=" + f"{LATENCY:g}" + ") }}"


ONLY = {dag_id for dag_id in os.environ.get("WAVESPEED_BENCH_DAGS", "").split(",") if dag_id}


def wanted(dag_id: str) -> bool:
    return not ONLY or dag_id in ONLY


def bench_dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False, max_active_tasks=512)


if wanted("bench_floor"):
    with bench_dag("bench_floor"):
        DateTimeSensorAsync.partial(task_id="wait").expand(target_time=[TARGET] * TASKS)

if wanted("bench_floor_end_from_trigger"):
    with bench_dag("bench_floor_end_from_trigger"):
        DateTimeSensorAsync.partial(task_id="wait", end_from_trigger=True).expand(target_time=[TARGET] * TASKS)

if wanted("bench_ours"):
    with bench_dag("bench_ours"):
        WaveSpeedImageEditOperator.partial(task_id="wait", images=[IMAGE], deferrable=True, poll_interval=2).expand(
            prompt=PROMPTS
        )

if wanted("bench_ours_end_from_trigger"):
    with bench_dag("bench_ours_end_from_trigger"):
        WaveSpeedImageEditOperator.partial(
            task_id="wait", images=[IMAGE], deferrable=True, poll_interval=2, end_from_trigger=True
        ).expand(prompt=PROMPTS)


if wanted("bench_ours_on_worker"):
    with bench_dag("bench_ours_on_worker"):
        WaveSpeedImageEditOperator.partial(task_id="wait", images=[IMAGE], deferrable=False, poll_interval=2).expand(
            prompt=PROMPTS
        )


def _sdk_edit(prompt: str) -> list[str]:
    from wavespeed import Client

    client = Client(api_key=os.environ["WAVESPEED_BENCH_KEY"], base_url=os.environ["WAVESPEED_BENCH_URL"])
    result = client.run(GPT_IMAGE_2_EDIT, {"images": [IMAGE], "prompt": prompt}, poll_interval=2)
    return list(result["outputs"])


if wanted("bench_sdk_python"):
    with bench_dag("bench_sdk_python"):
        PythonOperator.partial(task_id="wait", python_callable=_sdk_edit).expand(op_args=[[p] for p in PROMPTS])

if wanted("bench_stock_http"):
    with bench_dag("bench_stock_http"):
        submitted = HttpOperator.partial(
            task_id="submit",
            http_conn_id="bench_http",
            endpoint=f"/api/v3/{GPT_IMAGE_2_EDIT}",
            method="POST",
            headers={"Content-Type": "application/json"},
            response_filter=lambda response: response.json()["data"]["id"],
        ).expand(data=[json.dumps({"images": [IMAGE], "prompt": p}) for p in PROMPTS])
        HttpSensor.partial(task_id="wait", http_conn_id="bench_http", deferrable=True, poke_interval=2).expand(
            endpoint=submitted.output.map(lambda prediction_id: f"/_bench/predictions/{prediction_id}/ready")
        )
