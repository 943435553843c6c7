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


def outputs_left_out(event: Any) -> bool:
    """Whether a success event omitted outputs the prediction has (base64 outputs never ride in events)."""
    metadata = event.get("prediction") if isinstance(event, dict) else None
    if not isinstance(metadata, dict) or event.get("status") != "success":
        return False
    return len(event.get("outputs") or []) < (metadata.get("num_outputs") or 0)


def inline_outputs_error(prediction_id: str) -> WaveSpeedError:
    return WaveSpeedError(
        f"WaveSpeed prediction {prediction_id} has base64 outputs, which never go through XCom: submit it "
        "with enable_base64_output=False for URLs, or with output_uri set so the images are stored"
    )


def accepted_outputs(prediction: Prediction, nsfw_policy: str, *, will_store: bool = False) -> list[str]:
    """The outputs a task may hand on, after the failure check and the NSFW policy.

    :param nsfw_policy: ``allow`` keeps everything (flags stay in the metadata), ``fail`` raises if any
        output is flagged, ``drop`` removes flagged outputs and raises when none is left.
    :param will_store: the outputs go to storage next, so base64 outputs are fine; otherwise they
        would reach XCom, and raise.
    """
    if not prediction.status.is_success():
        raise WaveSpeedPredictionFailedError(prediction.id, prediction.raw_status, prediction.error)
    if prediction.has_inline_outputs and not will_store:
        raise inline_outputs_error(prediction.id)
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
