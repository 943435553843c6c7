"""DAGs for the production-shape cluster (``make e2e-cluster``).

``wavespeed_cluster_edits``: a mapped batch of edits, one per prompt the run's conf lists, deferrable,
through the ``wavespeed`` pool (the load and triggerer-failover scenarios).
``wavespeed_cluster_worker_loss``: the same, waiting on the worker (``deferrable=False``) in the ``doomed``
queue that only worker-1 serves at first, so killing worker-1 kills those tasks mid-flight.
``wavespeed_cluster_end_from_trigger``: edits that end in the triggerer, and a task reading their outputs.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from airflow.sdk import DAG, task

from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator

FAST_RETRIES = {"retry_min_wait": 0.2, "retry_max_wait": 1.0, "max_attempts": 8}


@task
def prompts(**context: object) -> list[str]:
    """The run's prompts, unique per edit, so the emulator's log can be matched edit by edit."""
    params = context["params"]
    return list(params["prompts"])  # type: ignore[index]


for dag_id, extra in (
    ("wavespeed_cluster_edits", {"deferrable": True, "pool": "wavespeed"}),
    ("wavespeed_cluster_worker_loss", {"deferrable": False, "queue": "doomed"}),
):
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_tasks=256,
        render_template_as_native_obj=True,
        params={"prompts": [], "image_url": ""},
    ):
        WaveSpeedImageEditOperator.partial(
            task_id="edit",
            images=["{{ params.image_url }}"],
            poll_interval=2,
            timeout=600,
            retries=2,
            retry_delay=timedelta(seconds=3),
            hook_params=FAST_RETRIES,
            **extra,
        ).expand(prompt=prompts())


@task
def count_outputs(outputs: list[object]) -> int:
    """The README's one-line workaround: an XCom pushed from the triggerer arrives as JSON text."""
    return sum(len(json.loads(o) if isinstance(o, str) else o) for o in outputs)  # type: ignore[arg-type]


with DAG(
    "wavespeed_cluster_end_from_trigger",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={"prompts": [], "image_url": ""},
):
    ended = WaveSpeedImageEditOperator.partial(
        task_id="edit",
        images=["{{ params.image_url }}"],
        poll_interval=2,
        deferrable=True,
        end_from_trigger=True,
        hook_params=FAST_RETRIES,
    ).expand(prompt=prompts())
    count_outputs(ended.output)
