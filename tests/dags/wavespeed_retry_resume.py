"""Test DAG: an edit whose first try times out after submitting, so its retry must resume, not resubmit."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator

with DAG("wavespeed_retry_resume", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    WaveSpeedImageEditOperator(
        task_id="edit",
        images=[str(Path(__file__).resolve().parents[2] / "example_dags" / "data" / "sample_input.png")],
        prompt="resume me",
        deferrable=True,
        poll_interval=0.2,
        timeout=1.5,
        retries=3,  # each try waits 1.5 s: a slow machine may need more than one resume
        retry_delay=timedelta(seconds=0),
    )
