"""
A content pipeline: product photo → GPT Image 2 edit → image-to-video → a voice-over → S3.

``wavespeed_content_pipeline`` edits the product photo (a path on the worker, an ``s3://`` URI or an
``https://`` URL) with GPT Image 2 Edit, animates the edited image with Wan 2.2 image-to-video (written
as a ``@task.wavespeed`` function returning the model's inputs), and reads a script with MiniMax Speech
02 HD. The clip and the voice-over are stored by their bytes under ``WAVESPEED_CONTENT_OUTPUT`` (default
``s3://$WAVESPEED_S3_BUCKET/content``) as ``video/mp4`` and ``audio/mpeg`` objects a browser plays
straight from the bucket. Every waiting task defers to the triggerer and retries without submitting twice.

Offline: ``wavespeed_default`` on the emulator and ``aws_default`` on moto, as in ``wavespeed_s3_pipeline``;
``make demo`` runs this DAG with ``WAVESPEED_CONTENT_OUTPUT`` set to a local folder.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator
from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

BUCKET = os.environ.get("WAVESPEED_S3_BUCKET", "wavespeed-demo")
OUTPUT = os.environ.get("WAVESPEED_CONTENT_OUTPUT", f"s3://{BUCKET}/content").rstrip("/")
AWS_CONN_ID = os.environ.get("WAVESPEED_AWS_CONN_ID", "aws_default")
POLL_INTERVAL = float(os.environ.get("WAVESPEED_POLL_INTERVAL", "2"))
SAMPLE_IMAGE = Path(__file__).parent / "data" / "sample_input.png"
VIDEO_MODEL = "wavespeed-ai/wan-2.2/i2v-480p"
VOICE_MODEL = "minimax/speech-02-hd"

#: What every waiting task shares: wait in the triggerer; a retry resumes the submitted prediction.
WAITING = {"deferrable": True, "poll_interval": POLL_INTERVAL, "retries": 2, "aws_conn_id": AWS_CONN_ID}

with DAG(
    dag_id="wavespeed_content_pipeline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "photo": Param(str(SAMPLE_IMAGE), type="string", description="the product photo: a path, s3:// or https://"),
        "edit_prompt": Param("Place the product on a marble counter in soft morning light", type="string"),
        "motion_prompt": Param("A slow camera push-in, light glinting off the product", type="string"),
        "duration": Param(5, type="integer", enum=[5, 8], description="seconds of video"),
        "script": Param("Meet the new classic. Made to last, made for mornings.", type="string"),
        "voice_id": Param("Calm_Woman", type="string"),
    },
    tags=["wavespeed", "example", "video", "audio", "s3"],
    doc_md=__doc__,
):
    edit = WaveSpeedImageEditOperator(
        task_id="edit_photo",
        images=["{{ params.photo }}"],
        prompt="{{ params.edit_prompt }}",
        aspect_ratio="3:2",
        timeout=900,
        **WAITING,
    )

    @task.wavespeed(model=VIDEO_MODEL, output_uri=f"{OUTPUT}/clips", timeout=1800, **WAITING)
    def animate(edited: list[str], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The image-to-video inputs: the edited image (the edit's first output URL) and how it moves."""
        assert params is not None
        return {"image": edited[0], "prompt": params["motion_prompt"], "duration": int(params["duration"])}

    clip = animate(edit.output)

    voice_over = WaveSpeedRunModelOperator(
        task_id="voice_over",
        model=VOICE_MODEL,
        inputs={"text": "{{ params.script }}", "voice_id": "{{ params.voice_id }}"},
        output_uri=f"{OUTPUT}/voice-overs",
        timeout=900,
        **WAITING,
    )
