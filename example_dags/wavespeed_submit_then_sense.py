"""
Submit an edit without waiting, wait for it with the deferrable sensor, then use the output URLs.

The split suits pipelines where something else happens between submitting and collecting, or where
the wait should have its own timeout, retries or pool.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator
from airflow_wavespeed.sensors.prediction import WaveSpeedPredictionSensor

SAMPLE_IMAGE = str(Path(__file__).parent / "data" / "sample_input.png")
POLL_INTERVAL = float(os.environ.get("WAVESPEED_POLL_INTERVAL", "2"))

with DAG(
    dag_id="wavespeed_submit_then_sense",
    # Retries as the README recommends (Known Airflow issues): a wait that ends within a second or two of
    # deferring can fail the resumed task on some Airflow versions; on Airflow >= 3.3 the retry resumes the
    # same prediction instead of submitting again (Billing safety).
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wavespeed", "example"],
    doc_md=__doc__,
):
    submit = WaveSpeedImageEditOperator(
        task_id="submit_edit",
        images=[SAMPLE_IMAGE],
        prompt="Add a small red kite flying in the sky",
        aspect_ratio="1:1",
        wait_for_completion=False,
        # No retries for the submit (on Airflow 3.1/3.2 a retry would submit again); the sensor retries freely.
        retries=0,
    )
    wait = WaveSpeedPredictionSensor(
        task_id="wait_for_edit",
        prediction_id=submit.output,
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=900,
    )

    @task
    def describe_outputs(urls: list[str]) -> list[dict[str, object]]:
        """Use the URLs: here, check each is reachable and report its type and size."""
        import requests

        described = []
        for url in urls:
            response = requests.head(url, timeout=30, allow_redirects=True)
            response.raise_for_status()
            described.append(
                {
                    "url": url,
                    "content_type": response.headers.get("Content-Type"),
                    "bytes": int(response.headers.get("Content-Length", 0)),
                }
            )
        print(described)
        return described

    describe_outputs(wait.output)
