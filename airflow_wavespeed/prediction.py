"""What an answer from WaveSpeed means, decided in one place.

Submit and result share one envelope ``{"code", "message", "data"}``. :func:`parse_envelope` checks the
HTTP status and the envelope's ``code`` and maps failures to the provider's error classes;
:class:`Prediction` is what every other module speaks in. :func:`judge_poll` decides what one poll
means for a wait (the sync wait, the trigger and the sensor's poke all call it), and
:func:`accepted_outputs` what a finished prediction may hand on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from airflow_wavespeed.exceptions import (
    WaveSpeedAPIError,
    WaveSpeedAuthError,
    WaveSpeedBadRequestError,
    WaveSpeedError,
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedNSFWError,
    WaveSpeedPredictionFailedError,
    WaveSpeedRateLimitError,
    WaveSpeedServerError,
)
from airflow_wavespeed.utils.validation import finite_number, is_output_url, is_prediction_id

#: What one answer may put into XCom, trigger events (stored in Airflow's database) and error messages.
#: The body's size cap bounds memory; these bound what is kept. No WaveSpeed model returns near this many
#: outputs, and output URLs (signed CDN links included) are far shorter.
MAX_OUTPUTS = 1000
MAX_URL_CHARS = 16 * 1024
#: All output URLs of one prediction together: what one trigger event or XCom may carry of them.
MAX_OUTPUT_URLS_CHARS = 256 * 1024
#: The API's free text (an error, the envelope's message) is clipped to this many characters.
MAX_MESSAGE_CHARS = 2000
#: Short fields (model, status, created_at, the ``urls`` entries' names) are clipped to this many.
MAX_FIELD_CHARS = 200
#: The ``urls`` a prediction lists (the API gives one or two) beyond this many are dropped.
MAX_URLS = 16
#: An answer is not decoded when it may hold more JSON values than this (counted from its commas and
#: brackets, an upper bound): a prediction at every limit above holds a few thousand.
MAX_JSON_VALUES = 100_000


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


class PredictionStatus(str, Enum):
    """A prediction's state. Statuses the API adds later parse as ``UNKNOWN`` and count as running."""

    CREATED = "created"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    DELETED = "deleted"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> PredictionStatus:
        # A dict lookup, not ``cls(value)``: twice per poll, and Enum's own lookup is several times slower.
        return _BY_VALUE.get(str(value).lower(), cls.UNKNOWN)

    def is_terminal(self) -> bool:
        return self in _TERMINAL

    def is_success(self) -> bool:
        return self is PredictionStatus.COMPLETED


_BY_VALUE = {status.value: status for status in PredictionStatus}
_TERMINAL = frozenset(
    {
        PredictionStatus.COMPLETED,
        PredictionStatus.FAILED,
        PredictionStatus.CANCELLED,
        PredictionStatus.TIMEOUT,
        PredictionStatus.DELETED,
    }
)


@dataclass(frozen=True)
class Prediction:
    """One prediction as the API last described it.

    ``outputs`` holds URLs, or base64 strings when the submit asked for ``enable_base64_output``.
    ``raw_status`` keeps the API's word when it is one this version does not know.
    """

    id: str
    model: str
    status: PredictionStatus
    outputs: list[str] = field(default_factory=list)
    error: str = ""
    has_nsfw_contents: list[bool] = field(default_factory=list)
    created_at: str | None = None
    inference_ms: int | None = None
    raw_status: str = ""
    message: str = ""
    #: Related API endpoints, e.g. ``{"get": "https://api.wavespeed.ai/api/v3/predictions/<id>/result"}``.
    urls: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: dict[str, Any], *, message: str = "") -> Prediction:
        """Build from the envelope's ``data`` object (or a flat webhook payload)."""
        prediction_id = data.get("id")
        if not isinstance(prediction_id, str) or not prediction_id:
            raise ValueError("the prediction has no 'id'")
        if not is_prediction_id(prediction_id):
            raise ValueError(f"the prediction id {prediction_id[:80]!r} is not one WaveSpeed gives (too long or odd characters)")
        if "status" not in data:
            raise ValueError(f"prediction {prediction_id} has no 'status'")
        outputs = data.get("outputs") or []
        if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
            raise ValueError(f"prediction {prediction_id} has 'outputs' that are not a list of strings")
        if len(outputs) > MAX_OUTPUTS:
            raise ValueError(f"prediction {prediction_id} has {len(outputs)} outputs, more than the {MAX_OUTPUTS} accepted")
        if any(is_output_url(o) and len(o) > MAX_URL_CHARS for o in outputs):
            raise ValueError(f"prediction {prediction_id} has an output URL longer than {MAX_URL_CHARS} characters")
        if sum(len(o) for o in outputs if is_output_url(o)) > MAX_OUTPUT_URLS_CHARS:
            raise ValueError(f"prediction {prediction_id} has output URLs of more than {MAX_OUTPUT_URLS_CHARS} characters in all")
        timings = data.get("timings") if isinstance(data.get("timings"), dict) else {}
        inference = timings.get("inference") if timings else data.get("inference_ms")
        nsfw = data.get("has_nsfw_contents") or []
        urls = data.get("urls")
        urls = urls if isinstance(urls, dict) else {}
        created_at = data.get("created_at")
        return cls(
            id=prediction_id,
            model=clip(str(data.get("model") or ""), MAX_FIELD_CHARS),
            status=PredictionStatus.parse(data["status"]),
            outputs=list(outputs),
            error=clip(str(data.get("error") or "")),
            has_nsfw_contents=[bool(flag) for flag in nsfw[:MAX_OUTPUTS]] if isinstance(nsfw, list) else [],
            created_at=clip(created_at, MAX_FIELD_CHARS) if isinstance(created_at, str) else None,
            inference_ms=None if (ms := finite_number(inference)) is None else int(ms),
            raw_status=clip(str(data["status"]), MAX_FIELD_CHARS),
            message=clip(message),
            urls=dict(
                [
                    (clip(str(name), MAX_FIELD_CHARS), url)
                    for name, url in urls.items()
                    if isinstance(url, str) and len(url) <= MAX_URL_CHARS
                ][:MAX_URLS]
            ),
        )

    @property
    def any_nsfw(self) -> bool:
        return any(self.has_nsfw_contents)

    @property
    def has_inline_outputs(self) -> bool:
        """Whether any output is image data (base64) rather than a URL: never for XCom or trigger events."""
        return not all(is_output_url(output) for output in self.outputs)

    def to_xcom(self) -> dict[str, Any]:
        """Small JSON-safe metadata for XCom: ids, status, timings and flags, never outputs or bytes."""
        return {
            "id": self.id,
            "model": self.model,
            "status": self.raw_status or self.status.value,
            "created_at": self.created_at,
            "inference_ms": self.inference_ms,
            "has_nsfw_contents": list(self.has_nsfw_contents),
            "error": self.error,
            "num_outputs": len(self.outputs),
        }


def parse_envelope(
    http_status: int,
    body: str | bytes,
    *,
    context: str,
    conn_id: str = "",
    retry_after: float | None = None,
    scrub: Callable[[str], str] | None = None,
    max_values: int = MAX_JSON_VALUES,
    list_data: bool = False,
) -> tuple[dict[str, Any], str]:
    """Check one API answer and return its ``(data, message)``, or raise the matching error.

    :param http_status: the response's HTTP status.
    :param body: the raw body.
    :param context: what was asked, for error messages (e.g. ``"get prediction abc"``).
    :param conn_id: the Airflow connection used, named in authentication errors.
    :param retry_after: the parsed ``Retry-After`` header, carried by the error raised (a 429 or a 5xx).
    :param scrub: removes the API key from text. It runs on the raw body (for excerpts) and again on what
        JSON decoding reveals: a key written with ``\\uXXXX`` escapes only appears once decoded.
    :param max_values: the most JSON values an answer may hold to be decoded (a worker reading the model
        catalog allows more than a trigger's poll).
    :param list_data: ``data`` may be a list (the catalog), returned as ``{"items": [...]}``.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    # Decoding time and memory follow the number of values, not the size: 8 MiB of `[]` is 1.6 million
    # lists (seconds of a triggerer's shared loop). An answer that may hold too many is not decoded.
    crowded = text.count(",") + text.count("[") + text.count("{") > max_values
    try:
        payload: Any = json.loads(text) if text and not crowded else None
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        payload = None
    # Without a backslash every decoded string is the very text the caller scrubbed (no escape can hide
    # the key), so the re-encoding, a third of this function's time per poll, is needed only with one.
    if scrub is not None and payload is not None and "\\" in text:
        decoded = json.dumps(payload, ensure_ascii=False)
        if (cleaned := scrub(decoded)) != decoded:
            # The key was written with \u escapes: excerpts come from the cleaned text from now on.
            payload, text = json.loads(cleaned), cleaned
    envelope = payload if isinstance(payload, dict) else {}
    api_message = clip(str(envelope.get("message") or envelope.get("error") or ""))
    code = envelope.get("code")
    data = envelope.get("data")
    # An error code that comes with a prediction in `data` describes that prediction: a sync-mode
    # submit that outlived its wait (code 5004) or a failed task (1403). Over a 5xx (a gateway's 504)
    # only a still-running prediction is trusted; any other 5xx is a fault, retried where safe.
    described = data if isinstance(data, dict) and data.get("id") and "status" in data else None
    carries_prediction = described is not None
    still_running = described is not None and not PredictionStatus.parse(described["status"]).is_terminal()

    if http_status >= 400 and not (http_status >= 500 and still_running):
        _raise_for_status(http_status, api_message, text, context, conn_id, retry_after)
    if crowded:
        raise WaveSpeedMalformedResponseError(
            f"{context}: the answer may hold more than {max_values} JSON values; it was not decoded",
            http_status=http_status,
            body=text,
        )
    if not isinstance(payload, dict):
        raise WaveSpeedMalformedResponseError(f"{context}: body is not a JSON object", http_status=http_status, body=text)
    if isinstance(code, int) and code != 200 and not carries_prediction:
        _raise_for_status(code, api_message, text, context, conn_id, retry_after, source=f"code {code}")
    if list_data and isinstance(data, list):
        data = {"items": data}
    if not isinstance(data, dict):
        raise WaveSpeedMalformedResponseError(f"{context}: no 'data' object", http_status=http_status, body=text)
    return data, api_message


def _raise_for_status(
    status: int,
    api_message: str,
    text: str,
    context: str,
    conn_id: str,
    retry_after: float | None,
    *,
    source: str = "",
) -> None:
    """Raise the error class for ``status``, an HTTP status or (``source="code N"``) an envelope code."""
    detail = api_message or text[:200].strip() or "no message"
    what = source or f"HTTP {status}"
    # Envelope codes of four digits: 1xxx are input and task errors (like a 4xx), 5xxx service errors.
    family = status if status < 1000 else (500 if status >= 5000 else 400)
    kwargs: dict[str, Any] = {"http_status": status, "api_message": api_message, "retry_after": retry_after}
    if status in (401, 403):
        raise WaveSpeedAuthError(
            f"{context}: WaveSpeed refused the API key ({what}): {detail}. "
            f"Check the API key (the password) of Airflow connection {conn_id!r}.",
            **kwargs,
        )
    if status == 404:
        raise WaveSpeedNotFoundError(f"{context}: not found ({what}): {detail}", **kwargs)
    if status == 429:
        raise WaveSpeedRateLimitError(f"{context}: rate limited ({what}): {detail}", **kwargs)
    if family >= 500:
        raise WaveSpeedServerError(f"{context}: WaveSpeed server error ({what}): {detail}", **kwargs)
    if 400 <= family < 500:
        raise WaveSpeedBadRequestError(f"{context}: rejected ({what}): {detail}", **kwargs)
    raise WaveSpeedAPIError(f"{context}: unexpected status ({what}): {detail}", **kwargs)


@dataclass(frozen=True)
class PollVerdict:
    """What one poll means for a wait: finished (``prediction`` is terminal), failed for good
    (``error``), or go on polling; ``warning`` is worth a log line either way."""

    prediction: Prediction | None = None
    error: WaveSpeedError | None = None
    warning: str | None = None

    @property
    def finished(self) -> bool:
        return self.prediction is not None and self.prediction.status.is_terminal()


def judge_poll(prediction_id: str, answer: Prediction | WaveSpeedError) -> PollVerdict:
    """Judge one poll's answer: a prediction, or the error the poll raised after its own retries.

    A poll whose retries ran out on a fault a retry may cure does not end the wait: the prediction is
    billed already, so giving up early would only lose it. A status this version does not know counts
    as still running, with a warning.
    """
    if isinstance(answer, WaveSpeedError):
        if not answer.retryable:
            return PollVerdict(error=answer)
        return PollVerdict(warning=f"Polling prediction {prediction_id} failed, will poll again: {answer}")
    if answer.status is PredictionStatus.UNKNOWN:
        return PollVerdict(
            prediction=answer,
            warning=f"Prediction {prediction_id} has unknown status {answer.raw_status!r}; waiting on",
        )
    return PollVerdict(prediction=answer)


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
