"""
One GPT Image 2 Edit, waiting in the triggerer (no worker slot held), outputs saved to disk.

Runs offline against the bundled emulator (`make demo`) or against WaveSpeed when the
`wavespeed_default` connection holds a real API key. Override the inputs when triggering:
``{"images": ["https://…/photo.jpg"], "prompt": "…", "output_name": "spring-campaign"}``.

Where outputs go is the DAG's own configuration (``WAVESPEED_OUTPUT_DIR``, default
``/tmp/wavespeed-output``): whoever triggers the DAG only names a folder under it, so the trigger form
cannot make a worker write anywhere else.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator

SAMPLE_IMAGE = str(Path(__file__).parent / "data" / "sample_input.png")
OUTPUT_DIR = os.environ.get("WAVESPEED_OUTPUT_DIR", "/tmp/wavespeed-output")

with DAG(
    dag_id="wavespeed_image_edit",
    # Retries as the README recommends (Known Airflow issues): a wait that ends within a second or two of
    # deferring can fail the resumed task on some Airflow versions; on Airflow >= 3.3 the retry resumes the
    # same prediction instead of submitting again (Billing safety).
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "images": Param(
            [SAMPLE_IMAGE],
            type="array",
            minItems=1,
            maxItems=16,
            description="1 to 16 reference images: https:// URLs, s3://bucket/key URIs or paths on the worker",
        ),
        "prompt": Param(
            "Turn the scene into a watercolor painting at golden hour",
            type="string",
            minLength=1,
            maxLength=32000,
            description="The edit to make, in plain words (up to 32,000 characters)",
        ),
        "aspect_ratio": Param(
            "3:2",
            enum=["1:1", "2:3", "3:2"],
            description="Shape of the edited image: square, portrait or landscape",
        ),
        "output_name": Param(
            "edits",
            type="string",
            pattern="^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
            description=f"A folder name for the edited images, created under {OUTPUT_DIR} on the worker",
        ),
    },
    tags=["wavespeed", "example"],
    doc_md=__doc__,
):
    WaveSpeedImageEditOperator(
        task_id="edit_image",
        images="{{ params.images }}",
        prompt="{{ params.prompt }}",
        aspect_ratio="{{ params.aspect_ratio }}",
        # The operator refuses '..' segments, so the name stays under OUTPUT_DIR even without the pattern.
        output_uri=OUTPUT_DIR + "/{{ params.output_name }}",
        deferrable=True,
        poll_interval=float(os.environ.get("WAVESPEED_POLL_INTERVAL", "2")),
        timeout=900,
    )
