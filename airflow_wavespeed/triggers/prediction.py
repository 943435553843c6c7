"""WaveSpeedPredictionTrigger: wait for a prediction in the triggerer, holding no worker slot.

The trigger's whole state is its kwargs, so a triggerer that restarts (or hands the trigger to another
triggerer) rebuilds it from :meth:`serialize` and simply polls the same prediction again: polls are
free and idempotent. It yields exactly one event and returns.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_wavespeed.prediction import Prediction


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

    The event payload is ``{"status", "prediction_id", "outputs", "message", "prediction",
    "waited_seconds"}`` where
    ``status`` is ``success``, ``failed``, ``timeout`` or ``error`` and ``prediction`` is the small
    metadata dict of :meth:`Prediction.to_xcom`.

    :param prediction_id: the prediction to wait for.
    :param wavespeed_conn_id: the connection whose key is used; read inside ``run()``, never serialized.
    :param poll_interval: seconds between polls.
    :param end_time: absolute deadline (epoch seconds); a restarted trigger keeps the original one.
    :param include_outputs: put the output URLs in the event. Base64 outputs are never put there
        (megabytes of image data do not belong in the trigger table): the event then has no
        ``outputs`` and the task fetches them from the worker. Tasks that asked for base64 pass False.
    :param hook_params: keyword arguments for the hook (timeouts, retry bounds); nothing secret.
    """

    def __init__(
        self,
        prediction_id: str,
        wavespeed_conn_id: str = "wavespeed_default",
        poll_interval: float = 5.0,
        end_time: float | None = None,
        include_outputs: bool = True,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.prediction_id = prediction_id
        self.wavespeed_conn_id = wavespeed_conn_id
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.include_outputs = include_outputs
        self.hook_params = hook_params or {}

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
            },
        )

    def _hook(self) -> WaveSpeedHook:
        """One place for tests to swap the hook."""
        from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook

        return WaveSpeedHook(wavespeed_conn_id=self.wavespeed_conn_id, **self.hook_params)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        self.log.info(
            "%s waiting for WaveSpeed prediction %s (polling every %s s)",
            type(self).__name__,
            self.prediction_id,
            self.poll_interval,
        )
        try:
            await _import_off_the_loop()
            from airflow_wavespeed.hooks.wavespeed import shared_client_session_lease

            async with shared_client_session_lease():
                event = await self._wait()
        except Exception as error:  # an event, not a crashed trigger: the task then fails with the reason
            event = self._event("error", f"waiting for prediction {self.prediction_id} failed: {error}")
        event["waited_seconds"] = round(time.monotonic() - started, 3)
        yield TriggerEvent(event)  # type: ignore[no-untyped-call]

    async def _wait(self) -> dict[str, Any]:
        from airflow_wavespeed.exceptions import WaveSpeedError
        from airflow_wavespeed.prediction import PredictionStatus

        hook = self._hook()
        while True:
            try:
                prediction = await hook.aget_prediction(self.prediction_id)
            except WaveSpeedError as error:
                if not hook.is_retryable(error):
                    return self._event("error", str(error))
                # Retries for this poll ran out; the prediction is billed already, so keep waiting.
                self.log.warning("Polling prediction %s failed, will poll again: %s", self.prediction_id, error)
            else:
                if prediction.status.is_terminal():
                    status = "success" if prediction.status.is_success() else "failed"
                    return self._event(status, prediction.error or prediction.raw_status, prediction)
                if prediction.status is PredictionStatus.UNKNOWN:
                    self.log.warning(
                        "Prediction %s has unknown status %r; waiting on", self.prediction_id, prediction.raw_status
                    )
            if self.end_time is not None and time.time() + self.poll_interval > self.end_time:
                return self._event(
                    "timeout",
                    f"WaveSpeed prediction {self.prediction_id} did not finish before the task's timeout; "
                    "it may still finish on WaveSpeed.",
                )
            await asyncio.sleep(self.poll_interval)

    def _event(self, status: str, message: str, prediction: Prediction | None = None) -> dict[str, Any]:
        with_outputs = prediction is not None and self.include_outputs and not prediction.has_inline_outputs
        outputs = list(prediction.outputs) if prediction is not None and with_outputs else []
        return {
            "status": status,
            "prediction_id": self.prediction_id,
            "outputs": outputs,
            "message": message,
            "prediction": prediction.to_xcom() if prediction is not None else None,
        }
