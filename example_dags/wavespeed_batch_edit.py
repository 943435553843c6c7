"""
A batch of edits with dynamic task mapping: one mapped task instance per image/prompt pair.

The ``wavespeed`` pool caps how many edits run at once (create it with
``airflow pools set wavespeed 4 "WaveSpeed concurrency"``; match it to your account tier's
concurrent-task limit). Each mapped edit defers, so a large batch holds no worker slots while waiting.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator

SAMPLE_IMAGE = str(Path(__file__).parent / "data" / "sample_input.png")
OUTPUT_DIR = os.environ.get("WAVESPEED_OUTPUT_DIR", "/tmp/wavespeed-output")
EDITS = [
    {"images": [SAMPLE_IMAGE], "prompt": "Make it a snowy winter morning"},
    {"images": [SAMPLE_IMAGE], "prompt": "Render it as a neon-lit night scene"},
    {"images": [SAMPLE_IMAGE], "prompt": "Turn it into a pencil sketch"},
]

with DAG(
    dag_id="wavespeed_batch_edit",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wavespeed", "example"],
    doc_md=__doc__,
):
    WaveSpeedImageEditOperator.partial(
        task_id="edit",
        aspect_ratio="1:1",
        output_uri=OUTPUT_DIR,
        key_template="{run_id}/{map_index}_{prediction_id}.{ext}",
        deferrable=True,
        poll_interval=float(os.environ.get("WAVESPEED_POLL_INTERVAL", "2")),
        pool=os.environ.get("WAVESPEED_POOL", "wavespeed"),
    ).expand_kwargs(EDITS)
