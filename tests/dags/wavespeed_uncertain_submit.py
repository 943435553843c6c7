"""Test DAG: an edit whose submit answer is lost; its retries must not submit again."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator

with DAG("wavespeed_uncertain_submit", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    WaveSpeedImageEditOperator(
        task_id="edit",
        images=["{{ params.image_url }}"],
        prompt="lost answer",
        deferrable=True,
        poll_interval=0.2,
        retries=2,
        retry_delay=timedelta(seconds=0),
        params={"image_url": "https://example.com/in.png"},
    )
