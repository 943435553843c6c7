"""What operator and sensor do once a prediction is terminal, written once for both."""

from __future__ import annotations

from typing import Any

from airflow_wavespeed.exceptions import (
    WaveSpeedError,
    WaveSpeedNSFWError,
    WaveSpeedPredictionFailedError,
    WaveSpeedTimeoutError,
)
from airflow_wavespeed.prediction import Prediction

EVENT_STATUSES = ("success", "failed", "timeout", "error")


def prediction_from_event(event: Any, *, expected_id: str | None = None) -> Prediction:
    """The terminal prediction a trigger event describes; a timeout or error event raises.

    A missing or unknown event is an error too: ``execute_complete`` never succeeds quietly.
    """
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise WaveSpeedError(
            f"WaveSpeed trigger returned no usable event for prediction {expected_id or '(unknown)'}: {event!r}"
        )
    prediction_id = event.get("prediction_id") or expected_id or "(unknown)"
    status, message = event["status"], event.get("message") or ""
    if status == "timeout":
        raise WaveSpeedTimeoutError(prediction_id, message or f"Waiting for prediction {prediction_id} timed out")
    metadata = event.get("prediction")
    if status == "error" or not isinstance(metadata, dict):
        raise WaveSpeedError(f"Waiting for WaveSpeed prediction {prediction_id} failed: {message}")
    return Prediction.from_data({**metadata, "outputs": event.get("outputs") or []}, message=message)


def accepted_outputs(prediction: Prediction, nsfw_policy: str) -> list[str]:
    """The outputs a task may hand on, after the failure check and the NSFW policy.

    :param nsfw_policy: ``allow`` keeps everything (flags stay in the metadata), ``fail`` raises if any
        output is flagged, ``drop`` removes flagged outputs and raises when none is left.
    """
    if not prediction.status.is_success():
        raise WaveSpeedPredictionFailedError(prediction.id, prediction.raw_status, prediction.error)
    outputs = list(prediction.outputs)
    if not prediction.any_nsfw or nsfw_policy == "allow":
        return outputs
    flags = prediction.has_nsfw_contents + [False] * (len(outputs) - len(prediction.has_nsfw_contents))
    flagged = sum(flags[: len(outputs)])
    if nsfw_policy == "fail":
        raise WaveSpeedNSFWError(
            prediction.id, "completed", f"{flagged} of {len(outputs)} outputs flagged NSFW and nsfw_policy='fail'"
        )
    kept = [output for output, flag in zip(outputs, flags[: len(outputs)], strict=True) if not flag]
    if not kept:
        raise WaveSpeedNSFWError(
            prediction.id, "completed", f"all {len(outputs)} outputs flagged NSFW and nsfw_policy='drop'"
        )
    return kept
