"""What :class:`WaveSpeedRunModelOperator` does when a task is killed or times out, and what it records of
the real cost: the operator's side of :mod:`airflow_wavespeed.recovery`.

Imported when a DAG is parsed (the operator mixes it in), so it imports nothing heavy at module level.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_wavespeed.prediction import Prediction


class SafeguardsMixin:
    """``cancel_on_kill``, ``cancel_on_timeout`` and the billed cost, for an operator with a ``hook``."""

    cancel_on_kill: bool = False
    cancel_on_timeout: bool = False
    cost_usd: float | None = None
    #: The prediction this try submitted or resumed, for :meth:`on_kill`.
    _waiting_on: str | None = None
    #: What was billed, beside the quote, for the ``prediction`` XCom (:func:`~airflow_wavespeed.recovery.billed_extras`).
    _billed: dict[str, Any] = {}  # noqa: RUF012 - replaced, never mutated

    if TYPE_CHECKING:
        hook: WaveSpeedHook
        retries: int | None
        log: Any

    def on_kill(self) -> None:
        """``cancel_on_kill``: cancel the prediction this try submitted or resumed (best-effort, bounded)."""
        if self.cancel_on_kill and self._waiting_on:
            from airflow_wavespeed.recovery import cancel_killed

            cancel_killed(self.hook, self._waiting_on, logger=self.log)

    def _billed_cost(self, prediction: Prediction) -> dict[str, Any]:
        from airflow_wavespeed.recovery import billed_extras

        return billed_extras(self.hook, prediction, self.cost_usd)

    def _on_timeout(self, context: Context, prediction_id: str) -> AbstractContextManager[None]:
        """Around a wait: ``cancel_on_timeout`` cancels the prediction when it times out (see recovery.py)."""
        from airflow_wavespeed.recovery import cancelled_on_timeout

        return cancelled_on_timeout(
            self.hook, context, prediction_id, enabled=self.cancel_on_timeout, retries=self.retries
        )
