"""A video run's record for the UI test, while the emulator answers only images.

``WaveSpeedVideoFixtureOperator`` stands in for a video model's task: it stores a real MP4 (made by the
test with ffmpeg, named by ``WAVESPEED_UI_VIDEO``) under ``WAVESPEED_OUTPUT_DIR`` as ``output_uri`` would,
and records the XComs a ``WaveSpeedRunModelOperator`` records for a stored video output. The view under
test reads only those records, so it sees what it would see after a real video run.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseOperator


class WaveSpeedVideoFixtureOperator(BaseOperator):
    def execute(self, context: Any) -> list[str]:
        source = Path(os.environ["WAVESPEED_UI_VIDEO"])
        stored = Path(os.environ["WAVESPEED_OUTPUT_DIR"]) / "video" / "fixture-video_0.mp4"
        stored.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, stored)
        ti = context["ti"]
        ti.xcom_push(key="prediction_id", value="fixture-video")
        ti.xcom_push(
            key="prediction",
            value={
                "id": "fixture-video",
                "model": "wavespeed-ai/wan-2.2/t2v-480p",
                "status": "completed",
                "created_at": datetime.now(timezone.utc).isoformat(),
                "inference_ms": 4000,
                "has_nsfw_contents": [False],
                "error": "",
                "num_outputs": 1,
                "media": "video",
                "stored": [
                    {"uri": str(stored), "media": "video", "content_type": "video/mp4", "bytes": stored.stat().st_size}
                ],
            },
        )
        return [str(stored)]


with DAG(dag_id="wavespeed_ui_video", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    WaveSpeedVideoFixtureOperator(task_id="make_video")
