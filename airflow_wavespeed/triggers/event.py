"""The one event a WaveSpeed trigger yields: its vocabulary (:class:`EventStatus`), the payload built and
read back (:class:`PredictionEvent`), and the event object whose repr is a one-line summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_wavespeed.exceptions import WaveSpeedError, WaveSpeedTimeoutError
from airflow_wavespeed.prediction import Prediction

#: How much of an event's message its one-line summary keeps (the event itself keeps it all).
SUMMARY_MESSAGE_CHARS = 200


class EventStatus(str, Enum):
    """How a wait ended: the prediction finished well or badly, the deadline passed, or the wait broke."""

    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True)
class PredictionEvent:
    """The one event a trigger yields, and what a resumed task reads back from it.

    ``prediction`` is the small metadata dict of :meth:`Prediction.to_xcom`; ``outputs`` holds URLs only
    (base64 outputs never ride in an event: megabytes of image data do not belong in the trigger table).
    """

    status: EventStatus
    prediction_id: str
    message: str = ""
    prediction: dict[str, Any] | None = None
    outputs: list[str] = field(default_factory=list)
    waited_seconds: float | None = None
    #: What the deferring run handed the trigger to give back (its seconds on the worker, its quote):
    #: an event reaches ``execute_complete`` even where defer()'s kwargs do not (``dag.test()``).
    carry: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "prediction_id": self.prediction_id,
            "outputs": list(self.outputs),
            "message": self.message,
            "prediction": self.prediction,
            "waited_seconds": self.waited_seconds,
            "carry": dict(self.carry),
        }

    @classmethod
    def from_payload(cls, payload: Any, *, expected_id: str | None = None) -> PredictionEvent:
        """Read an event back; a missing or unknown one is an error: ``execute_complete`` never succeeds quietly."""
        statuses = {status.value for status in EventStatus}
        if not isinstance(payload, dict) or payload.get("status") not in statuses:
            raise WaveSpeedError(
                f"WaveSpeed trigger returned no usable event for prediction {expected_id or '(unknown)'}: {payload!r}"
            )
        metadata = payload.get("prediction")
        waited = payload.get("waited_seconds")
        carry = payload.get("carry")
        return cls(
            status=EventStatus(payload["status"]),
            prediction_id=str(payload.get("prediction_id") or expected_id or "(unknown)"),
            message=str(payload.get("message") or ""),
            prediction=metadata if isinstance(metadata, dict) else None,
            outputs=[o for o in payload.get("outputs") or [] if isinstance(o, str)],
            waited_seconds=float(waited) if isinstance(waited, (int, float)) else None,
            carry=carry if isinstance(carry, dict) else {},
        )

    def terminal_prediction(self) -> Prediction:
        """The finished prediction the event describes; a timeout or an error raises."""
        if self.status is EventStatus.TIMEOUT:
            raise WaveSpeedTimeoutError(
                self.prediction_id, self.message or f"Waiting for prediction {self.prediction_id} timed out"
            )
        if self.status is EventStatus.ERROR or self.prediction is None:
            raise WaveSpeedError(f"Waiting for WaveSpeed prediction {self.prediction_id} failed: {self.message}")
        return Prediction.from_data({**self.prediction, "outputs": self.outputs}, message=self.message)

    def summary(self) -> str:
        """One short line for logs: how the wait ended, the prediction, its outputs or its message's start."""
        line = f"{self.status.value}: prediction {self.prediction_id}"
        if self.status is EventStatus.SUCCESS:
            line += f", {len(self.outputs)} output(s)"
        elif self.message:
            line += f": {self.message[:SUMMARY_MESSAGE_CHARS]}{'...' if len(self.message) > SUMMARY_MESSAGE_CHARS else ''}"
        return line if self.waited_seconds is None else f"{line} (waited {self.waited_seconds:g} s)"

    @property
    def outputs_left_out(self) -> bool:
        """Whether a success event omitted outputs the prediction has (base64 outputs stay out of events)."""
        if self.status is not EventStatus.SUCCESS or self.prediction is None:
            return False
        return len(self.outputs) < (self.prediction.get("num_outputs") or 0)


class SummarizedTriggerEvent(TriggerEvent):
    """A ``TriggerEvent`` whose repr is the event's one-line summary; its payload is the same.

    Airflow's triggerer logs every event it gets at INFO (``Trigger fired event ... result=<its repr>``), and
    the plain repr printed the whole payload, URLs, metadata and message, on one very long line. The
    trigger logs the payload in full at DEBUG instead.
    """

    def __repr__(self) -> str:
        return f"TriggerEvent<{PredictionEvent.from_payload(self.payload).summary()}>"
