"""The aiohttp application that emulates the WaveSpeed v3 REST API.

It answers like the real service (same envelope, statuses, validation and error bodies) and can
inject the faults a robust client must survive: rate limits, 5xx, malformed bodies, dropped
connections and the dangerous "created, then the answer was lost" submits. Every served request is
logged (never headers or bodies: they hold the API key and images) so tests can assert how a client
behaved, e.g. that it never re-submitted.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import html
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import web

from airflow_wavespeed.emulator import images
from airflow_wavespeed.emulator.config import EmulatorConfig
from airflow_wavespeed.emulator.state import (
    EmulatorState,
    Prediction,
    PredictionSpec,
    RequestRecord,
    safe_filename,
)

EDIT_MODEL = "openai/gpt-image-2/edit"
MAX_IMAGES = 16
MAX_PROMPT_CHARS = 32000
RESOLUTIONS = ("1k", "2k", "4k")
QUALITIES = ("low", "medium", "high")
OUTPUT_FORMATS = ("jpeg", "png")
SYNC_TIMEOUT_MESSAGE = "Sync mode timed out"
#: A prompt holding this is created at once, then answered after ``slow_submit_seconds``.
SLOW_SUBMIT_MARKER = "[slow-submit]"

_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)
_READ_CHUNK = 1 << 16
_RESERVED_MODEL_PREFIXES = ("predictions", "media", "balance")
_UNSUPPORTED_FILE = "Unsupported file type: only JPG, PNG, WebP, GIF, BMP and TIFF images are accepted"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _Trace:
    """What the logging middleware learns from a handler about the request it served."""

    prediction_id: str | None = None
    dropped: bool = False


_TRACE: contextvars.ContextVar[_Trace | None] = contextvars.ContextVar(
    "wavespeed_emulator_trace", default=None
)


class _BadRequest(Exception):
    """Invalid model input: answered as 400 with the message."""


STATE_KEY = web.AppKey("wavespeed_emulator_state", EmulatorState)


def create_app(
    config: EmulatorConfig | None = None, api_key: str | None = None, *, state: EmulatorState | None = None
) -> web.Application:
    """Build the emulator application; its state is ``app[STATE_KEY]``.

    Passing an existing ``state`` (instead of config/api_key) serves it again after a restart.
    """
    state = state if state is not None else EmulatorState(config, api_key)
    app = web.Application(middlewares=[_log_requests], client_max_size=16 * 1024 * 1024)
    app[STATE_KEY] = state
    app.cleanup_ctx.append(_client_session)
    router = app.router
    router.add_get("/_emulator/requests", _control_requests)
    router.add_get("/_emulator/stats", _control_stats)
    router.add_get("/_emulator/config", _control_config)
    router.add_post("/_emulator/config", _control_config)
    router.add_post("/_emulator/reset", _control_reset)
    router.add_get("/_emulator/predictions", _control_predictions)
    router.add_get("/api/v3/balance", _balance)
    router.add_post("/api/v3/model/pricing", _pricing)
    router.add_post("/api/v3/media/upload/binary", _upload_binary)
    router.add_post("/api/v3/media/uploads", _upload_ticket)
    router.add_put("/upload/{token}", _upload_put)
    router.add_get("/api/v3/predictions/{id}/result", _result)
    router.add_get("/api/v3/predictions/{id}", _result)
    from airflow_wavespeed.emulator.history import register_history_routes  # it imports this module

    register_history_routes(router)  # history, cancel, billing records: before the catch-all submit route
    router.add_post("/api/v3/{model:.+}", _submit)
    router.add_get("/api/v3/{tail:.*}", _api_not_found)
    router.add_get("/media/{upload_id}/{filename}", _media)
    router.add_get("/outputs/{id}/{filename}", _output)
    router.add_get("/predictions/{id}", _prediction_page)
    return app


def get_state(app: web.Application) -> EmulatorState:
    """The state object behind an app made by create_app."""
    return app[STATE_KEY]


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    """One shared HTTP client for input fetches; background work is stopped on shutdown."""
    state = app[STATE_KEY]
    state.session = aiohttp.ClientSession(trust_env=False)
    try:
        yield
    finally:
        state.cancel_work()
        session, state.session = state.session, None
        await session.close()


# -- middleware and helpers -------------------------------------------------------------------------


@web.middleware
async def _log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record method, path, status and prediction id of every API request (not control or web pages)."""
    if request.path.startswith(("/_emulator/", "/predictions/")):
        return await handler(request)
    trace = _Trace()
    token = _TRACE.set(trace)
    started = time.monotonic()
    generation = request.app[STATE_KEY].generation
    status: int | Literal["dropped"] = 500
    try:
        response = await handler(request)
        status = "dropped" if trace.dropped else response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = "dropped"
        raise
    finally:
        _TRACE.reset(token)
        request.app[STATE_KEY].record(
            RequestRecord(request.method, request.path, status, trace.prediction_id, started), generation
        )


def _note_prediction(prediction_id: str) -> None:
    trace = _TRACE.get()
    if trace is not None:
        trace.prediction_id = prediction_id


def _drop(request: web.Request) -> web.Response:
    """Close the connection without answering; the client sees a disconnect, not an HTTP error."""
    trace = _TRACE.get()
    if trace is not None:
        trace.dropped = True
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)  # never sent: the transport is closed


def _envelope(data: Any, code: int = 200, message: str = "success", status: int = 200) -> web.Response:
    return web.json_response({"code": code, "message": message, "data": data}, status=status)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status, headers=headers)


def _rate_limited(config: EmulatorConfig) -> web.Response:
    headers = {"Retry-After": config.retry_after} if config.retry_after is not None else None
    return _error(429, "Rate limit exceeded", headers)


def _server_error(status: int, config: EmulatorConfig) -> web.Response:
    """5xx the way they look in the wild: JSON from the app, HTML from the gateway.

    A 503 carries ``Retry-After`` when ``unavailable_retry_after`` is set, as a service in maintenance does.
    """
    if status == 500:
        return _error(500, "Internal server error")
    if status == 503:
        retry_after = config.unavailable_retry_after
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        return _error(503, "Service temporarily unavailable", headers)
    reason = "Bad Gateway" if status == 502 else "Gateway Time-out"
    html = (
        f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"
    )
    return web.Response(status=status, text=html, content_type="text/html")


def _check_auth(request: web.Request) -> web.Response | None:
    """401 unless the bearer token is the configured key (or any non-empty one without a key)."""
    state = request.app[STATE_KEY]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    valid = scheme.lower() == "bearer" and bool(token)
    if valid and state.api_key is not None:
        valid = hmac.compare_digest(token.encode("utf-8"), state.api_key.encode("utf-8"))
    return None if valid else _error(401, "Unauthorized: invalid or missing API key")


def _base_url(request: web.Request) -> str:
    configured = request.app[STATE_KEY].config.public_base_url
    return configured.rstrip("/") if configured else str(request.url.origin())


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _BadRequest("Request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _BadRequest("Request body must be a JSON object")
    return body


def _optional_bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _BadRequest(f"{key} must be a boolean")
    return value


def _optional_choice(body: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise _BadRequest(f"{key} must be one of: {', '.join(allowed)}")
    return value


def _parse_edit(body: dict[str, Any]) -> PredictionSpec:
    """Validate openai/gpt-image-2/edit inputs like the real API (400 with a message)."""
    urls = body.get("images")
    if urls is None:
        raise _BadRequest("images is required")
    if not isinstance(urls, list):
        raise _BadRequest("images must be a list of image URLs")
    if not urls:
        raise _BadRequest("images must contain at least 1 item")
    if len(urls) > MAX_IMAGES:
        raise _BadRequest(f"images must contain at most {MAX_IMAGES} items")
    for index, url in enumerate(urls):
        if not isinstance(url, str) or not url.strip():
            raise _BadRequest(f"images[{index}] must be a non-empty string")
    prompt = body.get("prompt")
    if prompt is None:
        raise _BadRequest("prompt is required")
    if not isinstance(prompt, str):
        raise _BadRequest("prompt must be a string")
    if not prompt.strip():
        raise _BadRequest("prompt must not be empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise _BadRequest(f"prompt must be at most {MAX_PROMPT_CHARS} characters")
    aspect_ratio = _optional_choice(body, "aspect_ratio", images.ASPECT_RATIOS)
    _optional_choice(body, "resolution", RESOLUTIONS)
    _optional_choice(body, "quality", QUALITIES)
    output_format = _optional_choice(body, "output_format", OUTPUT_FORMATS) or "png"
    return PredictionSpec(
        prompt=prompt,
        image_urls=[url.strip() for url in urls],
        aspect_ratio=aspect_ratio,
        output_format=output_format,
        sync=_optional_bool(body, "enable_sync_mode"),
        base64_output=_optional_bool(body, "enable_base64_output"),
        generated=False,
    )


def _parse_generic(body: dict[str, Any]) -> PredictionSpec:
    """Any other model: lenient (model vocabularies differ), but the shared flags are checked."""
    prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
    urls: list[str] = []
    if isinstance(body.get("image"), str) and body["image"]:
        urls.append(body["image"])
    if isinstance(body.get("images"), list):
        urls.extend(url for url in body["images"] if isinstance(url, str) and url)
    ratio = body.get("aspect_ratio")
    fmt = body.get("output_format")
    return PredictionSpec(
        prompt=str(prompt),
        image_urls=urls,
        aspect_ratio=ratio if ratio in images.ASPECT_RATIOS else "1:1",
        output_format="jpeg" if fmt in ("jpeg", "jpg") else "png",
        sync=_optional_bool(body, "enable_sync_mode"),
        base64_output=_optional_bool(body, "enable_base64_output"),
        generated=True,
    )


async def _read_limited(read_chunk: Callable[[int], Awaitable[bytes]], limit: int) -> bytes | None:
    """Read a stream chunk by chunk; None once it grows past `limit` (answered as 413)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await read_chunk(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> web.Response:
    return _error(413, f"File too large: the limit is {limit} bytes")


# -- API handlers -----------------------------------------------------------------------------------


async def _submit(request: web.Request) -> web.StreamResponse:
    """POST /api/v3/{model}: create a prediction (or refuse to, for auth/rate-limit/validation)."""
    model = request.match_info["model"].strip("/")
    if model.split("/")[0] in _RESERVED_MODEL_PREFIXES:
        return _error(405, "Method not allowed")
    state = request.app[STATE_KEY]
    config = state.config
    state.count_submit()
    denied = _check_auth(request)
    if denied is not None:
        return denied
    if config.submit_429_count > 0:
        config.submit_429_count -= 1
        return _rate_limited(config)
    if state.roll(config.submit_429_rate):
        return _rate_limited(config)
    try:
        body = await _json_object(request)
        spec = _parse_edit(body) if model == EDIT_MODEL else _parse_generic(body)
        if spec.base64_output and request.query.get("webhook"):
            raise _BadRequest("enable_base64_output cannot be used together with a webhook")
    except _BadRequest as exc:
        return _error(400, str(exc))
    prediction = state.create_prediction(model, spec, _base_url(request))
    prediction.input = body  # what history items show (emulator/history.py)
    _note_prediction(prediction.id)
    if SLOW_SUBMIT_MARKER in spec.prompt:
        # Created (and billed), then slow to answer: a client that dies now never learns the id.
        await asyncio.sleep(config.slow_submit_seconds)
    if state.roll(config.submit_drop_rate):
        return _drop(request)
    if state.roll(config.submit_5xx_rate):
        return _server_error(500, config)
    if not prediction.sync:
        return _envelope(prediction.data())
    if state.roll(config.sync_504_rate):
        prediction.status = "processing"
        return _server_error(504, config)
    if await state.wait_terminal(prediction, config.sync_timeout_seconds):
        return _envelope(prediction.data())
    data = prediction.data()
    data["error"] = SYNC_TIMEOUT_MESSAGE
    return _envelope(data, code=5004, message=SYNC_TIMEOUT_MESSAGE, status=config.sync_timeout_http_status)


async def _result(request: web.Request) -> web.StreamResponse:
    """GET /api/v3/predictions/{id}[/result]: the poll, where most faults are injected."""
    state = request.app[STATE_KEY]
    config = state.config
    state.count_poll()
    denied = _check_auth(request)
    if denied is not None:
        return denied
    prediction_id = request.match_info["id"]
    _note_prediction(prediction_id)
    if state.roll(config.slow_rate):
        await asyncio.sleep(config.slow_seconds)
    if state.roll(config.drop_rate):
        return _drop(request)
    if state.roll(config.poll_429_rate):
        return _rate_limited(config)
    if state.roll(config.poll_5xx_rate):
        return _server_error(state.choice((500, 502, 503, 504)), config)
    prediction = state.get_prediction(prediction_id)
    if state.roll(config.malformed_rate):
        return _malformed(state, prediction, prediction_id)
    if prediction is None:
        return _error(404, "prediction not found")
    prediction.polls += 1
    await state.advance(prediction)
    return _envelope(prediction.data())


def _malformed(state: EmulatorState, prediction: Prediction | None, prediction_id: str) -> web.Response:
    """A 200 whose body a careless client would choke on."""
    data = prediction.data() if prediction is not None else {"id": prediction_id}
    variant = state.choice((0, 1, 2, 3))
    if variant == 0:
        return web.Response(text="upstream connect error or disconnect/reset before headers", status=200)
    if variant == 1:
        text = json.dumps({"code": 200, "message": "success", "data": data})
        return web.Response(text=text[: len(text) // 2], content_type="application/json")
    if variant == 2:
        return web.json_response({"code": 200, "message": "success"})
    data.pop("status", None)
    return _envelope(data)


async def _balance(request: web.Request) -> web.StreamResponse:
    """GET /api/v3/balance: the cheap call integrations use to test a key."""
    denied = _check_auth(request)
    if denied is not None:
        return denied
    return _envelope({"balance": request.app[STATE_KEY].config.balance})


async def _pricing(request: web.Request) -> web.StreamResponse:
    """POST /api/v3/model/pricing ``{"model_id", "inputs"}``: the run's ``unit_price`` in USD, billing nothing."""
    denied = _check_auth(request)
    if denied is not None:
        return denied
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "body must be JSON")
    model = body.get("model_id") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model or not isinstance(body.get("inputs", {}), dict):
        return _error(400, "model_id (a model path) and inputs (an object) are required")
    price = request.app[STATE_KEY].config.price_of(model)
    data: dict[str, Any] = {"model_id": model, "currency": "USD"}
    if price is not None:
        data["unit_price"] = price
    return _envelope(data)


async def _upload_binary(request: web.Request) -> web.StreamResponse:
    """POST /api/v3/media/upload/binary: multipart field `file`, read as a stream with a size cap."""
    denied = _check_auth(request)
    if denied is not None:
        return denied
    state = request.app[STATE_KEY]
    if state.roll(state.config.upload_5xx_rate):
        return _server_error(503, state.config)
    if not request.content_type.startswith("multipart/"):
        return _error(400, "Expected multipart/form-data with a 'file' field")
    limit = state.config.max_upload_bytes
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            return _error(400, "Missing form field 'file'")
        if isinstance(part, aiohttp.BodyPartReader) and part.name == "file":
            break
        await part.release()
    data = await _read_limited(part.read_chunk, limit)
    if data is None:
        return _too_large(limit)
    kind = images.detect_image_type(data)
    if kind is None:
        return _error(400, _UNSUPPORTED_FILE)
    path = state.store_upload(data, kind, part.filename)
    filename = path.rsplit("/", 1)[-1]
    return _envelope(
        {"type": "image", "download_url": _base_url(request) + path, "filename": filename, "size": len(data)}
    )


async def _upload_ticket(request: web.Request) -> web.StreamResponse:
    """POST /api/v3/media/uploads: the official SDK's flow, a ticket then a presigned-style PUT."""
    denied = _check_auth(request)
    if denied is not None:
        return denied
    state = request.app[STATE_KEY]
    if state.roll(state.config.upload_5xx_rate):
        return _server_error(503, state.config)
    try:
        body = await _json_object(request)
    except _BadRequest as exc:
        return _error(400, str(exc))
    filename, size, content_type = body.get("filename"), body.get("size"), body.get("content_type")
    if not isinstance(filename, str) or not filename.strip():
        return _error(400, "filename is required")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return _error(400, "size must be a non-negative integer")
    limit = state.config.max_upload_bytes
    if size > limit:
        return _too_large(limit)
    kinds = {mime: kind for kind, mime in images.CONTENT_TYPES.items()} | {"image/jpg": "jpeg"}
    if content_type is not None and content_type not in kinds:
        return _error(400, _UNSUPPORTED_FILE)
    token, ticket = state.add_ticket(safe_filename(filename, kinds.get(content_type or "", "png")))
    base = _base_url(request)
    return _envelope(
        {
            "upload": {
                "method": "PUT",
                "url": f"{base}/upload/{token}",
                "headers": {"Content-Type": content_type or "application/octet-stream"},
            },
            "download_url": f"{base}/media/{ticket.upload_id}/{ticket.filename}",
            "filename": ticket.filename,
            "size": size,
            "type": "image",
        }
    )


async def _upload_put(request: web.Request) -> web.StreamResponse:
    """PUT /upload/{token}: receive the bytes of a ticketed upload (no auth, like a presigned URL)."""
    state = request.app[STATE_KEY]
    token = request.match_info["token"]
    ticket = state.take_ticket(token)
    if ticket is None:
        return _error(404, "upload ticket not found")
    limit = state.config.max_upload_bytes
    data = await _read_limited(request.content.read, limit)
    if data is None:
        return _too_large(limit)
    kind = images.detect_image_type(data)
    if kind is None:
        return _error(400, _UNSUPPORTED_FILE)
    state.store_upload(data, kind, ticket.filename, upload_id=ticket.upload_id)
    state.drop_ticket(token)
    return web.Response(status=200)


async def _api_not_found(request: web.Request) -> web.StreamResponse:
    denied = _check_auth(request)
    return denied if denied is not None else _error(404, "Not found")


# -- file routes (unauthenticated, like a CDN) ------------------------------------------------------


async def _media(request: web.Request) -> web.StreamResponse:
    """GET /media/{id}/{filename}: an uploaded file."""
    stored = request.app[STATE_KEY].get_upload(
        request.match_info["upload_id"], request.match_info["filename"]
    )
    if stored is None:
        return _error(404, "file not found")
    return web.Response(body=stored.data, content_type=stored.content_type)


async def _output(request: web.Request) -> web.StreamResponse:
    """GET /outputs/{id}/0.{ext}: an output image, padded and streamed when large_output_bytes asks."""
    state = request.app[STATE_KEY]
    prediction_id = request.match_info["id"]
    _note_prediction(prediction_id)
    data = state.local_file(request.path)
    prediction = state.get_prediction(prediction_id)
    if data is None or prediction is None:
        return _error(404, "file not found")
    content_type = images.CONTENT_TYPES[prediction.output_format]
    total = state.config.large_output_bytes
    if total <= len(data):
        return web.Response(body=data, content_type=content_type)
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.content_length = total
    await response.prepare(request)
    await response.write(data)
    remaining = total - len(data)
    zeros = memoryview(_ZEROS)
    while remaining > 0:
        size = min(remaining, _CHUNK)
        await response.write(zeros[:size])
        remaining -= size
    await response.write_eof()
    return response


# -- control endpoints (unauthenticated, not logged) ------------------------------------------------


async def _control_requests(request: web.Request) -> web.StreamResponse:
    return web.json_response([entry.to_dict() for entry in request.app[STATE_KEY].requests])


async def _control_stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE_KEY].stats())


async def _control_config(request: web.Request) -> web.StreamResponse:
    """GET answers the config; POST applies a JSON object of field changes first (all or nothing)."""
    state = request.app[STATE_KEY]
    if request.method == "POST":
        try:
            changes = await _json_object(request)
            state.config.update(changes)
        except (_BadRequest, ValueError) as exc:
            return _error(400, str(exc))
        if "seed" in changes:
            state.reseed()
    return web.json_response(state.config.to_dict())


async def _control_reset(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.reset()
    return web.json_response({"reset": True, "config": state.config.to_dict()})


async def _prediction_page(request: web.Request) -> web.StreamResponse:
    """GET /predictions/{id}: a keyless, read-only web page of one prediction, what the task's extra link
    opens against the emulator (the real API's result URL needs the key; WaveSpeed's site has a page)."""
    prediction = request.app[STATE_KEY].get_prediction(request.match_info["id"])
    if prediction is None:
        return web.Response(status=404, text="No such prediction on this emulator.", content_type="text/plain")
    e = html.escape

    def figures(urls: list[str]) -> str:
        shown = [url for url in urls if url.startswith(("http://", "https://"))]
        if not shown:
            return "<p>none</p>" if not urls else "<p>(base64 outputs: not shown)</p>"
        return "".join(f'<a href="{e(url)}"><img src="{e(url)}" alt="" style="max-width:45%;margin:4px"></a>' for url in shown)

    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>Prediction {e(prediction.id)}</title></head>
<body style="font-family:sans-serif;max-width:960px;margin:24px auto">
<h1>Prediction <code>{e(prediction.id)}</code></h1>
<p>Status: <b>{e(prediction.status)}</b>{f" ({e(prediction.error)})" if prediction.error else ""} · model {e(prediction.model)}
· created {e(prediction.created_at)} · served by the WaveSpeed emulator</p>
<h2>Prompt</h2><p>{e(prediction.prompt)}</p>
<h2>Inputs</h2>{figures(prediction.image_urls)}
<h2>Outputs</h2>{figures(prediction.outputs)}
</body></html>"""
    return web.Response(text=body, content_type="text/html")


async def _control_predictions(request: web.Request) -> web.StreamResponse:
    """A summary of every prediction (id, model, status, polls, error), for benchmarks."""
    summaries = [
        {"id": p.id, "model": p.model, "status": p.status, "polls": p.polls, "error": p.error, "prompt": p.prompt}
        for p in request.app[STATE_KEY].predictions.values()
    ]
    return web.json_response(summaries)
