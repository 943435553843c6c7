"""Test DAG: an edit allowed to end in the triggerer, and a downstream task reading its outputs."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator

with DAG("wavespeed_end_from_trigger", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    edit = WaveSpeedImageEditOperator(
        task_id="edit",
        images=[str(Path(__file__).resolve().parents[2] / "example_dags" / "data" / "sample_input.png")],
        prompt="end in the triggerer",
        deferrable=True,
        end_from_trigger=True,
        poll_interval=0.2,
    )

    @task
    def count(outputs: object) -> int:
        # The README's one-line workaround: XComs pushed from the triggerer arrive as JSON text.
        urls = json.loads(outputs) if isinstance(outputs, str) else outputs
        return len(urls)  # type: ignore[arg-type]

    count(edit.output)
