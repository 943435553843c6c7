"""Where each output of a task lives and how a browser may show it, decided without fetching it.

The api-server never fetches an output (no request to a host a prediction names, so no SSRF): an
``http(s)`` URL is handed to the browser as it is; an ``s3://`` object gets a short-lived presigned GET
URL made with the AWS connection; a local path is served by the plugin only when this machine can read
it, by its position in the task's XCom (never a path from the request). Anything else is text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

#: WaveSpeed deletes predictions and their output files after this long.
WAVESPEED_RETENTION = timedelta(days=7)
#: How long a presigned S3 URL made for a page stays valid.
PRESIGN_SECONDS = 300

_EXTENSIONS = {
    "image": (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".avif"),
    "video": (".mp4", ".webm", ".mov", ".m4v"),
    "audio": (".mp3", ".wav", ".ogg", ".m4a", ".flac", ".aac"),
    "3d": (".glb", ".gltf", ".obj", ".fbx", ".usdz", ".ply"),
}
#: Content types a local file is served with; anything else is a download of octet-stream.
CONTENT_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
    ".gif": "image/gif", ".bmp": "image/bmp", ".avif": "image/avif", ".mp4": "video/mp4",
    ".webm": "video/webm", ".mov": "video/quicktime", ".m4v": "video/mp4", ".mp3": "audio/mpeg",
    ".wav": "audio/wav", ".ogg": "audio/ogg", ".m4a": "audio/mp4", ".flac": "audio/flac", ".aac": "audio/aac",
}  # fmt: skip
#: A host[:port] (names, IPv4, bracketed IPv6) as a CSP source may carry it.
_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
#: What the browser may show inline; everything else is offered as a download.
INLINE = ("image", "video", "audio")


@dataclass
class Shown:
    """One output as the page shows it.

    :param kind: ``image``, ``video``, ``audio``, ``download``, ``text`` or ``missing``.
    :param src: the URL the browser loads (``None`` for text and missing).
    :param label: what the output is (its URL's name, its path or URI), shown as text.
    :param note: why it is missing, where it lives, or when it expires.
    """

    kind: str
    src: str | None
    label: str
    note: str = ""
    flagged: bool = False
    text: str = ""

    @property
    def origin(self) -> str | None:
        """The origin the browser loads ``src`` from (absolute URLs only), for the page's CSP."""
        if not self.src or not self.src.startswith(("http://", "https://")):
            return None
        parts = urlsplit(self.src)
        if not _HOST.fullmatch(parts.netloc):  # userinfo, spaces, ';': nothing that could bend the policy
            return None
        return f"{parts.scheme}://{parts.netloc}"


def media_of(location: str, declared: str | None = None) -> str:
    """``image``, ``video``, ``audio``, ``3d``, ``text`` or ``other``: what the task declared, else by
    the file extension of the URL's path (a URL need not have one: then ``other``, a download)."""
    if declared in ("image", "video", "audio", "3d", "text"):
        return declared
    if declared and "/" in declared:  # a content type
        major = declared.split("/", 1)[0]
        return major if major in INLINE else "other"
    path = urlsplit(location).path.lower() if "://" in location else location.lower()
    return next((kind for kind, exts in _EXTENSIONS.items() if path.endswith(exts)), "other")


def content_type(path: str) -> str:
    """The type a local output is served with (the plugin serves only these inline)."""
    return CONTENT_TYPES.get(os.path.splitext(path)[1].lower(), "application/octet-stream")


def _show(kind: str, src: str, label: str, note: str = "", flagged: bool = False) -> Shown:
    return Shown(kind if kind in INLINE else "download", src, label, note, flagged)


def expired(prediction: dict[str, Any], now: datetime | None = None) -> datetime | None:
    """When WaveSpeed deletes(d) this prediction's files: ``None`` when its creation time is unknown."""
    created = prediction.get("created_at")
    if not isinstance(created, str) or not created:
        return None
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when + WAVESPEED_RETENTION


def show_outputs(
    outputs: list[Any],
    prediction: dict[str, Any],
    *,
    local_url: Callable[[int], str],
    presign: Callable[[str], str],
    hostname: str | None,
    now: datetime | None = None,
) -> list[Shown]:
    """Each output as the browser should get it.

    :param outputs: the task's ``return_value`` (URLs, stored paths or URIs, or a text model's text).
    :param prediction: the ``prediction`` XCom (its ``media``, ``stored``, flags and creation time).
    :param local_url: the plugin's URL for the task's n-th output, a local file.
    :param presign: a presigned GET URL for an ``s3://`` URI (raises when it cannot be made).
    :param hostname: the machine the task ran on, named when a local file is not on this one.
    """
    now = now or datetime.now(timezone.utc)
    flags = prediction.get("has_nsfw_contents") or []
    stored = {str(entry.get("uri")): entry for entry in prediction.get("stored") or [] if isinstance(entry, dict)}
    deleted_at = expired(prediction)
    shown = []
    for n, output in enumerate(outputs):
        flagged = bool(flags[n]) if n < len(flags) and isinstance(flags, list) else False
        if not isinstance(output, str):
            shown.append(Shown("text", None, f"output {n}", text=repr(output), flagged=flagged))
            continue
        entry = stored.get(output, {})
        kind = media_of(output, entry.get("media") or entry.get("content_type") or prediction.get("media"))
        if output.startswith(("https://", "http://")):
            note = ""
            if deleted_at is not None:
                verb = "were deleted" if deleted_at <= now else "will be deleted"
                note = f"not stored: WaveSpeed's files {verb} on {deleted_at:%Y-%m-%d %H:%M} UTC"
                if deleted_at <= now:
                    shown.append(Shown("missing", None, output, note + " (outputs expire after 7 days)", flagged))
                    continue
            shown.append(_show(kind, output, output, note, flagged))
        elif output.startswith("s3://"):
            try:
                shown.append(_show(kind, presign(output), output, "stored in S3 (a link valid 5 minutes)", flagged))
            except Exception as error:  # no connection, no credentials: say so, show the URI
                shown.append(Shown("missing", None, output, f"could not sign a link: {type(error).__name__}", flagged))
        elif output.startswith("/"):
            if local_output(outputs, n) is not None:
                shown.append(_show(kind, local_url(n), output, "stored on the api-server's machine", flagged))
            else:
                where = f"on {hostname}" if hostname else "on the machine the task ran on"
                shown.append(Shown("missing", None, output, f"stored {where} at this path (not readable here)", flagged))
        elif kind == "text" or "://" not in output:
            shown.append(Shown("text", None, f"output {n}", text=output, flagged=flagged))
        else:
            shown.append(Shown("missing", None, output, "not a location this page can show", flagged))
    return shown


def local_output(outputs: list[Any], n: int) -> str | None:
    """The task's n-th output when it is a readable local media file (what the file endpoint may serve).

    Only files named as media (image, video, audio, 3D): a ``return_value`` that names some other file on
    the api-server's machine (a configuration file, a key) is not served to whoever may read the DAG.
    """
    if not 0 <= n < len(outputs):
        return None
    path = outputs[n]
    if not isinstance(path, str) or not path.startswith("/") or media_of(path) == "other":
        return None
    return path if os.path.isfile(path) and os.access(path, os.R_OK) else None
