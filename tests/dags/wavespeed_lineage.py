"""Test DAG: an edit reading S3 and an https URL, storing to S3, for the lineage test."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator

with DAG("wavespeed_lineage", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    WaveSpeedImageEditOperator(
        task_id="edit",
        images=os.environ.get("WAVESPEED_LINEAGE_IMAGES", "https://example.com/a.png").split(","),
        prompt="trace me",
        output_uri=os.environ.get("WAVESPEED_LINEAGE_OUTPUT", "s3://lineage-bucket/out"),
        key_template="{prediction_id}_{n}.{ext}",
        deferrable=True,
        poll_interval=0.2,
    )
