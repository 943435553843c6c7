"""The aiohttp application that emulates the WaveSpeed v3 REST API.

It answers like the real service (same envelope, statuses, validation and error bodies) and can
inject the faults a robust client must survive: rate limits, 5xx, malformed bodies, dropped
connections and the dangerous "created, then the answer was lost" submits. Every served request is
logged (never headers or bodies: they hold the API key and images) so tests can assert how a client
behaved, e.g. that it never re-submitted.

Routes live by idea: submit, result and outputs here; balance, price quotes and the catalog in
``account.py``; uploads in ``uploads.py``; control routes in ``control.py``. Each module's ``register``
adds its routes: another group of routes is one more call in :func:`create_app`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import aiohttp
from aiohttp import web

from airflow_wavespeed.emulator import account, catalog, control, images, media, uploads
from airflow_wavespeed.emulator.catalog import EDIT_MODEL
from airflow_wavespeed.emulator.common import (
    STATE_KEY,
    TRACE,
    BadRequest,
    Handler,
    Trace,
    base_url,
    check_auth,
    drop,
    envelope,
    error,
    json_object,
    note_prediction,
    optional_bool,
    optional_choice,
    rate_limited,
    server_error,
)
from airflow_wavespeed.emulator.config import EmulatorConfig
from airflow_wavespeed.emulator.state import EmulatorState, Prediction, PredictionSpec, RequestRecord

__all__ = ["EDIT_MODEL", "STATE_KEY", "create_app", "get_state"]

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
_RESERVED_MODEL_PREFIXES = ("predictions", "media", "balance", "model", "models")


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
    control.register(router)
    account.register(router)
    uploads.register(router)
    router.add_get("/api/v3/predictions/{id}/result", _result)
    router.add_get("/api/v3/predictions/{id}", _result)
    router.add_post("/api/v3/{model:.+}", _submit)
    router.add_get("/api/v3/{tail:.*}", _api_not_found)
    router.add_get("/outputs/{id}/{filename}", _output)
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


@web.middleware
async def _log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record method, path, status and prediction id of every API request (not control or web pages)."""
    if request.path.startswith(("/_emulator/", "/predictions/")):
        return await handler(request)
    trace = Trace()
    token = TRACE.set(trace)
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
        TRACE.reset(token)
        request.app[STATE_KEY].record(
            RequestRecord(request.method, request.path, status, trace.prediction_id, started), generation
        )


def _parse_submit(model: str, body: dict[str, Any]) -> PredictionSpec:
    """The edit by its own rules, a listed model by its schema, any other by the kind its name says."""
    if model == EDIT_MODEL:
        return _parse_edit(body)
    listed = catalog.find(model)
    return _parse_listed(listed, body) if listed is not None else _parse_generic(body, catalog.kind_of(model))


def _parse_edit(body: dict[str, Any]) -> PredictionSpec:
    """Validate openai/gpt-image-2/edit inputs like the real API (400 with a message)."""
    urls = body.get("images")
    if urls is None:
        raise BadRequest("images is required")
    if not isinstance(urls, list):
        raise BadRequest("images must be a list of image URLs")
    if not urls:
        raise BadRequest("images must contain at least 1 item")
    if len(urls) > MAX_IMAGES:
        raise BadRequest(f"images must contain at most {MAX_IMAGES} items")
    for index, url in enumerate(urls):
        if not isinstance(url, str) or not url.strip():
            raise BadRequest(f"images[{index}] must be a non-empty string")
    prompt = body.get("prompt")
    if prompt is None:
        raise BadRequest("prompt is required")
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string")
    if not prompt.strip():
        raise BadRequest("prompt must not be empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise BadRequest(f"prompt must be at most {MAX_PROMPT_CHARS} characters")
    aspect_ratio = optional_choice(body, "aspect_ratio", images.ASPECT_RATIOS)
    optional_choice(body, "resolution", RESOLUTIONS)
    optional_choice(body, "quality", QUALITIES)
    output_format = optional_choice(body, "output_format", OUTPUT_FORMATS) or "png"
    return PredictionSpec(
        kind="image-to-image",
        params=body,
        prompt=prompt,
        image_urls=[url.strip() for url in urls],
        aspect_ratio=aspect_ratio,
        output_format=output_format,
        sync=optional_bool(body, "enable_sync_mode"),
        base64_output=optional_bool(body, "enable_base64_output"),
        generated=False,
    )


def _parse_listed(model: catalog.Model, body: dict[str, Any]) -> PredictionSpec:
    """A catalog model: its JSON Schema decides (a 400 naming the field), then its media inputs are fetched."""
    problem = catalog.validate(model, body)
    if problem is not None:
        raise BadRequest(problem)
    spec = _parse_generic(body, model.kind)
    spec.image_urls, spec.media_urls, spec.generated = [], [], model.kind == "text-to-image"
    for name, wanted in model.media_inputs().items():
        value = body.get(name)
        for url in value if isinstance(value, list) else [value] if isinstance(value, str) else []:
            if wanted == "image":
                spec.image_urls.append(url)
            else:
                spec.media_urls.append((wanted, url))
    return spec


def _parse_generic(body: dict[str, Any], kind: str) -> PredictionSpec:
    """A model the catalog does not list: lenient (vocabularies differ), answered by the kind its name says;
    the shared flags are checked."""
    prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else ""
    urls: list[str] = []
    for key in ("image", "images"):
        value = body.get(key)
        urls.extend(url for url in (value if isinstance(value, list) else [value]) if isinstance(url, str) and url)
    others = [(catalog.media_of_input(key), body[key]) for key in ("video", "audio") if isinstance(body.get(key), str)]
    ratio = body.get("aspect_ratio")
    fmt = body.get("output_format")
    return PredictionSpec(
        prompt=str(prompt or body.get("text") or ""),
        image_urls=urls,
        aspect_ratio=ratio if ratio in images.ASPECT_RATIOS else ("1:1" if catalog.media_of(kind) == "image" else None),
        output_format="jpeg" if fmt in ("jpeg", "jpg") else "png",
        sync=optional_bool(body, "enable_sync_mode"),
        base64_output=optional_bool(body, "enable_base64_output"),
        generated=kind == "text-to-image",
        kind=kind,
        params=body,
        media_urls=others,
    )


# -- API handlers ---------------------------------------------------------------------------------


async def _submit(request: web.Request) -> web.StreamResponse:
    """POST /api/v3/{model}: create a prediction (or refuse to, for auth/rate-limit/validation)."""
    model = request.match_info["model"].strip("/")
    if model.split("/")[0] in _RESERVED_MODEL_PREFIXES:
        return error(405, "Method not allowed")
    state = request.app[STATE_KEY]
    config = state.config
    state.count_submit()
    denied = check_auth(request)
    if denied is not None:
        return denied
    if config.submit_429_count > 0:
        config.submit_429_count -= 1
        return rate_limited(config)
    if state.roll(config.submit_429_rate):
        return rate_limited(config)
    try:
        body = await json_object(request)
        spec = _parse_submit(model, body)
        if spec.base64_output and request.query.get("webhook"):
            raise BadRequest("enable_base64_output cannot be used together with a webhook")
    except BadRequest as exc:
        return error(400, str(exc))
    prediction = state.create_prediction(model, spec, base_url(request))
    note_prediction(prediction.id)
    if SLOW_SUBMIT_MARKER in spec.prompt:
        # Created (and billed), then slow to answer: a client that dies now never learns the id.
        await asyncio.sleep(config.slow_submit_seconds)
    if state.roll(config.submit_drop_rate):
        return drop(request)
    if state.roll(config.submit_5xx_rate):
        return server_error(500, config)
    if not prediction.sync:
        return envelope(prediction.data())
    if state.roll(config.sync_504_rate):
        prediction.status = "processing"
        return server_error(504, config)
    if await state.wait_terminal(prediction, config.sync_timeout_seconds):
        return envelope(prediction.data())
    data = prediction.data()
    data["error"] = SYNC_TIMEOUT_MESSAGE
    return envelope(data, code=5004, message=SYNC_TIMEOUT_MESSAGE, status=config.sync_timeout_http_status)


async def _result(request: web.Request) -> web.StreamResponse:
    """GET /api/v3/predictions/{id}[/result]: the poll, where most faults are injected."""
    state = request.app[STATE_KEY]
    config = state.config
    state.count_poll()
    denied = check_auth(request)
    if denied is not None:
        return denied
    prediction_id = request.match_info["id"]
    note_prediction(prediction_id)
    if state.roll(config.slow_rate):
        await asyncio.sleep(config.slow_seconds)
    if state.roll(config.drop_rate):
        return drop(request)
    if state.roll(config.poll_429_rate):
        return rate_limited(config)
    if state.roll(config.poll_5xx_rate):
        return server_error(state.choice((500, 502, 503, 504)), config)
    prediction = state.get_prediction(prediction_id)
    if state.roll(config.malformed_rate):
        return _malformed(state, prediction, prediction_id)
    if prediction is None:
        return error(404, "prediction not found")
    prediction.polls += 1
    await state.advance(prediction)
    return envelope(prediction.data())


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
    return envelope(data)


async def _api_not_found(request: web.Request) -> web.StreamResponse:
    denied = check_auth(request)
    return denied if denied is not None else error(404, "Not found")




async def _output(request: web.Request) -> web.StreamResponse:
    """GET /outputs/{id}/0[.ext]: an output file, padded and streamed when large_output_bytes asks."""
    state = request.app[STATE_KEY]
    prediction_id = request.match_info["id"]
    note_prediction(prediction_id)
    data = state.local_file(request.path)
    prediction = state.get_prediction(prediction_id)
    if data is None or prediction is None:
        return error(404, "file not found")
    content_type = state.config.output_content_type or prediction.output_content_type
    total = state.config.large_output_bytes
    if total <= len(data):
        return web.Response(body=data, headers={"Content-Type": content_type})
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.content_length = total
    await response.prepare(request)
    await response.write(data)
    remaining = total - len(data)
    if prediction.output_ext == "mp4" and remaining >= 16:
        # A trailing `free` box keeps the padded file a valid MP4 that players read to the end.
        header = media.mp4_free_box(remaining)
        await response.write(header)
        remaining -= len(header)
    zeros = memoryview(_ZEROS)
    while remaining > 0:
        size = min(remaining, _CHUNK)
        await response.write(zeros[:size])
        remaining -= size
    await response.write_eof()
    return response
