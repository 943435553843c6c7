"""
A batch of edits with dynamic task mapping: one mapped task instance per image/prompt pair.

Each mapped edit defers, so a large batch holds no worker slots while waiting, and each shows its
prompt as its label in the UI (``map_index_template``) instead of 0, 1, 2.

Spend: ``check_budget`` quotes the whole batch first (WaveSpeed's pricing endpoint bills nothing) and
fails, before any edit is submitted, when the total is above ``WAVESPEED_BATCH_BUDGET_USD`` (default
1.00) or a price is unknown. It then shares the budget out among the edits (its return value, which the
edits are mapped over): each edit holds its share as ``max_cost_usd`` over all its tries (Airflow >= 3.3),
so the batch with its retries never spends more than the budget.

Concurrency: to cap how many edits are submitted at once (your account tier's concurrent-task limit),
create a pool and name it in ``WAVESPEED_POOL``, e.g. ``airflow pools set wavespeed 4 "WaveSpeed"`` and
``WAVESPEED_POOL=wavespeed``. Without it the edits use Airflow's ``default_pool``, so the example runs
out of the box (a task naming a pool that does not exist would wait in "scheduled" forever).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG

from airflow_wavespeed.operators.budget import WaveSpeedBudgetOperator
from airflow_wavespeed.operators.image_edit import GPT_IMAGE_2_EDIT, PROMPT_LABEL, WaveSpeedImageEditOperator

SAMPLE_IMAGE = str(Path(__file__).parent / "data" / "sample_input.png")
OUTPUT_DIR = os.environ.get("WAVESPEED_OUTPUT_DIR", "/tmp/wavespeed-output")
EDITS = [
    {"images": [SAMPLE_IMAGE], "prompt": "Make it a snowy winter morning"},
    {"images": [SAMPLE_IMAGE], "prompt": "Render it as a neon-lit night scene"},
    {"images": [SAMPLE_IMAGE], "prompt": "Turn it into a pencil sketch"},
]

with DAG(
    dag_id="wavespeed_batch_edit",
    # Retries as the README recommends (Known Airflow issues): a wait that ends within a second or two of
    # deferring can fail the resumed task on some Airflow versions; on Airflow >= 3.3 the retry resumes the
    # same prediction instead of submitting again (Billing safety).
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wavespeed", "example"],
    doc_md=__doc__,
):
    check_budget = WaveSpeedBudgetOperator(
        task_id="check_budget",
        model=GPT_IMAGE_2_EDIT,
        inputs=[{"prompt": edit["prompt"], "aspect_ratio": "1:1"} for edit in EDITS],
        task_kwargs=EDITS,  # what each mapped edit is given, with its share of the budget as max_cost_usd
        max_total_cost_usd=float(os.environ.get("WAVESPEED_BATCH_BUDGET_USD", "1.00")),
    )
    WaveSpeedImageEditOperator.partial(
        task_id="edit",
        aspect_ratio="1:1",
        map_index_template=PROMPT_LABEL,  # each mapped edit shows its prompt in the UI
        output_uri=OUTPUT_DIR,
        key_template="{run_id}/{map_index}_{prediction_id}.{ext}",
        deferrable=True,
        poll_interval=float(os.environ.get("WAVESPEED_POLL_INTERVAL", "2")),
        pool=os.environ.get("WAVESPEED_POOL", "default_pool"),
    ).expand_kwargs(check_budget.output)
