"""What :class:`WaveSpeedRunModelOperator` does when a task is killed or times out, the spend guard before
it submits, and what it records of the real cost: the operator's side of :mod:`airflow_wavespeed.recovery`.

Imported when a DAG is parsed (the operator mixes it in), so it imports nothing heavy at module level.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from airflow_wavespeed.exceptions import WaveSpeedSpendLimitError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_wavespeed.prediction import Prediction


class SafeguardsMixin:
    """``cancel_on_kill``, ``cancel_on_timeout``, the spend guard and the billed cost, for an operator with a
    ``hook``."""

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
        model: str
        max_cost_usd: float | None
        min_balance_usd: float | None

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

    def _check_spend(self, inputs: dict[str, Any], earlier: list[dict[str, Any]]) -> float | None:
        """The spend guards, before the billed submit: returns the quote when ``max_cost_usd`` asked for one.
        ``earlier``: what earlier tries submitted (Airflow ≥ 3.3), inside the same ``max_cost_usd``.

        A refusal is a :class:`WaveSpeedSpendLimitError`: it fails the task without its retries.
        """
        quote = None
        if self.max_cost_usd is not None:
            quote = self.hook.get_price(self.model, inputs)
            if quote is None:
                raise WaveSpeedSpendLimitError(
                    f"WaveSpeed gave no price for {self.model}, so max_cost_usd={self.max_cost_usd:g} cannot be "
                    "checked; nothing was submitted"
                )
            self.log.info("%s quoted at %.4f USD (max_cost_usd=%g)", self.model, quote, self.max_cost_usd)
            if quote > self.max_cost_usd:
                raise WaveSpeedSpendLimitError(
                    f"{self.model} is quoted at {quote:.4f} USD for these inputs, above max_cost_usd="
                    f"{self.max_cost_usd:g}; nothing was submitted"
                )
            from airflow_wavespeed.utils.spend import check_across_tries

            check_across_tries(self.model, quote, self.max_cost_usd, earlier)
        if self.min_balance_usd is not None:
            self.hook.require_balance(self.min_balance_usd, refused=f"nothing was submitted to {self.model}")
        return quote
