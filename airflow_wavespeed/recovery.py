"""Finding a submit whose answer was lost, and cancelling a prediction nobody will wait for any more.

A submit whose connection dropped after the request was sent (a timeout, a gateway error without a
body) may have created a prediction: the hook raises :class:`WaveSpeedSubmitUncertainError` and never
sends it again. :func:`recover_lost_submit` then looks once in WaveSpeed's prediction history for it:
the same model, created within the submit's time window (widened by :data:`CLOCK_SKEW_SECONDS` for the
clocks of WaveSpeed and the worker), and, where the history's items carry their inputs, the same inputs.
Exactly one match is the lost prediction; none or several fail the task as before, naming the candidates.
The docs forbid polling the history for status: this is one bounded lookup, after the failure only.

:func:`cancel_quietly` is the best-effort cancel of ``cancel_on_kill`` / ``cancel_on_timeout``: bounded
in time, logged, and never raising over the error that brought it about.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_wavespeed.exceptions import WaveSpeedError, WaveSpeedSubmitUncertainError, WaveSpeedTimeoutError

if TYPE_CHECKING:
    from airflow_wavespeed.hooks.history import HistoryItem
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_wavespeed.prediction import Prediction

#: How far WaveSpeed's clock may be from the worker's, each way, when matching ``created_at``.
CLOCK_SKEW_SECONDS = 30.0
#: The submit flags the hook adds to the inputs; history items may or may not show them.
_SUBMIT_FLAGS = ("enable_sync_mode", "enable_base64_output")
#: Candidates named in a failure at most.
_NAMED = 10

log = logging.getLogger(__name__)


def inputs_digest(inputs: dict[str, Any]) -> str:
    """A digest of model inputs that ignores key order and the submit flags (both sides may differ in them)."""
    plain = {key: value for key, value in inputs.items() if key not in _SUBMIT_FLAGS}
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:32]


def matches(item: HistoryItem, digest: str) -> bool:
    """Whether a history item (already of the right model and time) may be the lost submit."""
    return item.input is None or inputs_digest(item.input) == digest


def recover_lost_submit(
    hook: WaveSpeedHook,
    error: WaveSpeedSubmitUncertainError,
    *,
    model: str,
    inputs: dict[str, Any],
    started: float,
    ended: float,
    base64_outputs: bool = False,
) -> Prediction:
    """The prediction a lost submit created, found in the history; or ``error`` again, with what was seen.

    :param error: the submit's uncertain failure, raised (amended) when the history cannot tell.
    :param inputs: the model inputs that were sent.
    :param started: ``time.time()`` just before the submit was sent.
    :param ended: ``time.time()`` when it failed.
    :param base64_outputs: the submit asked for base64 outputs (read its answer under the larger cap).
    """
    skew = timedelta(seconds=CLOCK_SKEW_SECONDS)
    after = datetime.fromtimestamp(started, timezone.utc) - skew
    before = datetime.fromtimestamp(ended, timezone.utc) + skew
    try:
        items = hook.find_predictions(model=model, created_after=after, created_before=before)
    except WaveSpeedError as lookup_error:
        raise _amended(error, f"The prediction history could not be read to find it ({lookup_error}).") from error
    digest = inputs_digest(inputs)
    candidates = [item for item in items if matches(item, digest)]
    window = f"{after:%H:%M:%S}-{before:%H:%M:%S} UTC"
    if len(candidates) == 1:
        found = candidates[0]
        how = "its inputs" if found.input is not None else "model and time only (the history shows no inputs)"
        log.warning(
            "The answer to the submit to %s was lost (%s); found prediction %s in WaveSpeed's history by %s: "
            "waiting for it instead of submitting again",
            model,
            error,
            found.prediction.id,
            how,
        )
        return hook.get_prediction(found.prediction.id, base64_outputs=base64_outputs)
    if not candidates:
        note = f"No prediction of {model} created {window} with these inputs is in the history"
        if items:
            note += f" ({len(items)} of that model and time with other inputs: {_ids(items)})"
        raise _amended(error, note + ".") from error
    raise _amended(
        error,
        f"{len(candidates)} predictions of {model} created {window} could be it, so none was taken: "
        f"{_ids(candidates)}.",
    ) from error


def _ids(items: list[HistoryItem]) -> str:
    shown = ", ".join(item.prediction.id for item in items[:_NAMED])
    return shown + (f" and {len(items) - _NAMED} more" if len(items) > _NAMED else "")


def _amended(error: WaveSpeedSubmitUncertainError, note: str) -> WaveSpeedSubmitUncertainError:
    return WaveSpeedSubmitUncertainError(f"{error} {note}")


def submit_or_recover(hook: WaveSpeedHook, model: str, inputs: dict[str, Any], *, sync: bool, base64: bool) -> Prediction:
    """``hook.submit``; when its answer is lost, the prediction it created, found by :func:`recover_lost_submit`."""
    started = time.time()
    try:
        return hook.submit(model, inputs, enable_sync_mode=sync, enable_base64_output=base64)
    except WaveSpeedSubmitUncertainError as error:
        return recover_lost_submit(
            hook, error, model=model, inputs=inputs, started=started, ended=time.time(), base64_outputs=base64
        )


def cancel_killed(hook: WaveSpeedHook, prediction_id: str, *, logger: Any = log) -> str | None:
    """``cancel_on_kill`` on a worker. Airflow calls ``on_kill`` in a signal handler that may interrupt the
    task's own request, so the cancel goes through a hook of its own (a new session), with the key the
    task already read."""
    from airflow_wavespeed.hooks.transport import SyncTransport

    own = copy.copy(hook)  # the same limits, and the key when the task read it already
    own._sync = SyncTransport(hook.limits, conn_id=hook.wavespeed_conn_id)  # a session of its own
    return cancel_quietly(own, prediction_id, why="the task was killed; cancel_on_kill=True", logger=logger)


@contextmanager
def cancelled_on_timeout(
    hook: WaveSpeedHook, context: Any, prediction_id: str, *, enabled: bool, retries: int | None
) -> Iterator[None]:
    """Around a wait: with ``enabled`` (``cancel_on_timeout``), a :class:`WaveSpeedTimeoutError` cancels the
    prediction before it is raised on, unless a retry will wait on it (Airflow ≥ 3.3 with retries left: the
    next try resumes the same prediction from the ledger)."""
    try:
        yield
    except WaveSpeedTimeoutError:
        if enabled:
            ti = context["ti"]
            retries_left = int(getattr(ti, "try_number", 1)) <= int(getattr(ti, "max_tries", retries) or 0)
            if context.get("task_state_store") is not None and retries_left:
                log.info("cancel_on_timeout: prediction %s is kept: the next try resumes it", prediction_id)
            else:
                cancel_quietly(hook, prediction_id, why="the task's timeout passed; cancel_on_timeout=True")
        raise


def cancel_quietly(hook: WaveSpeedHook, prediction_id: str, *, why: str, logger: Any = log) -> str | None:
    """Cancel a prediction, best-effort: returns the status WaveSpeed answered, None when the cancel failed.

    Bounded by the hook's :data:`~airflow_wavespeed.hooks.history.CANCEL_SECONDS`; never raises, so the
    error that led here is the one the task reports.
    """
    logger.warning(
        "Cancelling WaveSpeed prediction %s (%s). WaveSpeed does not promise the run stops at once, nor that "
        "it is not billed (partial refunds may apply).",
        prediction_id,
        why,
    )
    try:
        status = hook.cancel_prediction(prediction_id)
    except Exception as cancel_error:  # best-effort: the original error is the one that matters
        logger.warning("Cancelling prediction %s failed: %s", prediction_id, cancel_error)
        return None
    logger.warning("WaveSpeed answered the cancel of prediction %s: %s", prediction_id, status)
    return status


def billed_extras(hook: WaveSpeedHook, prediction: Prediction, quote: float | None) -> dict[str, Any]:
    """``{"billed_usd": ...}`` for the ``prediction`` XCom, beside the quote: what WaveSpeed's billing records
    say a completed prediction cost, or None when they do not say (no route, no record yet, an unreadable
    shape): unknown, never the quote. Asked only where a quote was made (``max_cost_usd``): one more call."""
    if quote is None or not prediction.status.is_success():
        return {}
    try:
        billed = hook.get_billed_cost(prediction.id)
    except WaveSpeedError as error:
        log.info("The billing records of prediction %s could not be read: %s", prediction.id, error)
        billed = None
    if billed is None:
        log.info("What prediction %s cost is unknown (no billing record): billed_usd is null", prediction.id)
    return {"billed_usd": billed}
