"""What every route of the emulator shares: the state's app key, the answer envelope, errors, auth."""

from __future__ import annotations

import contextvars
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from airflow_wavespeed.emulator.config import EmulatorConfig
from airflow_wavespeed.emulator.state import EmulatorState

_READ_CHUNK = 1 << 16
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Trace:
    """What the logging middleware learns from a handler about the request it served."""

    prediction_id: str | None = None
    dropped: bool = False


TRACE: contextvars.ContextVar[Trace | None] = contextvars.ContextVar(
    "wavespeed_emulator_trace", default=None
)


class BadRequest(Exception):
    """Invalid model input: answered as 400 with the message."""


STATE_KEY = web.AppKey("wavespeed_emulator_state", EmulatorState)


def note_prediction(prediction_id: str) -> None:
    trace = TRACE.get()
    if trace is not None:
        trace.prediction_id = prediction_id


def drop(request: web.Request) -> web.Response:
    """Close the connection without answering; the client sees a disconnect, not an HTTP error."""
    trace = TRACE.get()
    if trace is not None:
        trace.dropped = True
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)  # never sent: the transport is closed


def envelope(data: Any, code: int = 200, message: str = "success", status: int = 200) -> web.Response:
    return web.json_response({"code": code, "message": message, "data": data}, status=status)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status, headers=headers)


def rate_limited(config: EmulatorConfig) -> web.Response:
    headers = {"Retry-After": config.retry_after} if config.retry_after is not None else None
    return error(429, "Rate limit exceeded", headers)


def server_error(status: int, config: EmulatorConfig) -> web.Response:
    """5xx the way they look in the wild: JSON from the app, HTML from the gateway.

    A 503 carries ``Retry-After`` when ``unavailable_retry_after`` is set, as a service in maintenance does.
    """
    if status == 500:
        return error(500, "Internal server error")
    if status == 503:
        retry_after = config.unavailable_retry_after
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        return error(503, "Service temporarily unavailable", headers)
    reason = "Bad Gateway" if status == 502 else "Gateway Time-out"
    html = (
        f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"
    )
    return web.Response(status=status, text=html, content_type="text/html")


def check_auth(request: web.Request) -> web.Response | None:
    """401 unless the bearer token is the configured key (or any non-empty one without a key)."""
    state = request.app[STATE_KEY]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    valid = scheme.lower() == "bearer" and bool(token)
    if valid and state.api_key is not None:
        valid = hmac.compare_digest(token.encode("utf-8"), state.api_key.encode("utf-8"))
    return None if valid else error(401, "Unauthorized: invalid or missing API key")


def base_url(request: web.Request) -> str:
    configured = request.app[STATE_KEY].config.public_base_url
    return configured.rstrip("/") if configured else str(request.url.origin())


async def json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("Request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body


def optional_bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{key} must be a boolean")
    return value


def optional_choice(body: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise BadRequest(f"{key} must be one of: {', '.join(allowed)}")
    return value


async def read_limited(read_chunk: Callable[[int], Awaitable[bytes]], limit: int) -> bytes | None:
    """Read a stream chunk by chunk; None once it grows past `limit` (answered as 413)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await read_chunk(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(limit: int) -> web.Response:
    return error(413, f"File too large: the limit is {limit} bytes")


