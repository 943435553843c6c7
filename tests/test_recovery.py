"""Issue 22: lost submit answers found again, cancel on kill and on timeout, one budget over all tries,
what was really billed. Against the emulator over real HTTP, and through Airflow's ``dag.test()``."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.exceptions import (
    WaveSpeedSpendLimitError,
    WaveSpeedSubmitUncertainError,
    WaveSpeedTimeoutError,
)
from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator
from airflow_wavespeed.recovery import submit_or_recover
from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger
from airflow_wavespeed.utils.ledger import STATE_STORE_KEY
from airflow_wavespeed.utils.spend import SPEND_KEY
from tests.conftest import load_dag_bag
from tests.emulator_fixtures import EMULATOR_API_KEY
from tests.task_context import DictStateStore, make_context

MODEL = "wavespeed-ai/flux-dev"
AUTH = {"Authorization": f"Bearer {EMULATOR_API_KEY}"}
DAGS = Path(__file__).parent / "dags"


@pytest.fixture(autouse=True)
def priced_like_an_edit(emulator: Emulator) -> None:
    """The figures below assume 0.06 USD a run; the emulator's catalog lists flux-dev at 0.003."""
    emulator.config.model_prices = f"{MODEL}=0.06"


def run_model(**kwargs: Any) -> WaveSpeedRunModelOperator:
    return WaveSpeedRunModelOperator(
        **{"task_id": "generate", "model": MODEL, "deferrable": False, "poll_interval": 0.05, **kwargs}
    )


def post(emulator: Emulator, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{emulator.base_url}{path}", json=body, headers=AUTH, timeout=10)


def dropped_submits(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "POST" and r.path.endswith(MODEL) and r.status == "dropped")


# -- the emulator's routes -------------------------------------------------------------------------------


def test_the_history_pages_newest_first_with_its_inputs(emulator: Emulator) -> None:
    ids = [post(emulator, f"/api/v3/{MODEL}", {"prompt": f"p{n}"}).json()["data"]["id"] for n in range(3)]
    assert post(emulator, "/api/v3/predictions", {"page": 1}).status_code == 400, "page_size is required"
    assert post(emulator, "/api/v3/predictions", {"page": 1, "page_size": 101}).status_code == 400
    first = post(emulator, "/api/v3/predictions", {"page": 1, "page_size": 2}).json()["data"]
    second = post(emulator, "/api/v3/predictions", {"page": 2, "page_size": 2}).json()["data"]
    assert [i["id"] for i in first["items"] + second["items"]] == ids[::-1] and first["total"] == 3
    assert first["items"][0]["input"]["prompt"] == "p2"
    other = post(emulator, "/api/v3/predictions", {"page": 1, "page_size": 10, "model": "other/model"})
    assert other.json()["data"]["items"] == []
    emulator.config.history_includes_input = False
    assert "input" not in post(emulator, "/api/v3/predictions", {"page": 1, "page_size": 1}).json()["data"]["items"][0]


def test_a_cancelled_prediction_answers_cancelled_and_bills_nothing(emulator: Emulator) -> None:
    emulator.config.processing_seconds = 30
    prediction_id = post(emulator, f"/api/v3/{MODEL}", {"prompt": "p"}).json()["data"]["id"]
    answer = requests.delete(f"{emulator.base_url}/api/v3/predictions/{prediction_id}", headers=AUTH, timeout=10)
    assert answer.json()["data"]["status"] == "cancelled"
    result = requests.get(f"{emulator.base_url}/api/v3/predictions/{prediction_id}/result", headers=AUTH, timeout=10)
    assert result.json()["data"]["status"] == "cancelled"
    assert post(emulator, "/api/v3/predictions/delete", {"ids": [prediction_id]}).json()["data"]["ids"] == [prediction_id]
    records = post(emulator, "/api/v3/billings/search", {"prediction_uuids": [prediction_id]}).json()["data"]
    assert records["items"] == [] and emulator.config.balance == 100.0
    missing = requests.delete(f"{emulator.base_url}/api/v3/predictions/nope", headers=AUTH, timeout=10)
    assert missing.status_code == 404


# -- the hook --------------------------------------------------------------------------------------------


def test_the_hook_reads_what_was_billed_and_says_when_it_cannot(wavespeed_conn: Emulator) -> None:
    wavespeed_conn.config.billed_ratio = 0.5  # a discount: the bill is not the quote
    hook = WaveSpeedHook()
    prediction = hook.wait_for_prediction(hook.submit(MODEL, {"prompt": "p"}).id, poll_interval=0.05, timeout=30)
    assert hook.get_billed_cost(prediction.id) == 0.03
    wavespeed_conn.config.billing_records = False
    assert hook.get_billed_cost(prediction.id) is None, "unknown, never the quote"
    assert hook.cancel_prediction(prediction.id) == "completed", "a finished prediction stays as it is"


def test_concurrent_lost_answers_each_find_their_own_prediction(wavespeed_conn: Emulator) -> None:
    """Twelve submits at once, half their answers dropped after the prediction was created: each finds its
    own in the history by its inputs, and no one submits twice."""
    wavespeed_conn.config.submit_drop_rate = 0.5
    wavespeed_conn.config.seed = 22
    wavespeed_conn.state.reseed()

    def one(n: int) -> str:
        return submit_or_recover(WaveSpeedHook(), MODEL, {"prompt": f"p{n}"}, sync=False, base64=False).id

    with ThreadPoolExecutor(12) as pool:
        found = list(pool.map(one, range(12)))
    assert dropped_submits(wavespeed_conn) >= 3, "the fault happened"
    assert len(set(found)) == 12 and set(found) == set(wavespeed_conn.predictions)
    assert wavespeed_conn.submit_count(include_rejected=True) == 12
    prompts = {p.id: p.prompt for p in wavespeed_conn.predictions.values()}
    assert [prompts[i] for i in found] == [f"p{n}" for n in range(12)]


# -- the operator ----------------------------------------------------------------------------------------


def test_a_lost_answer_is_found_recorded_and_waited_for(wavespeed_conn: Emulator) -> None:
    wavespeed_conn.config.submit_drop_rate = 1.0
    store = DictStateStore()
    context = make_context(store=store)
    outputs = run_model(inputs={"prompt": "p"}, max_cost_usd=1).execute(context)
    (prediction_id,) = wavespeed_conn.predictions
    assert outputs and prediction_id in outputs[0]
    assert context["ti"].xcoms["prediction_id"] == prediction_id
    assert wavespeed_conn.submit_count(include_rejected=True) == 1
    assert store.values[SPEND_KEY] == {"predictions": [{"id": prediction_id, "usd": 0.06}]}


def test_several_candidates_fail_naming_them(wavespeed_conn: Emulator) -> None:
    """Items without inputs can be told apart by model and time only: two in the window are two candidates."""
    wavespeed_conn.config.history_includes_input = False
    other = WaveSpeedHook().submit(MODEL, {"prompt": "another task's"}).id
    wavespeed_conn.config.submit_drop_rate = 1.0
    with pytest.raises(WaveSpeedSubmitUncertainError) as raised:
        run_model(inputs={"prompt": "p"}).execute(make_context())
    mine = next(i for i in wavespeed_conn.predictions if i != other)
    message = str(raised.value)
    assert "2 predictions of" in message and other in message and mine in message and "none was taken" in message
    assert wavespeed_conn.submit_count(include_rejected=True) == 2


def test_no_candidate_fails_as_before(wavespeed_conn: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    wavespeed_conn.config.submit_drop_rate = 1.0
    monkeypatch.setattr(WaveSpeedHook, "find_predictions", lambda self, **kwargs: [])
    with pytest.raises(WaveSpeedSubmitUncertainError, match="No prediction of wavespeed-ai/flux-dev created"):
        run_model(inputs={"prompt": "p"}).execute(make_context())
    assert wavespeed_conn.submit_count(include_rejected=True) == 1


def test_a_retry_over_the_budget_of_all_tries_is_refused(wavespeed_conn: Emulator) -> None:
    store = DictStateStore()
    for try_number in (1, 2):
        with pytest.raises(Exception, match="Emulated failure"):
            run_model(inputs={"prompt": "[fail] x"}, max_cost_usd=0.15).execute(make_context(store=store, try_number=try_number))
    spent = [entry["id"] for entry in store.values[SPEND_KEY]["predictions"]]
    with pytest.raises(WaveSpeedSpendLimitError) as raised:
        run_model(inputs={"prompt": "[fail] x"}, max_cost_usd=0.15).execute(make_context(store=store, try_number=3))
    message = str(raised.value)
    assert "0.1200 USD on 2 prediction(s)" in message and all(i in message for i in spent) and "0.1800 USD" in message
    assert wavespeed_conn.submit_count(include_rejected=True) == 2


def test_cancel_on_timeout_cancels_unless_a_retry_resumes(wavespeed_conn: Emulator) -> None:
    wavespeed_conn.config.processing_seconds = 60
    with pytest.raises(WaveSpeedTimeoutError):
        run_model(inputs={"prompt": "a"}, timeout=0.5, cancel_on_timeout=True).execute(make_context())
    (first,) = wavespeed_conn.predictions.values()
    assert first.status == "cancelled"
    store = DictStateStore()
    with pytest.raises(WaveSpeedTimeoutError):
        run_model(inputs={"prompt": "b"}, timeout=0.5, cancel_on_timeout=True, retries=1).execute(make_context(store=store))
    kept = wavespeed_conn.state.get_prediction(store.values[STATE_STORE_KEY]["id"])
    assert kept is not None and kept.status == "processing", "the next try resumes it: not cancelled"


def test_on_kill_cancels_only_when_asked(wavespeed_conn: Emulator) -> None:
    wavespeed_conn.config.processing_seconds = 60
    for cancel in (False, True):
        operator = run_model(inputs={"prompt": f"kill {cancel}"}, cancel_on_kill=cancel)
        operator._submit_or_resume(make_context())
        operator.on_kill()
        assert wavespeed_conn.state.get_prediction(operator._waiting_on or "").status == (  # type: ignore[union-attr]
            "cancelled" if cancel else "created"
        )
    run_model(inputs={"prompt": "never submitted"}, cancel_on_kill=True).on_kill()  # nothing to cancel: no call
    assert not [r for r in wavespeed_conn.requests if r.method == "DELETE" and r.prediction_id is None]


async def test_the_trigger_cancels_on_kill(wavespeed_conn: Emulator) -> None:
    """What the triggerer of Airflow ≥ 3.3 calls when a user kills the deferred task."""
    wavespeed_conn.config.processing_seconds = 60
    prediction_id = WaveSpeedHook().submit(MODEL, {"prompt": "p"}).id
    trigger = WaveSpeedPredictionTrigger(prediction_id, poll_interval=0.05, end_time=time.time() + 60, cancel_on_kill=True)
    assert trigger.serialize()[1]["cancel_on_kill"] is True

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    waiting = asyncio.ensure_future(first())
    deadline = time.monotonic() + 30
    while not any(r.method == "GET" and r.prediction_id == prediction_id for r in wavespeed_conn.requests):
        assert time.monotonic() < deadline, "the trigger never polled"
        await asyncio.sleep(0.05)
    await trigger.on_kill()
    assert wavespeed_conn.state.get_prediction(prediction_id).status == "cancelled"  # type: ignore[union-attr]
    event = await asyncio.wait_for(waiting, 30)
    assert event["status"] == "failed" and event["prediction"]["status"] == "cancelled"
    quiet = WaveSpeedPredictionTrigger("p" * 32, cancel_on_kill=False)
    await quiet.on_kill()  # nothing sent
    assert not [r for r in wavespeed_conn.requests if r.method == "DELETE" and r.prediction_id == "p" * 32]


# -- through Airflow --------------------------------------------------------------------------------------


def _has_task_state_store() -> bool:
    try:
        from airflow.sdk import ResumableJobMixin  # noqa: F401  (arrived with the store in 3.3)
    except ImportError:
        return False
    return True


def test_a_chaos_run_of_lost_answers_succeeds_with_one_prediction_per_task(airflow_db: None, wavespeed_conn: Emulator) -> None:
    from tests.dags.wavespeed_recovery import LOST_ANSWER_TASKS

    wavespeed_conn.config.submit_drop_rate = 0.5
    wavespeed_conn.config.seed = 3
    wavespeed_conn.state.reseed()
    dag: Any = load_dag_bag(DAGS).get_dag("wavespeed_lost_answers")  # type: ignore[attr-defined]
    dag_run = dag.test()
    tis = dag_run.get_task_instances()
    assert dag_run.state == "success" and len(tis) == LOST_ANSWER_TASKS
    assert all(ti.state == "success" and ti.try_number == 1 for ti in tis)
    assert dropped_submits(wavespeed_conn) >= 2, "answers were lost"
    assert wavespeed_conn.submit_count(include_rejected=True) == LOST_ANSWER_TASKS
    assert sorted(p.prompt for p in wavespeed_conn.predictions.values()) == sorted(f"picture {n}" for n in range(LOST_ANSWER_TASKS))
    assert all(p.status == "completed" for p in wavespeed_conn.predictions.values())


def test_airflow_killing_a_task_cancels_its_prediction(airflow_db: None, wavespeed_conn: Emulator) -> None:
    """Airflow's own kill (execution_timeout: AirflowTaskTimeout, then on_kill) while the task waits."""
    wavespeed_conn.config.processing_seconds = 120
    dag: Any = load_dag_bag(DAGS).get_dag("wavespeed_kill_cancels")  # type: ignore[attr-defined]
    dag_run = dag.test()
    assert dag_run.state == "failed"
    (prediction,) = wavespeed_conn.predictions.values()
    assert prediction.status == "cancelled"
    assert any(r.method == "DELETE" and r.prediction_id == prediction.id and r.status == 200 for r in wavespeed_conn.requests)


def test_a_task_with_retries_stops_at_its_budget_across_tries(airflow_db: None, wavespeed_conn: Emulator) -> None:
    dag: Any = load_dag_bag(DAGS).get_dag("wavespeed_budget_retries")  # type: ignore[attr-defined]
    dag_run = dag.test()
    assert dag_run.state == "failed"
    (ti,) = dag_run.get_task_instances()
    if _has_task_state_store():
        # 0.06 + 0.06 spent; a third 0.06 would pass 0.15: refused before it submits, without more retries.
        assert wavespeed_conn.submit_count(include_rejected=True) == 2
        assert ti.try_number == 3
    else:
        # Airflow 3.1/3.2: no task state store, so the budget holds per try and every try submits.
        assert wavespeed_conn.submit_count(include_rejected=True) == 1 + dag.get_task("generate").retries


async def test_a_task_ending_in_the_triggerer_records_what_was_billed(wavespeed_conn: Emulator) -> None:
    """end_from_trigger: the trigger reads the billing records itself (one bounded lookup, only after a quote)."""
    from airflow.triggers.base import TaskSuccessEvent

    from tests.test_end_from_trigger import final_event

    wavespeed_conn.config.billed_ratio = 0.5

    async def ended(**kwargs: Any) -> dict[str, Any]:
        operator = run_model(inputs={"prompt": "p"}, deferrable=True, end_from_trigger=True, **kwargs)
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(make_context())
        event = await final_event(deferred.value.trigger)
        assert isinstance(event, TaskSuccessEvent)
        return dict(event.xcoms["prediction"])

    def billing_searches() -> int:
        return sum(1 for r in wavespeed_conn.requests if r.path == "/api/v3/billings/search")

    billed = await ended(max_cost_usd=1)
    assert (billed["cost_usd"], billed["billed_usd"]) == (0.06, 0.03)
    assert billing_searches() == 1
    wavespeed_conn.config.billing_records = False
    unknown = await ended(max_cost_usd=1)
    assert unknown["cost_usd"] == 0.06 and unknown["billed_usd"] is None, "unknown, not the quote"
    searches = billing_searches()
    assert "billed_usd" not in await ended(), "no quote asked for, no billing lookup"
    assert billing_searches() == searches


def test_a_batch_with_retries_stops_at_the_batch_budget(airflow_db: None, wavespeed_conn: Emulator) -> None:
    """The budget's shares go to the mapped runs: two runs that keep failing each stop at their share."""
    dag: Any = load_dag_bag(DAGS).get_dag("wavespeed_batch_budget_retries")  # type: ignore[attr-defined]
    dag_run = dag.test()
    assert dag_run.state == "failed"
    tis = {(ti.task_id, ti.map_index): ti for ti in dag_run.get_task_instances()}
    assert tis[("generate", 0)].state == "success"
    assert [tis[("generate", n)].state for n in (1, 2)] == ["failed", "failed"]
    prompts = [p.prompt for p in wavespeed_conn.predictions.values()]
    if _has_task_state_store():
        # Shares of 0.12: each failing run submits 0.06 twice, a third would pass its share.
        assert sorted(prompts) == sorted(["works"] + ["[fail] never works"] * 2 + ["[fail] nor this"] * 2)
        assert round(0.06 * len(prompts), 6) <= 0.36
    else:
        # Airflow 3.1/3.2: no task state store; each try checks its own quote against its share.
        assert len(prompts) == 1 + 2 * (1 + dag.get_task("generate").partial_kwargs["retries"])


def test_the_budget_shares_never_add_up_to_more_than_it() -> None:
    from airflow_wavespeed.operators.budget import budget_shares

    assert budget_shares([0.06, 0.06, 0.06], 0.18) == [0.06, 0.06, 0.06], "a share is never below its quote"
    assert budget_shares([0.1, 0.3], 1.0) == [0.25, 0.75]
    assert budget_shares([0.0, 0.0], 0.5) == [0.25, 0.25], "free runs share evenly"
    assert budget_shares([], 1.0) == []
    assert budget_shares([0.0600004, 0.06], 0.1200004) == [0.0600004, 0.06], "a quote finer than a millionth"
    odd = budget_shares([0.01, 0.02, 0.04], 0.1)
    assert sum(odd) <= 0.1 and all(share >= quote for share, quote in zip(odd, [0.01, 0.02, 0.04], strict=True))


def test_the_budget_hands_each_task_its_kwargs_and_share(wavespeed_conn: Emulator) -> None:
    from airflow_wavespeed.operators.budget import WaveSpeedBudgetOperator

    edits = [{"images": ["https://e.com/a.png"], "prompt": "a"}, {"images": ["https://e.com/b.png"], "prompt": "b"}]
    operator = WaveSpeedBudgetOperator(
        task_id="check_budget", model=MODEL, inputs=[{"prompt": "a"}, {"prompt": "b"}], task_kwargs=edits,
        max_total_cost_usd=0.3,
    )  # fmt: skip
    context = make_context()
    assert operator.execute(context) == [{**edits[0], "max_cost_usd": 0.15}, {**edits[1], "max_cost_usd": 0.15}]
    quote = context["ti"].xcoms["quote"]
    assert quote["quotes"] == [0.06, 0.06] and quote["shares_usd"] == [0.15, 0.15] and quote["total_usd"] == 0.12
    plain = WaveSpeedBudgetOperator(task_id="b", model=MODEL, inputs=[{"prompt": "a"}], max_total_cost_usd=0.1)
    assert plain.execute(make_context()) == [{"inputs": {"prompt": "a"}, "max_cost_usd": 0.1}]
    assert wavespeed_conn.submit_count(include_rejected=True) == 0


@pytest.mark.parametrize(
    ("task_kwargs", "message"),
    [
        ({"prompt": "a"}, "task_kwargs must be a list of keyword-argument dicts"),
        ([{"prompt": "a"}, {"prompt": "b"}], "task_kwargs has 2 entries and inputs 1"),
        ([{"max_cost_usd": 1}], "task_kwargs must not set max_cost_usd"),
    ],
)
def test_the_budget_refuses_task_kwargs_it_cannot_hand_out(task_kwargs: Any, message: str) -> None:
    from airflow_wavespeed.exceptions import WaveSpeedInputError
    from airflow_wavespeed.operators.budget import WaveSpeedBudgetOperator

    with pytest.raises(WaveSpeedInputError, match=message):
        WaveSpeedBudgetOperator(
            task_id="b", model=MODEL, inputs=[{"prompt": "a"}], task_kwargs=task_kwargs, max_total_cost_usd=1
        )


@pytest.mark.parametrize("deferrable", [False, True], ids=["waits-on-the-worker", "deferred"])
def test_the_billed_cost_is_recorded_beside_the_quote(wavespeed_conn: Emulator, deferrable: bool) -> None:
    from tests.test_operators import run_deferred

    wavespeed_conn.config.billed_ratio = 0.5  # a discount: what is billed is not the quote

    def metadata(**kwargs: Any) -> dict[str, Any]:
        operator, context = run_model(inputs={"prompt": "p"}, deferrable=deferrable, **kwargs), make_context()
        run_deferred(operator, context) if deferrable else operator.execute(context)
        return dict(context["ti"].xcoms["prediction"])

    assert {k: metadata(max_cost_usd=1)[k] for k in ("cost_usd", "billed_usd")} == {"cost_usd": 0.06, "billed_usd": 0.03}
    wavespeed_conn.config.billing_records = False
    unknown = metadata(max_cost_usd=1)
    assert unknown["cost_usd"] == 0.06 and unknown["billed_usd"] is None, "unknown, not the quote"
    assert "billed_usd" not in metadata(), "no quote asked for, no billing lookup"


async def test_the_trigger_cancel_survives_a_second_cancel_of_its_task(wavespeed_conn: Emulator) -> None:
    """As Airflow 3.3.2's triggerer does: the killed trigger's task is cancelled, ``on_kill`` runs in it, and
    the next pass cancels the task again while ``on_kill`` still runs. The DELETE still reaches WaveSpeed."""
    wavespeed_conn.config.processing_seconds = 60
    prediction_id = WaveSpeedHook().submit(MODEL, {"prompt": "p"}).id
    trigger = WaveSpeedPredictionTrigger(prediction_id, poll_interval=0.05, end_time=time.time() + 60, cancel_on_kill=True)
    started = asyncio.Event()

    async def as_the_triggerer_runs_it() -> None:
        try:
            async for _ in trigger.run():
                raise AssertionError("no event expected: the task is killed first")
        except asyncio.CancelledError:
            started.set()
            await trigger.on_kill()
            raise

    task = asyncio.ensure_future(as_the_triggerer_runs_it())
    await asyncio.sleep(0.5)
    task.cancel("__airflow_user_action__")
    await started.wait()
    task.cancel("__airflow_user_action__")  # the next pass, while on_kill runs
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 30
    while wavespeed_conn.state.get_prediction(prediction_id).status != "cancelled":  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the cancel never reached the emulator"
        await asyncio.sleep(0.05)


def test_a_sync_submit_lost_to_a_bare_gateway_504_is_found_and_waited_for(wavespeed_conn: Emulator) -> None:
    """A sync-mode submit answered by a gateway 504 without a body: no id to resume, but the history has it."""
    wavespeed_conn.config.sync_504_rate = 1.0
    outputs = run_model(inputs={"prompt": "p"}, enable_sync_mode=True).execute(make_context())
    (prediction_id,) = wavespeed_conn.predictions
    assert outputs and prediction_id in outputs[0]
    assert wavespeed_conn.submit_count(include_rejected=True) == 1
    assert [r.status for r in wavespeed_conn.requests if r.method == "POST" and r.path.endswith(MODEL)] == [504]
