"""Test DAG: one model of every kind, its media inputs from a local file and S3, its outputs stored."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

SAMPLE = str(Path(__file__).resolve().parents[2] / "example_dags" / "data" / "sample_input.png")
OUT = os.environ.get("WAVESPEED_MEDIA_OUT", "/tmp/wavespeed-media-kinds")
S3 = os.environ.get("WAVESPEED_MEDIA_S3", "s3://media-bucket")
WAIT = {"deferrable": True, "poll_interval": 0.2}

with DAG("wavespeed_media_kinds", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    WaveSpeedRunModelOperator(
        task_id="text_to_video",
        model="wavespeed-ai/wan-2.2/t2v-480p",
        inputs={"prompt": "a lighthouse at dusk", "duration": 5},
        output_uri=OUT,
        **WAIT,
    )
    WaveSpeedRunModelOperator(  # the image is a local file: uploaded, because the schema marks the input
        task_id="image_to_video",
        model="wavespeed-ai/wan-2.2/i2v-480p",
        inputs={"image": SAMPLE, "prompt": "slow zoom"},
        output_uri=f"{S3}/clips",
        **WAIT,
    )
    WaveSpeedRunModelOperator(
        task_id="speech",
        model="minimax/speech-02-hd",
        inputs={"text": "Fresh from the studio.", "voice_id": "Calm_Woman"},
        output_uri=OUT,
        **WAIT,
    )
    WaveSpeedRunModelOperator(  # the image is an S3 object: presigned
        task_id="image_to_3d",
        model="wavespeed-ai/hunyuan3d-v3/image-to-3d",
        inputs={"image": f"{S3}/inputs/photo.png"},
        output_uri=OUT,
        **WAIT,
    )
    WaveSpeedRunModelOperator(  # a text model's output is the text, passed on as it is
        task_id="llm",
        model="wavespeed-ai/any-llm",
        inputs={"prompt": "Write a caption for a lighthouse clip."},
        **WAIT,
    )
