"""The emulator's prediction history, cancel and billing records: what a client uses to recover.

- ``POST /api/v3/predictions`` ``{"page", "page_size"}`` (both required, ``page_size`` at most 100;
  optional filters ``model``, ``status``, ``created_after``, ``created_before`` as ISO-8601 times):
  ``data.items`` newest first, ``data.page``, ``data.page_size``, ``data.total``. An item is the
  prediction as its result answers it, plus ``input`` (the submitted body) unless
  ``history_includes_input`` is off: whether the real API's items carry it is unconfirmed.
- ``DELETE /api/v3/predictions/{id}`` and ``POST /api/v3/predictions/delete`` ``{"ids": [...]}``: cancel
  a prediction that has not finished (it then answers ``cancelled``); a finished one stays as it is.
- ``POST /api/v3/billings/search`` ``{"prediction_uuids": [...]}``: one record per billed prediction,
  ``{"prediction_uuid", "amount", "currency", "created_at"}``; 404 when ``billing_records`` is off.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from airflow_wavespeed.emulator.common import (
    STATE_KEY,
    BadRequest,
    check_auth,
    envelope,
    error,
    json_object,
    note_prediction,
)
from airflow_wavespeed.emulator.state import Prediction

MAX_PAGE_SIZE = 100


def register_history_routes(router: web.UrlDispatcher) -> None:
    """Add the routes; call before the catch-all submit route (``POST /api/v3/{model}``)."""
    router.add_post("/api/v3/predictions", _history)
    router.add_post("/api/v3/predictions/delete", _delete_many)
    router.add_delete("/api/v3/predictions/{id}", _delete_one)
    router.add_post("/api/v3/billings/search", _billings)


def _time(body: dict[str, Any], key: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{key} must be an ISO-8601 time") from None


def _item(prediction: Prediction, with_input: bool) -> dict[str, Any]:
    item = prediction.data()
    if with_input:
        item["input"] = dict(prediction.input)
    return item


async def _history(request: web.Request) -> web.StreamResponse:
    denied = check_auth(request)
    if denied is not None:
        return denied
    state = request.app[STATE_KEY]
    try:
        body = await json_object(request)
        page, size = body.get("page"), body.get("page_size")
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (page, size)):
            raise BadRequest("page and page_size are required integers")
        assert isinstance(page, int) and isinstance(size, int)
        if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
            raise BadRequest(f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}")
        after, before = _time(body, "created_after"), _time(body, "created_before")
    except BadRequest as exc:
        return error(400, str(exc))
    model, status = body.get("model"), body.get("status")
    chosen = []
    for prediction in state.history():
        created = datetime.fromisoformat(prediction.created_at.replace("Z", "+00:00"))
        if model and prediction.model != model or status and prediction.status != status:
            continue
        if after is not None and created < after or before is not None and created > before:
            continue
        chosen.append(prediction)
    shown = chosen[(page - 1) * size : page * size]
    with_input = state.config.history_includes_input
    return envelope(
        {"page": page, "page_size": size, "total": len(chosen), "items": [_item(p, with_input) for p in shown]}
    )


async def _delete_one(request: web.Request) -> web.StreamResponse:
    denied = check_auth(request)
    if denied is not None:
        return denied
    prediction_id = request.match_info["id"]
    note_prediction(prediction_id)
    prediction = request.app[STATE_KEY].cancel_prediction(prediction_id)
    if prediction is None:
        return error(404, "prediction not found")
    return envelope(prediction.data())


async def _delete_many(request: web.Request) -> web.StreamResponse:
    denied = check_auth(request)
    if denied is not None:
        return denied
    try:
        ids = (await json_object(request)).get("ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise BadRequest("ids must be a non-empty list of prediction ids")
    except BadRequest as exc:
        return error(400, str(exc))
    state = request.app[STATE_KEY]
    note_prediction(ids[0])
    found = [p for p in (state.cancel_prediction(i) for i in ids) if p is not None]
    return envelope({"ids": [p.id for p in found], "items": [p.data() for p in found]})


async def _billings(request: web.Request) -> web.StreamResponse:
    denied = check_auth(request)
    if denied is not None:
        return denied
    state = request.app[STATE_KEY]
    if not state.config.billing_records:
        return error(404, "Not found")
    try:
        ids = (await json_object(request)).get("prediction_uuids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadRequest("prediction_uuids must be a list of prediction ids")
    except BadRequest as exc:
        return error(400, str(exc))
    records = []
    for prediction_id in ids:
        prediction = state.get_prediction(prediction_id)
        if prediction is not None and prediction.billed_usd is not None:
            records.append(
                {
                    "prediction_uuid": prediction.id,
                    "amount": prediction.billed_usd,
                    "currency": "USD",
                    "created_at": prediction.created_at,
                }
            )
    return envelope({"items": records, "total": len(records)})
