"""WaveSpeedPredictionTrigger: wait for a prediction in the triggerer, holding no worker slot.

The trigger's whole state is its kwargs, so a triggerer that restarts (or hands the trigger to another
triggerer) rebuilds it from :meth:`serialize` and simply polls the same prediction again: polls are
free and idempotent. It yields exactly one :class:`PredictionEvent` and returns. The event is built
here and read back by the tasks (:mod:`airflow_wavespeed.triggers.event`), so its vocabulary has one home.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_wavespeed.exceptions import WaveSpeedError
from airflow_wavespeed.prediction import Prediction, judge_poll
from airflow_wavespeed.triggers.event import EventStatus, PredictionEvent, SummarizedTriggerEvent
from airflow_wavespeed.triggers.schedule import PollSchedule, check_poll_schedule

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook

#: Airflow's own deadline on a deferred task comes this long after the trigger's: the trigger reports first.
BACKSTOP_SECONDS = 120.0
#: How long a task that ends in the triggerer waits for its billing records (one lookup, then unknown).
BILLING_SECONDS = 15.0

if sys.version_info >= (3, 11):
    _time_limit = asyncio.timeout  # one timer handle per poll, no extra task
else:  # pragma: no cover - Python 3.10

    @contextlib.asynccontextmanager
    async def _time_limit(seconds: float) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        fired = []

        def expire() -> None:
            fired.append(True)
            task.cancel()

        handle = asyncio.get_running_loop().call_later(seconds, expire)
        try:
            yield
        except asyncio.CancelledError:
            if not fired:  # the triggerer cancelled the trigger: not a timeout
                raise
            raise TimeoutError from None
        finally:
            handle.cancel()

#: Cancels under way (``on_kill``), held until they finish.
_CANCELLING: set[asyncio.Future[None]] = set()

#: Set once the modules the wait needs are fully imported (``sys.modules`` lists a module while it
#: is still being imported, so it cannot tell).
_IMPORTED = False


async def _import_off_the_loop() -> None:
    """Import the hook and aiohttp in a thread, so the triggerer's loop never waits on an import."""
    global _IMPORTED
    if not _IMPORTED:
        for module in ("aiohttp", "airflow_wavespeed.hooks.wavespeed"):
            await asyncio.to_thread(importlib.import_module, module)
        _IMPORTED = True


class WaveSpeedPredictionTrigger(BaseTrigger):
    """
    Poll ``GET /api/v3/predictions/{id}/result`` until the prediction is terminal or ``end_time`` passes.

    Yields one :class:`PredictionEvent` (as its payload dict).

    :param prediction_id: the prediction to wait for.
    :param wavespeed_conn_id: the connection whose key is used; read inside ``run()``, never serialized.
    :param poll_interval: seconds between polls at first (and always, with ``poll_schedule="fixed"``).
    :param end_time: absolute deadline (epoch seconds); a restarted trigger keeps the original one.
    :param poll_schedule: ``backoff`` grows the interval while the prediction keeps processing, so a long
        job costs tens of polls, not hundreds; ``fixed`` polls every ``poll_interval``
        (:mod:`~airflow_wavespeed.triggers.schedule`).
    :param max_poll_interval: the longest interval of ``backoff``; None keeps the one for ``media``.
    :param media: the model's kind of output (``image``, ``video``, ``audio``, ``3d``, ``text``), which
        sets how fast the interval grows; None when unknown.
    :param started_at: when the wait began (epoch seconds; now by default): the schedule's clock, kept in
        the kwargs so a restarted trigger goes on with the interval it had reached.
    :param include_outputs: put the output URLs in the event. Base64 outputs are never put there: the
        event then has no ``outputs`` and the task fetches them from the worker. Tasks that asked for
        base64 pass False.
    :param hook_params: keyword arguments for the hook (timeouts, retry bounds); nothing secret.
    :param carry: small JSON a deferring task hands over and gets back in the event (nothing secret).
    :param end_from_trigger: on success, end the task here (``TaskSuccessEvent`` with its XComs: one task
        launch instead of two). Any other outcome, or outputs the ``nsfw_policy`` changes, resumes the task on
        a worker as usual. The task decides whether it may (see the operators' ``end_from_trigger``).
    :param nsfw_policy: the task's NSFW policy, applied here when the task ends here.
    :param cancel_on_kill: cancel the prediction when a user kills the deferred task (:meth:`on_kill`,
        Airflow ≥ 3.3); a triggerer restart or a move to another triggerer cancels nothing.
    """

    def __init__(
        self,
        prediction_id: str,
        wavespeed_conn_id: str = "wavespeed_default",
        poll_interval: float = 5.0,
        end_time: float | None = None,
        include_outputs: bool = True,
        hook_params: dict[str, Any] | None = None,
        carry: dict[str, Any] | None = None,
        end_from_trigger: bool = False,
        nsfw_policy: str = "allow",
        cancel_on_kill: bool = False,
        poll_schedule: str = "backoff",
        max_poll_interval: float | None = None,
        media: str | None = None,
        started_at: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.prediction_id = prediction_id
        self.wavespeed_conn_id = wavespeed_conn_id
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.include_outputs = include_outputs
        self.hook_params = hook_params or {}
        self.carry = carry or {}
        self.end_from_trigger = end_from_trigger
        self.nsfw_policy = nsfw_policy
        self.cancel_on_kill = cancel_on_kill
        self.poll_schedule = poll_schedule
        self.max_poll_interval = max_poll_interval
        self.media = media
        self.started_at = time.time() if started_at is None else started_at
        self._schedule = PollSchedule(poll_interval, poll_schedule, media, max_poll_interval)

    @property
    def log(self) -> Any:
        """One logger for every trigger of the class. The triggerer sends each line to its task's log by
        context variables, not by logger, and a logger of its own was about 1 KiB of every wait."""
        return type(self).logger()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "prediction_id": self.prediction_id,
                "wavespeed_conn_id": self.wavespeed_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "include_outputs": self.include_outputs,
                "hook_params": self.hook_params,
                "carry": self.carry,
                "end_from_trigger": self.end_from_trigger,
                "nsfw_policy": self.nsfw_policy,
                "cancel_on_kill": self.cancel_on_kill,
                "poll_schedule": self.poll_schedule,
                "max_poll_interval": self.max_poll_interval,
                "media": self.media,
                "started_at": self.started_at,
            },
        )

    def _hook(self) -> WaveSpeedHook:
        """One place for tests to swap the hook: the one every trigger on this loop with the same
        connection and hook arguments shares (the trigger holds the loop's session by its own lease)."""
        from airflow_wavespeed.hooks.event_loop import LoopResources
        from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook

        key = (self.wavespeed_conn_id, json.dumps(self.hook_params, sort_keys=True, default=repr))
        return LoopResources.current().shared(key, lambda: WaveSpeedHook(self.wavespeed_conn_id, **self.hook_params))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        self.log.info(
            "%s waiting for WaveSpeed prediction %s (polling every %s s, %s)",
            type(self).__name__,
            self.prediction_id,
            self.poll_interval,
            "fixed" if self.poll_schedule == "fixed" else f"growing to at most {self._schedule.ceiling:g} s",
        )
        try:
            await _import_off_the_loop()
            from airflow_wavespeed.hooks.event_loop import LoopResources

            ending: list[Any] | None = None
            billed: dict[str, Any] = {}
            async with LoopResources.current().lease():
                hook = self._hook()
                event = await self._wait(hook)
                ending = self._ending_outputs(event)
                if ending is not None:
                    billed = await self._billed(hook)
        except Exception as error:  # an event, not a crashed trigger: the task then fails with the reason
            event = self._event(EventStatus.ERROR, f"waiting for prediction {self.prediction_id} failed: {error}")
            ending = None
        event = dataclasses.replace(event, waited_seconds=round(time.monotonic() - started, 3))
        if ending is not None:
            yield self._ending(event, ending, billed)
            return
        payload = event.to_payload()
        self.log.debug("The event of prediction %s in full: %r", self.prediction_id, payload)
        yield SummarizedTriggerEvent(payload=payload)

    async def on_kill(self) -> None:
        """Airflow ≥ 3.3 calls this when a user kills the deferred task (mark failed or succeeded, clear),
        never on a triggerer restart or timeout: with ``cancel_on_kill``, cancel the prediction through the
        API, best-effort, bounded, never raising (WaveSpeed may still bill it).

        The cancel runs shielded: Airflow 3.3.2's triggerer cancels a killed trigger's task again on its next
        pass (about a second later) while ``on_kill`` still runs, which would stop the request half-way.
        """
        if not self.cancel_on_kill:
            return
        self.log.warning("The task was killed: cancelling WaveSpeed prediction %s (cancel_on_kill)", self.prediction_id)
        cancelling = asyncio.ensure_future(self._cancel())
        _CANCELLING.add(cancelling)  # a reference, so a shielded cancel is not collected half-way
        cancelling.add_done_callback(_CANCELLING.discard)
        await asyncio.shield(cancelling)

    async def _cancel(self) -> None:
        from airflow_wavespeed.hooks.history import CANCEL_SECONDS

        try:
            await _import_off_the_loop()
            async with self._hook() as hook:
                status = await asyncio.wait_for(hook.acancel_prediction(self.prediction_id), CANCEL_SECONDS)
        except Exception as error:  # best-effort: a failed cancel changes nothing for the task
            self.log.warning("Cancelling prediction %s failed: %s", self.prediction_id, error)
            return
        self.log.warning("WaveSpeed answered the cancel of prediction %s: %s", self.prediction_id, status)

    def _ending_outputs(self, event: PredictionEvent) -> list[Any] | None:
        """The outputs, when the task asked to end here and the outcome allows; else None (the worker resumes)."""
        if not self.end_from_trigger or event.status is not EventStatus.SUCCESS or event.outputs_left_out:
            return None
        from airflow_wavespeed.exceptions import WaveSpeedPredictionFailedError
        from airflow_wavespeed.prediction import accepted_outputs

        prediction = event.terminal_prediction()
        try:
            outputs = accepted_outputs(prediction, self.nsfw_policy)
        except WaveSpeedPredictionFailedError:
            return None  # the worker raises it, with retries and callbacks as usual
        if outputs != list(prediction.outputs):
            return None  # the policy dropped outputs: the worker logs which, in the task's log
        return outputs

    async def _billed(self, hook: WaveSpeedHook) -> dict[str, Any]:
        """``{"billed_usd": ...}`` for a task that ends here and made a quote (``max_cost_usd``), as the worker
        records it: one bounded lookup of the billing records, None when they do not say or cannot be read."""
        if (self.carry.get("metadata") or {}).get("cost_usd") is None:
            return {}
        try:
            billed = await asyncio.wait_for(hook.aget_billed_cost(self.prediction_id), BILLING_SECONDS)
        except Exception as error:  # unknown, never a failed task: the prediction completed
            self.log.info("The billing records of prediction %s could not be read: %s", self.prediction_id, error)
            billed = None
        return {"billed_usd": billed}

    def _ending(self, event: PredictionEvent, outputs: list[Any], billed: dict[str, Any]) -> TriggerEvent:
        """The ``TaskSuccessEvent`` that ends the task here, with the XComs the worker would have pushed."""
        from airflow.triggers.base import TaskSuccessEvent

        timings = {"operator_seconds": self.carry.get("operator_seconds"), "triggerer_seconds": event.waited_seconds}
        metadata = {
            **(event.prediction or {}),
            **(self.carry.get("metadata") or {}),
            **billed,
            "task_timings": {k: round(float(v), 3) for k, v in timings.items() if isinstance(v, (int, float))},
        }
        self.log.info("Prediction %s completed; ending the task here (end_from_trigger)", self.prediction_id)
        xcoms: dict[str, Any] = {"return_value": outputs, "prediction": metadata}
        return TaskSuccessEvent(xcoms=xcoms)  # type: ignore[no-untyped-call]

    async def _wait(self, hook: WaveSpeedHook) -> PredictionEvent:
        while True:
            event = await self._poll_and_judge(hook)
            if event is not None:
                return event
            delay = self._schedule.delay(time.time() - self.started_at)
            if self.end_time is not None:
                left = self.end_time - time.time()
                if left < delay:
                    delay = self.poll_interval  # near the deadline: back to the first interval
                if left < delay:
                    return self._timed_out()
            await asyncio.sleep(delay)

    async def _poll_and_judge(self, hook: WaveSpeedHook) -> PredictionEvent | None:
        """One poll judged: the event that ends the wait, or None to poll again.

        Its own frame, so the answer (the parsed envelope, its prediction and verdict) is dropped before
        the wait sleeps: held across a sleep of seconds, every poll's answer outlives the young
        collections, and at 10,000 waits the full collections that follow took most of the CPU. The poll
        itself is awaited here, with no frame of its own: every waiting trigger holds the chain of frames
        down to the socket while its poll is in flight.
        """
        limit = self._poll_time_limit(hook)
        base64_outputs = not self.include_outputs  # they ride in the answer: read it under the larger cap
        try:
            if limit is None:
                answer: Prediction | WaveSpeedError = await hook.aget_prediction(
                    self.prediction_id, base64_outputs=base64_outputs
                )
            elif limit <= 0:
                return self._timed_out()
            else:
                async with _time_limit(limit):  # cut off at the deadline however the server answers (or not)
                    answer = await hook.aget_prediction(self.prediction_id, base64_outputs=base64_outputs)
        except WaveSpeedError as error:
            answer = error
        except TimeoutError:
            return self._timed_out()
        verdict = judge_poll(self.prediction_id, answer)
        if verdict.warning:
            self.log.warning("%s", verdict.warning)
        if verdict.error is not None:
            return self._event(EventStatus.ERROR, str(verdict.error))
        prediction = verdict.prediction
        if verdict.finished and prediction is not None:
            status = EventStatus.SUCCESS if prediction.status.is_success() else EventStatus.FAILED
            return self._event(status, prediction.error or prediction.raw_status, prediction)
        return None

    def _poll_time_limit(self, hook: WaveSpeedHook) -> float | None:
        """Seconds left before the deadline when one poll (retries included) could outlast it, so the poll
        needs a timer; None when it cannot (or there is no deadline)."""
        if self.end_time is None:
            return None
        remaining = self.end_time - time.time()
        return None if remaining > hook.longest_poll_seconds else remaining

    def _timed_out(self) -> PredictionEvent:
        return self._event(
            EventStatus.TIMEOUT,
            f"WaveSpeed prediction {self.prediction_id} did not finish before the task's timeout; it may still "
            "finish on WaveSpeed.",
        )

    def _event(self, status: EventStatus, message: str, prediction: Prediction | None = None) -> PredictionEvent:
        with_outputs = prediction is not None and self.include_outputs and not prediction.has_inline_outputs
        return PredictionEvent(
            status=status,
            prediction_id=self.prediction_id,
            message=message,
            prediction=prediction.to_xcom() if prediction is not None else None,
            outputs=list(prediction.outputs) if prediction is not None and with_outputs else [],
            carry=self.carry,
        )


def work_left_for_a_worker(task: BaseOperator, **more: bool) -> list[str]:
    """What a task would still do on a worker after a success, by name (``more``: the task's own, such as
    storing outputs). Airflow skips asset events for outlets, success callbacks and lineage listeners for
    a task that ends in the triggerer, so ``end_from_trigger`` applies only when this is empty."""
    from airflow_wavespeed.utils.lineage import lineage_active

    checks = {**more, "outlets": bool(task.outlets), "on_success_callback": bool(task.on_success_callback)}
    left = [name for name, present in checks.items() if present]
    return left + ["lineage"] if lineage_active() else left


def defer_to_trigger(
    task: BaseOperator,
    prediction_id: str,
    *,
    wavespeed_conn_id: str,
    poll_interval: float,
    timeout: float,
    hook_params: dict[str, Any],
    include_outputs: bool = True,
    carry: dict[str, Any] | None = None,
    end_from_trigger: bool = False,
    nsfw_policy: str = "allow",
    cancel_on_kill: bool = False,
    poll_schedule: str = "backoff",
    max_poll_interval: float | None = None,
    media: str | None = None,
) -> NoReturn:
    """Hand a task's wait to the triggerer; it resumes in ``execute_complete`` with the event (or, with
    ``end_from_trigger``, a success ends in the triggerer).

    The trigger's own deadline comes first; Airflow's backstop :data:`BACKSTOP_SECONDS` later. The poll
    schedule's arguments are checked here, on the worker, so a bad one fails the task, not the trigger.
    """
    check_poll_schedule(poll_schedule, max_poll_interval, poll_interval=poll_interval)
    task.defer(
        trigger=WaveSpeedPredictionTrigger(
            prediction_id=prediction_id,
            wavespeed_conn_id=wavespeed_conn_id,
            poll_interval=poll_interval,
            end_time=time.time() + timeout,
            include_outputs=include_outputs,
            hook_params=hook_params,
            carry=carry,
            end_from_trigger=end_from_trigger,
            nsfw_policy=nsfw_policy,
            cancel_on_kill=cancel_on_kill,
            poll_schedule=poll_schedule,
            max_poll_interval=max_poll_interval,
            media=media,
        ),
        method_name="execute_complete",
        timeout=timedelta(seconds=timeout + BACKSTOP_SECONDS),
    )
    raise AssertionError("unreachable: defer() raises TaskDeferred")  # pragma: no cover
