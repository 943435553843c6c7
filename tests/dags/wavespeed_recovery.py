"""Test DAGs for issue 22: lost submit answers found again, a killed task's prediction cancelled, one budget
over all tries (a batch's too). ``tests/test_recovery.py`` runs them through ``dag.test()`` against the emulator."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_wavespeed.operators.budget import WaveSpeedBudgetOperator
from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

MODEL = "wavespeed-ai/flux-dev"
#: How many mapped task instances the chaos run has.
LOST_ANSWER_TASKS = 8

with DAG("wavespeed_lost_answers", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    # No retries: every task succeeds because a lost answer is found again, not because a retry ran.
    WaveSpeedRunModelOperator.partial(
        task_id="generate", model=MODEL, deferrable=True, poll_interval=0.2, retries=0
    ).expand(inputs=[{"prompt": f"picture {n}", "seed": n} for n in range(LOST_ANSWER_TASKS)])

with DAG("wavespeed_kill_cancels", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    # Airflow kills the try at its execution_timeout (AirflowTaskTimeout, then on_kill) while it waits.
    WaveSpeedRunModelOperator(
        task_id="generate",
        model=MODEL,
        inputs={"prompt": "a slow picture"},
        deferrable=False,
        poll_interval=0.2,
        cancel_on_kill=True,
        execution_timeout=timedelta(seconds=4),
        retries=0,
    )

with DAG("wavespeed_budget_retries", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    # Quoted at 0.06 USD a try by the emulator; every prediction fails, so each retry submits again.
    WaveSpeedRunModelOperator(
        task_id="generate",
        model=MODEL,
        inputs={"prompt": "[fail] never works"},
        deferrable=False,
        poll_interval=0.2,
        max_cost_usd=0.15,
        retries=3,
        retry_delay=timedelta(seconds=0),
    )

with DAG("wavespeed_batch_budget_retries", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    # Three runs quoted at 0.06 USD (0.18) against 0.36: a share of 0.12 each, so a run that keeps failing
    # may submit twice, never four times; the batch with its retries spends at most the 0.36.
    check_budget = WaveSpeedBudgetOperator(
        task_id="check_budget",
        model=MODEL,
        inputs=[{"prompt": "works"}, {"prompt": "[fail] never works"}, {"prompt": "[fail] nor this"}],
        max_total_cost_usd=0.36,
    )
    WaveSpeedRunModelOperator.partial(
        task_id="generate", model=MODEL, deferrable=False, poll_interval=0.2, retries=3, retry_delay=timedelta(seconds=0)
    ).expand_kwargs(check_budget.output)
