"""
Edit, let a person approve the result in the Airflow UI, and only then publish it to S3.

``review`` is a WaveSpeedReviewOperator (Airflow's ApprovalOperator): its form shows every edited image
inline with the prompt, the quoted cost and the NSFW flags. Approve and ``publish`` copies the images to
the final prefix (``WAVESPEED_PUBLISH_PREFIX``) that a website reads; reject and ``publish`` is skipped,
so nothing is published. On Airflow 3.3 the review waits in the ``awaiting_input`` state holding no
worker slot; answer it from the task's "Required Action" tab or the REST API.

Offline: ``wavespeed_default`` pointing at the emulator, and for the publish a local S3 with the bucket
made: ``make local-s3`` (``python scripts/local_s3.py``) starts one and prints the ``aws_default``
connection to export before starting Airflow. Without it, ``publish`` fails with ``NoCredentialsError``
(no ``aws_default``) or ``NoSuchBucket`` (a bucket nobody made).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator
from airflow_wavespeed.operators.review import WaveSpeedReviewOperator
from airflow_wavespeed.transfers.wavespeed_to_s3 import WaveSpeedToS3Operator

SAMPLE_IMAGE = str(Path(__file__).parent / "data" / "sample_input.png")
PUBLISH_PREFIX = os.environ.get("WAVESPEED_PUBLISH_PREFIX", "s3://wavespeed-published/edits")

with DAG(
    dag_id="wavespeed_review_and_publish",
    # Retries as the README recommends (Known Airflow issues): a wait that ends within a second or two of
    # deferring can fail the resumed task on some Airflow versions; on Airflow >= 3.3 the retry resumes the
    # same prediction instead of submitting again (Billing safety).
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "images": Param([SAMPLE_IMAGE], type="array", description="Reference images: URLs, s3:// URIs or worker paths"),
        "prompt": Param("Put the product on a white studio background", type="string", description="The edit to make"),
    },
    tags=["wavespeed", "example"],
    doc_md=__doc__,
):
    edit = WaveSpeedImageEditOperator(
        task_id="edit",
        images="{{ params.images }}",
        prompt="{{ params.prompt }}",
        max_cost_usd=0.25,
        deferrable=True,
        poll_interval=float(os.environ.get("WAVESPEED_POLL_INTERVAL", "2")),
    )
    review = WaveSpeedReviewOperator(task_id="review", edit_task_id="edit", response_timeout=timedelta(days=2))
    publish = WaveSpeedToS3Operator(task_id="publish", outputs=edit.output, dest_s3_prefix=PUBLISH_PREFIX)
    edit >> review >> publish
