"""Upload routes: the multipart upload, the SDK's ticket and PUT flow, and the uploaded files (a CDN).

Uploads take every media a model can take as input (image, video, audio, 3D), typed by their bytes with
the provider's own :func:`airflow_wavespeed.media.types.sniff`; text and anything else is refused.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from airflow_wavespeed.emulator.common import (
    STATE_KEY,
    BadRequest,
    base_url,
    check_auth,
    envelope,
    error,
    json_object,
    read_limited,
    server_error,
    too_large,
)
from airflow_wavespeed.emulator.records import safe_filename
from airflow_wavespeed.media.types import ACCEPTED, SNIFF_BYTES, MediaType, accepted_summary, sniff

UPLOAD_MEDIA = ("image", "video", "audio", "3d")
_UNSUPPORTED_FILE = f"Unsupported file type: accepted are {accepted_summary(UPLOAD_MEDIA)}"
#: Content-Types a ticket may announce: the accepted ones, plus what clients commonly send for them.
_TICKET_TYPES: dict[str, str] = {t.content_type: t.ext for t in ACCEPTED.values() if t.media in UPLOAD_MEDIA} | {
    "image/jpg": "jpg", "audio/mp3": "mp3", "audio/x-wav": "wav", "audio/wave": "wav", "audio/x-flac": "flac",
    "audio/x-m4a": "m4a", "model/gltf+json": "gltf", "application/octet-stream": "bin",
}  # fmt: skip


def register(router: web.UrlDispatcher) -> None:
    """Add the upload routes and the uploaded files' route."""
    router.add_post("/api/v3/media/upload/binary", _upload_binary)
    router.add_post("/api/v3/media/uploads", _upload_ticket)
    router.add_put("/upload/{token}", _upload_put)
    router.add_get("/media/{upload_id}/{filename}", _media)


def upload_type(data: bytes) -> MediaType | None:
    """The accepted type of uploaded bytes, or None when an upload refuses them."""
    found = sniff(data[:SNIFF_BYTES])
    return found if found is not None and found.media in UPLOAD_MEDIA else None


async def _upload_binary(request: web.Request) -> web.StreamResponse:
    """POST /api/v3/media/upload/binary: multipart field `file`, read as a stream with a size cap."""
    denied = check_auth(request)
    if denied is not None:
        return denied
    state = request.app[STATE_KEY]
    if state.roll(state.config.upload_5xx_rate):
        return server_error(503, state.config)
    if not request.content_type.startswith("multipart/"):
        return error(400, "Expected multipart/form-data with a 'file' field")
    limit = state.config.max_upload_bytes
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            return error(400, "Missing form field 'file'")
        if isinstance(part, aiohttp.BodyPartReader) and part.name == "file":
            break
        await part.release()
    data = await read_limited(part.read_chunk, limit)
    if data is None:
        return too_large(limit)
    found = upload_type(data)
    if found is None:
        return error(400, _UNSUPPORTED_FILE)
    path = state.store_upload(data, found.ext, part.filename)
    filename = path.rsplit("/", 1)[-1]
    return envelope(
        {"type": found.media, "download_url": base_url(request) + path, "filename": filename, "size": len(data)}
    )


async def _upload_ticket(request: web.Request) -> web.StreamResponse:
    """POST /api/v3/media/uploads: the official SDK's flow, a ticket then a presigned-style PUT."""
    denied = check_auth(request)
    if denied is not None:
        return denied
    state = request.app[STATE_KEY]
    if state.roll(state.config.upload_5xx_rate):
        return server_error(503, state.config)
    try:
        body = await json_object(request)
    except BadRequest as exc:
        return error(400, str(exc))
    filename, size, content_type = body.get("filename"), body.get("size"), body.get("content_type")
    if not isinstance(filename, str) or not filename.strip():
        return error(400, "filename is required")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return error(400, "size must be a non-negative integer")
    limit = state.config.max_upload_bytes
    if size > limit:
        return too_large(limit)
    if content_type is not None and content_type not in _TICKET_TYPES:
        return error(400, _UNSUPPORTED_FILE)
    ext = _TICKET_TYPES.get(content_type or "", "png")
    announced = ACCEPTED[ext].media if ext in ACCEPTED else "file"
    token, ticket = state.add_ticket(safe_filename(filename, ext if ext in ACCEPTED else "png"))
    base = base_url(request)
    return envelope(
        {
            "upload": {
                "method": "PUT",
                "url": f"{base}/upload/{token}",
                "headers": {"Content-Type": content_type or "application/octet-stream"},
            },
            "download_url": f"{base}/media/{ticket.upload_id}/{ticket.filename}",
            "filename": ticket.filename,
            "size": size,
            "type": announced,
        }
    )


async def _upload_put(request: web.Request) -> web.StreamResponse:
    """PUT /upload/{token}: receive the bytes of a ticketed upload (no auth, like a presigned URL)."""
    state = request.app[STATE_KEY]
    token = request.match_info["token"]
    ticket = state.take_ticket(token)
    if ticket is None:
        return error(404, "upload ticket not found")
    limit = state.config.max_upload_bytes
    data = await read_limited(request.content.read, limit)
    if data is None:
        return too_large(limit)
    found = upload_type(data)
    if found is None:
        return error(400, _UNSUPPORTED_FILE)
    state.store_upload(data, found.ext, ticket.filename, upload_id=ticket.upload_id)
    state.drop_ticket(token)
    return web.Response(status=200)


async def _media(request: web.Request) -> web.StreamResponse:
    """GET /media/{id}/{filename}: an uploaded file."""
    stored = request.app[STATE_KEY].get_upload(
        request.match_info["upload_id"], request.match_info["filename"]
    )
    if stored is None:
        return error(404, "file not found")
    return web.Response(body=stored.data, content_type=stored.content_type)


