"""A text-to-video run for the UI test: the emulator answers an H.264 MP4 that the browser plays.

The outputs are not stored (WaveSpeed's URLs as they are), so the tab shows the emulator's URL in a
``video`` element and the page's CSP names the emulator's origin.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

with DAG(dag_id="wavespeed_ui_video", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    WaveSpeedRunModelOperator(
        task_id="make_video",
        model="wavespeed-ai/wan-2.2/t2v-480p",
        inputs={"prompt": "A red kite over a green hill", "duration": 5},
        deferrable=True,
        poll_interval=float(os.environ.get("WAVESPEED_POLL_INTERVAL", "2")),
    )
