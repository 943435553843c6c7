"""Resuming across tries: where a task instance keeps the prediction it submitted, and taking it up again,
so a retry never bills twice (Airflow ≥ 3.3's task state store; see :mod:`airflow_wavespeed.utils.ledger`).
For :class:`~airflow_wavespeed.operators.run_model.WaveSpeedRunModelOperator`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_wavespeed.exceptions import WaveSpeedNotFoundError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_wavespeed.prediction import Prediction
    from airflow_wavespeed.utils.ledger import PredictionLedger


class ResumeMixin:
    """The ledger of an operator with a ``hook`` and the run arguments it digests."""

    if TYPE_CHECKING:
        hook: WaveSpeedHook
        log: Any
        template_fields: Sequence[str]
        model: str
        inputs: dict[str, Any]
        enable_sync_mode: bool
        enable_base64_output: bool

    def _resume(self, prediction_id: str, ledger: PredictionLedger) -> Prediction | None:
        """The prediction an earlier try submitted; None only when WaveSpeed reported it failed.

        Anything else keeps this task from submitting again: a 404 is not proof that nothing was
        billed, so it fails the task without retries, naming the id (see WaveSpeedResumeError).
        """
        try:
            prediction = self.hook.get_prediction(prediction_id, base64_outputs=self.enable_base64_output)
        except WaveSpeedNotFoundError as error:
            raise ledger.lost(prediction_id, error) from error
        if prediction.status.is_terminal() and not prediction.status.is_success():
            self.log.warning(
                "Prediction %s from an earlier try %s (%s); submitting a new one",
                prediction_id,
                prediction.raw_status,
                prediction.error,
            )
            return None
        self.log.info(
            "Resuming prediction %s (%s) submitted by an earlier try: not submitting again",
            prediction.id,
            prediction.raw_status,
        )
        return prediction

    def _ledger(self, context: Context) -> PredictionLedger:
        """Where this task instance's submitted prediction is kept for its retries (Airflow ≥ 3.3)."""
        from airflow_wavespeed.utils.ledger import PredictionLedger, submission_digest

        store = context.get("task_state_store")
        digest = submission_digest(self.submission()) if store is not None else ""
        try_number = getattr(context["ti"], "try_number", 0)
        return PredictionLedger(store, digest, first_try=try_number == 1, try_number=try_number)

    def submission(self) -> dict[str, Any]:
        """What this task submits, as the user wrote it (rendered, before uploads).

        A retry resumes the stored prediction only when this is unchanged, so a task cleared after its
        inputs were changed submits the new edit instead of returning the old one.
        """
        fields = {name: getattr(self, name) for name in self.template_fields if name != "output_uri"}
        return {
            "model": self.model,
            "inputs": self.inputs,
            "fields": fields,
            "enable_sync_mode": self.enable_sync_mode,
            "enable_base64_output": self.enable_base64_output,
        }
