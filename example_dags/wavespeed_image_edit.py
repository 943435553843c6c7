"""
One GPT Image 2 Edit, waiting in the triggerer (no worker slot held), outputs saved to disk.

Runs offline against the bundled emulator (`make demo`) or against WaveSpeed when the
`wavespeed_default` connection holds a real API key. Override the inputs when triggering:
``{"images": ["https://…/photo.jpg"], "prompt": "…", "output_dir": "/data/edits"}``.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator

SAMPLE_IMAGE = str(Path(__file__).parent / "data" / "sample_input.png")
OUTPUT_DIR = os.environ.get("WAVESPEED_OUTPUT_DIR", "/tmp/wavespeed-output")

with DAG(
    dag_id="wavespeed_image_edit",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "images": Param([SAMPLE_IMAGE], type="array", description="URLs, s3:// URIs or local paths"),
        "prompt": Param("Turn the scene into a watercolor painting at golden hour", type="string"),
        "aspect_ratio": Param("3:2", enum=["1:1", "2:3", "3:2"]),
        "output_dir": Param(OUTPUT_DIR, type="string"),
    },
    tags=["wavespeed", "example"],
    doc_md=__doc__,
):
    WaveSpeedImageEditOperator(
        task_id="edit_image",
        images="{{ params.images }}",
        prompt="{{ params.prompt }}",
        aspect_ratio="{{ params.aspect_ratio }}",
        output_uri="{{ params.output_dir }}",
        deferrable=True,
        poll_interval=float(os.environ.get("WAVESPEED_POLL_INTERVAL", "2")),
        timeout=900,
    )
