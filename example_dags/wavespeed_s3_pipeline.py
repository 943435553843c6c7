"""
S3 in, S3 out: edit every image listed in the DAG params, keep the results in S3, tell another DAG.

``wavespeed_s3_pipeline`` turns each ``s3://`` input into a presigned URL WaveSpeed can fetch (set
``WAVESPEED_S3_INPUT_MODE=upload`` for buckets WaveSpeed cannot reach), runs one GPT Image 2 Edit per
image while waiting in the triggerer, and streams each output into
``s3://$WAVESPEED_S3_BUCKET/$WAVESPEED_S3_OUTPUT_PREFIX/…`` with ``WaveSpeedToS3Operator`` before
WaveSpeed deletes it (outputs live 7 days). That task's asset outlet schedules
``wavespeed_s3_arrivals``, which lists the objects that arrived (each event's ``extra["uris"]``).

Offline: ``wavespeed_default`` pointing at the emulator, and ``make local-s3`` (``python
scripts/local_s3.py``): it starts a local S3 (moto) with the bucket and the sample input made, and prints
the ``aws_default`` connection to export before starting Airflow; then trigger with the defaults. Against
another S3 (moto, MinIO) without the input, trigger with ``{"seed_sample_input": true}`` to create the
bucket and upload the bundled sample image first.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator
from airflow_wavespeed.transfers.wavespeed_to_s3 import WaveSpeedToS3Operator

BUCKET = os.environ.get("WAVESPEED_S3_BUCKET", "wavespeed-demo")
INPUT_PREFIX = os.environ.get("WAVESPEED_S3_INPUT_PREFIX", "inputs")
OUTPUT_PREFIX = os.environ.get("WAVESPEED_S3_OUTPUT_PREFIX", "edits")
INPUT_MODE = os.environ.get("WAVESPEED_S3_INPUT_MODE", "presign")
AWS_CONN_ID = os.environ.get("WAVESPEED_AWS_CONN_ID", "aws_default")
SAMPLE_IMAGE = Path(__file__).parent / "data" / "sample_input.png"

#: Where edited images land; also what `wavespeed_s3_arrivals` is scheduled on.
EDITED_IMAGES = Asset(f"s3://{BUCKET}/{OUTPUT_PREFIX}")

log = logging.getLogger(__name__)

with DAG(
    dag_id="wavespeed_s3_pipeline",
    # Retries as the README recommends (Known Airflow issues): a wait that ends within a second or two of
    # deferring can fail the resumed task on some Airflow versions; on Airflow >= 3.3 the retry resumes the
    # same prediction instead of submitting again (Billing safety).
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "images": Param(
            [f"s3://{BUCKET}/{INPUT_PREFIX}/sample_input.png"],
            type="array",
            items={"type": "string", "pattern": "^s3://"},
            minItems=1,
            description="s3://bucket/key of each image to edit (one edit per image)",
        ),
        "prompt": Param("Turn the scene into a watercolor painting at golden hour", type="string"),
        "seed_sample_input": Param(
            False, type="boolean", description="upload the bundled sample to missing inputs first (demo)"
        ),
    },
    tags=["wavespeed", "example", "s3"],
    doc_md=__doc__,
):

    @task
    def list_inputs(**context: Any) -> list[list[str]]:
        """One ``images`` list per edit, so each input becomes its own mapped (and retried) task."""
        params = context["params"]
        images = list(params["images"])
        if params["seed_sample_input"]:
            _seed_sample(images)
        return [[image] for image in images]

    edit = WaveSpeedImageEditOperator.partial(
        task_id="edit",
        prompt="{{ params.prompt }}",
        aspect_ratio="3:2",
        input_mode=INPUT_MODE,
        aws_conn_id=AWS_CONN_ID,
        deferrable=True,
        poll_interval=float(os.environ.get("WAVESPEED_POLL_INTERVAL", "2")),
        timeout=900,
    ).expand(images=list_inputs())

    WaveSpeedToS3Operator.partial(
        task_id="store_in_s3",
        dest_s3_prefix=EDITED_IMAGES.uri,
        aws_conn_id=AWS_CONN_ID,
        # The destination is this task's Asset outlet (EDITED_IMAGES), declared by partial() itself.
    ).expand(outputs=edit.output)


with DAG(
    dag_id="wavespeed_s3_arrivals",
    schedule=[EDITED_IMAGES],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wavespeed", "example", "s3"],
    doc_md="Runs whenever `wavespeed_s3_pipeline` stored edited images; lists what arrived.",
):

    @task
    def list_arrivals(triggering_asset_events: Any = None) -> list[str]:
        """The ``s3://`` URIs stored by the runs that triggered this one (their events' extra)."""
        arrived: list[str] = []
        for asset, events in (triggering_asset_events or {}).items():
            for event in events:
                uris = list(event.extra.get("uris") or [])
                log.info(
                    "%s: %s from %s.%s (run %s, map index %s)",
                    asset.uri,
                    uris,
                    event.source_dag_id,
                    event.source_task_id,
                    event.source_run_id,
                    event.source_map_index,
                )
                arrived.extend(uris)
        if not arrived:
            log.info("No asset events: this run was not triggered by %s", EDITED_IMAGES.uri)
        return arrived

    list_arrivals()


def _seed_sample(images: list[str]) -> None:
    """Demo only: create missing buckets and upload the bundled sample image to missing keys."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=AWS_CONN_ID)
    for image in images:
        bucket, key = S3Hook.parse_s3_url(image)
        if not hook.check_for_bucket(bucket):
            hook.create_bucket(bucket_name=bucket)
        if not hook.check_for_key(key, bucket_name=bucket):
            hook.load_file(str(SAMPLE_IMAGE), key, bucket_name=bucket)
            log.info("Seeded %s with %s", image, SAMPLE_IMAGE.name)
