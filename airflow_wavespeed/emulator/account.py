"""Account and catalog routes: the balance, both price quotes, and the model catalog."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from airflow_wavespeed.emulator import catalog
from airflow_wavespeed.emulator.common import STATE_KEY, check_auth, envelope, error


def register(router: web.UrlDispatcher) -> None:
    """Add the balance, price and catalog routes."""
    router.add_get("/api/v3/balance", _balance)
    router.add_post("/api/v3/model/pricing", _pricing)
    router.add_post("/api/v3/model/price", _price)
    router.add_get("/api/v3/models", _models)


async def _balance(request: web.Request) -> web.StreamResponse:
    """GET /api/v3/balance: the cheap call integrations use to test a key."""
    denied = check_auth(request)
    if denied is not None:
        return denied
    return envelope({"balance": request.app[STATE_KEY].config.balance})


async def _quote(request: web.Request, endpoint: str) -> tuple[str, float | None] | web.Response:
    """The checks both quotes share: auth, the ``price_endpoints`` switch, a ``{"model_id", "inputs"}`` body."""
    denied = check_auth(request)
    if denied is not None:
        return denied
    state = request.app[STATE_KEY]
    if not state.config.price_endpoint_enabled(endpoint):
        return error(404, "Not found")
    try:
        body = await request.json()
    except ValueError:
        return error(400, "body must be JSON")
    model = body.get("model_id") if isinstance(body, dict) else None
    inputs = body.get("inputs", {}) if isinstance(body, dict) else None
    if not isinstance(model, str) or not model or not isinstance(inputs, dict):
        return error(400, "model_id (a model path) and inputs (an object) are required")
    return model, catalog.price(model, inputs, state.config.price_of(model))


async def _pricing(request: web.Request) -> web.StreamResponse:
    """POST /api/v3/model/pricing ``{"model_id", "inputs"}``: the run's ``unit_price`` in USD, billing
    nothing (what older clients call)."""
    quoted = await _quote(request, "pricing")
    if isinstance(quoted, web.Response):
        return quoted
    model, price = quoted
    data: dict[str, Any] = {"model_id": model, "currency": "USD"}
    if price is not None:
        data["unit_price"] = price
    return envelope(data)


async def _price(request: web.Request) -> web.StreamResponse:
    """POST /api/v3/model/price: ``price``, ``discounted_price`` and ``discount_rate`` (what WaveSpeed's MCP
    server and CLI call); a model without a price answers none of the three."""
    quoted = await _quote(request, "price")
    if isinstance(quoted, web.Response):
        return quoted
    model, price = quoted
    data: dict[str, Any] = {"model_id": model, "currency": "USD"}
    if price is not None:
        rate = request.app[STATE_KEY].config.price_discount_rate
        data |= {"price": price, "discounted_price": round(price * (1 - rate), 6), "discount_rate": rate}
    return envelope(data)


async def _models(request: web.Request) -> web.StreamResponse:
    """GET /api/v3/models: every model's kind, base price and input JSON Schema."""
    denied = check_auth(request)
    if denied is not None:
        return denied
    return envelope(catalog.entries(request.app[STATE_KEY].config.price_usd))
