"""The hook's calls for recovering and cleaning up: the prediction history, cancel, billing records.

:class:`WaveSpeedHook` inherits :class:`HistoryMixin`; the methods live here because they are read
together (a lost submit found again, a killed task's prediction cancelled, what was really billed) and
because the hook's own module holds the everyday calls.

What WaveSpeed documents about each (README, "Billing safety"):

- the history (``POST /api/v3/predictions``) lists the last 7 days, newest first, for browsing and
  synchronisation: never poll it for a task's status. It is read once, a few pages at most, after a
  submit whose answer was lost;
- a cancel (``DELETE /api/v3/predictions/{id}``, or ``POST /api/v3/predictions/delete``) "may not stop
  generation immediately" and "partial refunds may apply": it promises neither that the run stops nor
  that it is not billed;
- billing records (``POST /api/v3/billings/search``) are seen in WaveSpeed's own clients; their shape is
  unconfirmed, so anything but a number per prediction is "unknown", never the quote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_wavespeed.exceptions import WaveSpeedBadRequestError, WaveSpeedNotFoundError
from airflow_wavespeed.prediction import Prediction
from airflow_wavespeed.utils.validation import (
    check_json,
    finite_number,
    validate_model,
    validate_prediction_id,
)

if TYPE_CHECKING:
    from airflow_wavespeed.hooks.transport import AsyncTransport, Credentials, Parser, T

#: The history's largest page (the docs' limit).
HISTORY_PAGE_SIZE = 100
#: Pages read at most by one lookup: 300 predictions of one model within minutes of a submit.
HISTORY_MAX_PAGES = 3
#: Seconds a cancel may take on the worker, retries included.
CANCEL_SECONDS = 15.0


@dataclass(frozen=True)
class HistoryItem:
    """One prediction as the history lists it, and the inputs it was submitted with when the item says."""

    prediction: Prediction
    created: datetime | None
    input: dict[str, Any] | None


def _items(data: dict[str, Any], message: str) -> list[HistoryItem]:
    """The items of one history page; an item that is not a prediction is left out."""
    items = data.get("items")
    found = []
    for raw in items if isinstance(items, list) else []:
        if not isinstance(raw, dict):
            continue
        try:
            prediction = Prediction.from_data(raw)
        except ValueError:
            continue
        found.append(HistoryItem(prediction, parse_time(raw.get("created_at")), _input_of(raw)))
    return found


def _input_of(raw: dict[str, Any]) -> dict[str, Any] | None:
    value = raw.get("input", raw.get("inputs"))
    return value if isinstance(value, dict) else None


def parse_time(value: Any) -> datetime | None:
    """An API time (``2023-04-01T12:34:56.789Z``) as an aware datetime; None when it is not one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HistoryMixin:
    """History lookup, cancel and billing records, on the hook's transports."""

    if TYPE_CHECKING:
        _async: AsyncTransport

        def _request(self, method: str, path: str, *, context: str, parse: Parser[T], **options: Any) -> T: ...

        async def _acredentials(self, *, refused: Credentials | None = None) -> Credentials: ...

    def find_predictions(
        self, *, model: str, created_after: datetime, created_before: datetime, max_pages: int = HISTORY_MAX_PAGES
    ) -> list[HistoryItem]:
        """The predictions of ``model`` created between the two times, from the history (newest first).

        One bounded lookup, for finding a lost submit again: at most ``max_pages`` pages, stopping at the
        first page that reaches past ``created_after``. The filters are sent (a docs page names them) and
        applied here as well, in case the API ignores them.
        """
        validate_model(model)
        body = {"model": model, "created_after": _iso(created_after), "created_before": _iso(created_before)}
        found: list[HistoryItem] = []
        for page in range(1, max_pages + 1):
            items = self._request(
                "POST",
                "/api/v3/predictions",
                context="look up the prediction history",
                parse=lambda data, message: _items(data, message),
                data=_json({**body, "page": page, "page_size": HISTORY_PAGE_SIZE}),
                attempts=2,
            )
            for item in items:
                if item.prediction.model == model and item.created and created_after <= item.created <= created_before:
                    found.append(item)
            oldest = min((item.created for item in items if item.created), default=None)
            if len(items) < HISTORY_PAGE_SIZE or (oldest is not None and oldest < created_after):
                break
        return found

    def cancel_prediction(self, prediction_id: str, *, timeout: float = CANCEL_SECONDS) -> str:
        """Ask WaveSpeed to cancel a prediction; returns the status it then answers (``cancelled``, or the
        status of one already finished). ``DELETE /api/v3/predictions/{id}``, then the CLI's
        ``POST /api/v3/predictions/delete`` when the first route is not there. Bounded by ``timeout``.

        WaveSpeed promises neither that generation stops at once nor that nothing is billed.
        """
        validate_prediction_id(prediction_id)
        until = time.monotonic() + timeout
        context = f"cancel prediction {prediction_id}"
        try:
            return self._request(
                "DELETE", f"/api/v3/predictions/{prediction_id}", context=context, parse=_status_of, until=until
            )
        except WaveSpeedNotFoundError:
            pass  # no such route (or no such prediction): the CLI's route next
        except WaveSpeedBadRequestError as error:
            if error.http_status != 405:
                raise
        return self._request(
            "POST",
            "/api/v3/predictions/delete",
            context=context,
            parse=_status_of,
            data=_json({"ids": [prediction_id]}),
            until=until,
        )

    async def acancel_prediction(self, prediction_id: str) -> str:
        """:meth:`cancel_prediction` for the triggerer (``DELETE`` only; the caller bounds its time)."""
        validate_prediction_id(prediction_id)
        credentials = await self._acredentials()
        return await self._async.delete(
            f"/api/v3/predictions/{prediction_id}",
            credentials,
            context=f"cancel prediction {prediction_id}",
            parse=_status_of,
        )

    def get_billed_cost(self, prediction_id: str) -> float | None:
        """What WaveSpeed billed for a prediction, in USD, from its billing records; None when they do not
        say (no route, no record yet, a shape this version cannot read). Never the quote."""
        validate_prediction_id(prediction_id)
        try:
            records = self._request(
                "POST",
                "/api/v3/billings/search",
                context=f"billing records of {prediction_id}",
                parse=lambda data, message: data.get("items", data.get("records")),
                data=_json({"prediction_uuids": [prediction_id]}),
                attempts=2,
            )
        except (WaveSpeedNotFoundError, WaveSpeedBadRequestError):
            return None
        return _billed_amount(records, prediction_id)

    async def aget_billed_cost(self, prediction_id: str) -> float | None:
        """:meth:`get_billed_cost` for the triggerer, for a task that ends there (the caller bounds its time)."""
        validate_prediction_id(prediction_id)
        credentials = await self._acredentials()
        try:
            records = await self._async.search(
                "/api/v3/billings/search",
                credentials,
                context=f"billing records of {prediction_id}",
                parse=lambda data, message: data.get("items", data.get("records")),
                query={"prediction_uuids": [prediction_id]},
            )
        except (WaveSpeedNotFoundError, WaveSpeedBadRequestError):
            return None
        return _billed_amount(records, prediction_id)


def _billed_amount(records: Any, prediction_id: str) -> float | None:
    """The sum of a prediction's billing records, or None when they do not say (none, or any unreadable)."""
    amounts = [
        finite_number(record.get("amount"))
        for record in (records if isinstance(records, list) else [])
        if isinstance(record, dict) and record.get("prediction_uuid", prediction_id) == prediction_id
    ]
    if not amounts or any(amount is None or amount < 0 for amount in amounts):
        return None
    return round(sum(a for a in amounts if a is not None), 6)


def _status_of(data: dict[str, Any], message: str) -> str:
    """The status a cancel answered: the prediction's, or that of the first listed item."""
    items = data.get("items")
    if isinstance(items, list) and items and isinstance(items[0], dict):
        data = items[0]
    status = data.get("status")
    return str(status)[:50] if isinstance(status, str) and status else "unknown"


def _json(body: dict[str, Any]) -> bytes:
    return check_json(body, argument="body")
