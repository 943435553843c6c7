"""The spend guard (issue 13): quotes and balance from the emulator, refusals before any billed request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.exceptions import WaveSpeedInputError, WaveSpeedSpendLimitError
from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
from airflow_wavespeed.operators.image_edit import GPT_IMAGE_2_EDIT, WaveSpeedImageEditOperator
from tests.conftest import load_dag_bag
from tests.task_context import make_context

ROOT = Path(__file__).resolve().parents[1]


def edit(image_url: str, **kwargs: Any) -> WaveSpeedImageEditOperator:
    return WaveSpeedImageEditOperator(task_id="edit", images=[image_url], prompt="make it blue", **{"deferrable": False, **kwargs})


def test_the_emulator_quotes_without_billing_and_bills_on_completion(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    hook = WaveSpeedHook()
    wavespeed_conn.config.model_prices = "wavespeed-ai/flux-dev=0.003,some/unpriced=none"
    assert hook.get_price(GPT_IMAGE_2_EDIT, {"prompt": "x"}) == 0.06
    assert hook.get_price("wavespeed-ai/flux-dev", {}) == 0.003
    assert hook.get_price("some/unpriced", {}) is None, "no price is unknown, never free"
    assert hook.get_balance() == 100.0, "quotes bill nothing"
    edit(emulator_image_url).execute(make_context())
    assert hook.get_balance() == pytest.approx(99.94)


def test_price_knobs_from_the_command_line_and_the_control_endpoint(emulator: Emulator) -> None:
    from airflow_wavespeed.emulator.__main__ import build_parser

    args = build_parser().parse_args(["--price-usd", "0.2", "--model-prices", "a/b=1.5,c/d=none"])
    assert (args.price_usd, args.model_prices) == (0.2, "a/b=1.5,c/d=none")
    for bad in ({"price_usd": -1}, {"model_prices": "a/b"}, {"model_prices": "a/b=cheap"}):
        assert requests.post(f"{emulator.base_url}/_emulator/config", json=bad, timeout=10).status_code == 400
    assert requests.post(f"{emulator.base_url}/_emulator/config", json={"price_usd": 0.5}, timeout=10).ok
    assert emulator.config.price_of(GPT_IMAGE_2_EDIT) == 0.5


def test_a_quote_above_max_cost_refuses_before_any_billed_request(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    wavespeed_conn.config.price_usd = 0.3
    with pytest.raises(WaveSpeedSpendLimitError) as raised:
        edit(emulator_image_url, max_cost_usd=0.25).execute(make_context())
    message = str(raised.value)
    assert GPT_IMAGE_2_EDIT in message and "0.3000 USD" in message and "max_cost_usd=0.25" in message
    assert isinstance(raised.value, AirflowFailException), "fails without using the task's retries"
    assert wavespeed_conn.submit_count(include_rejected=True) == 0


def test_an_unknown_price_refuses_too(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.model_prices = f"{GPT_IMAGE_2_EDIT}=none"
    with pytest.raises(WaveSpeedSpendLimitError, match="gave no price"):
        edit(emulator_image_url, max_cost_usd=1.0).execute(make_context())
    assert wavespeed_conn.submit_count(include_rejected=True) == 0


def test_a_balance_below_the_floor_refuses(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    wavespeed_conn.config.balance = 4.5
    with pytest.raises(WaveSpeedSpendLimitError, match=r"balance is 4.5000 USD, below min_balance_usd=5"):
        edit(emulator_image_url, min_balance_usd=5).execute(make_context())
    assert wavespeed_conn.submit_count(include_rejected=True) == 0


def test_the_quote_is_recorded_in_the_prediction_xcom_across_the_deferral(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    from tests.test_operators import run_trigger

    operator = edit(emulator_image_url, max_cost_usd=0.25, deferrable=True)
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    assert deferred.value.trigger.carry["metadata"]["cost_usd"] == 0.06, "handed to the trigger"
    resumed = edit(emulator_image_url, max_cost_usd=0.25, deferrable=True)  # a new worker process
    resumed.execute_complete(context, event=run_trigger(deferred.value.trigger))
    assert context["ti"].xcoms["prediction"]["cost_usd"] == 0.06 and context["ti"].xcoms["prediction"]["prompt"]
    plain = make_context()
    edit(emulator_image_url).execute(plain)
    assert "cost_usd" not in plain["ti"].xcoms["prediction"], "no quote, no figure"


@pytest.mark.parametrize("value", [-1, float("nan"), "cheap", True])
def test_spend_limits_must_be_amounts(value: Any) -> None:
    with pytest.raises(WaveSpeedInputError, match="max_cost_usd must be an amount of US dollars"):
        WaveSpeedImageEditOperator(task_id="e", images=["https://e.com/a.png"], prompt="p", max_cost_usd=value)


def test_a_batch_over_budget_submits_nothing(airflow_db: None, wavespeed_conn: Emulator) -> None:
    """The batch example: three edits quoted at 0.5 USD each against a 1.00 USD budget."""
    wavespeed_conn.config.price_usd = 0.5
    dag: Any = load_dag_bag(ROOT / "example_dags").get_dag("wavespeed_batch_edit")  # type: ignore[attr-defined]
    dag_run = dag.test()
    assert dag_run.state == "failed"
    states = {(ti.task_id, ti.map_index): ti.state for ti in dag_run.get_task_instances()}
    assert states[("check_budget", -1)] == "failed"
    assert all(state == "upstream_failed" for (task, _), state in states.items() if task == "edit")
    assert wavespeed_conn.submit_count(include_rejected=True) == 0
    assert wavespeed_conn.config.balance == 100.0
