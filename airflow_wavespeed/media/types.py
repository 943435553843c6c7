"""What kind of file a run's bytes are: image, video, audio, 3D or text, told from the bytes alone.

An output URL often has no extension and a server's Content-Type can be wrong, so neither is trusted:
the first bytes decide. Containers (images, video, audio) are told by the ``filetype`` library, which
reads the first 261 bytes and knows the ISO-BMFF brands (an M4A is not an MP4), WebM from Matroska and
OGG. No maintained library tells 3D formats (``puremagic`` knows none of GLB, glTF, PLY or FBX and calls an
M4A an MP4), so the few 3D signatures are this module's own table. Text is UTF-8 without markup.

Anything else is refused by :func:`refusal`: HTML, SVG (which can carry script), XML, archives,
executables and documents are not stored under any name, because a browser or a user could open them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: Bytes enough to tell every type here (filetype reads 261; a glTF's ``"asset"`` key is near its start).
SNIFF_BYTES = 1024

#: The media a file can be, and what a model's kind can promise.
MEDIA = ("image", "video", "audio", "3d", "text")


@dataclass(frozen=True)
class MediaType:
    """One accepted file type: its media, the extension it is stored under and its Content-Type."""

    media: str
    ext: str
    content_type: str


def _types(media: str, *entries: tuple[str, str]) -> dict[str, MediaType]:
    return {ext: MediaType(media, ext, content_type) for ext, content_type in entries}


#: Every accepted type by the extension it is stored under: images as WaveSpeed's upload documents them,
#: the video and audio containers browsers and editors play, the 3D formats generators answer.
ACCEPTED: dict[str, MediaType] = {
    **_types(
        "image",
        ("png", "image/png"), ("jpg", "image/jpeg"), ("webp", "image/webp"), ("gif", "image/gif"),
        ("bmp", "image/bmp"), ("tiff", "image/tiff"),
    ),
    **_types(
        "video",
        ("mp4", "video/mp4"), ("m4v", "video/x-m4v"), ("mov", "video/quicktime"), ("webm", "video/webm"),
        ("mkv", "video/x-matroska"), ("avi", "video/x-msvideo"),
    ),
    **_types(
        "audio",
        ("mp3", "audio/mpeg"), ("wav", "audio/wav"), ("flac", "audio/flac"), ("ogg", "audio/ogg"),
        ("m4a", "audio/mp4"), ("aac", "audio/aac"),
    ),
    **_types(
        "3d",
        ("glb", "model/gltf-binary"), ("gltf", "model/gltf+json"), ("ply", "application/x-ply"),
        ("fbx", "application/octet-stream"), ("usdz", "model/vnd.usdz+zip"),
    ),
    **_types("text", ("txt", "text/plain; charset=utf-8")),
}  # fmt: skip
#: filetype's extension names where ours differ.
_FILETYPE_NAMES = {"tif": "tiff", "apng": "png"}
_MARKUP = (b"<!doctype", b"<html", b"<svg", b"<?xml", b"<script", b"<head", b"<body", b"<iframe", b"<!--")


def sniff(head: bytes) -> MediaType | None:
    """The accepted type of a file from its first bytes (:data:`SNIFF_BYTES` of them), or None."""
    import filetype  # pure Python and small, but only a task that stores or uploads needs it

    if not head:
        return None
    found = filetype.guess(head)
    if found is not None:
        return ACCEPTED.get(_FILETYPE_NAMES.get(found.extension, found.extension))
    return _sniff_3d(head) or _sniff_text(head)


def _sniff_3d(head: bytes) -> MediaType | None:
    if head[:4] == b"glTF" and len(head) >= 12 and struct.unpack("<I", head[4:8])[0] == 2:
        return ACCEPTED["glb"]
    if head.startswith((b"ply\n", b"ply\r\n")) and b"format " in head[:64]:
        return ACCEPTED["ply"]
    if head.startswith(b"Kaydara FBX Binary  \x00"):
        return ACCEPTED["fbx"]
    if head[:4] == b"PK\x03\x04" and len(head) >= 30:
        # A USDZ is a zip whose first entry is the USD layer (uncompressed, by its spec).
        name_length = struct.unpack("<H", head[26:28])[0]
        if head[30 : 30 + name_length].lower().endswith((b".usdc", b".usda", b".usd")):
            return ACCEPTED["usdz"]
    start = head.lstrip()[:SNIFF_BYTES]
    if start.startswith(b"{") and b'"asset"' in start and b'"version"' in start:  # glTF's one required object
        return ACCEPTED["gltf"]
    return None


def _sniff_text(head: bytes) -> MediaType | None:
    if b"\x00" in head or _looks_like_markup(head):
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # only a character cut at the end of the head is forgiven
            return None
    return ACCEPTED["txt"]


def _looks_like_markup(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith(b"<") and (start.startswith(_MARKUP) or b"<html" in start or b"<svg" in start)


def describe(head: bytes) -> str:
    """What refused bytes looked like, for an error message: ``HTML``, ``a ZIP archive``, …"""
    import filetype

    if not head:
        return "empty"
    if _looks_like_markup(head):
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if b"<svg" in start[:512]:
            return "SVG (markup that can carry script)"
        if start.startswith(b"<?xml") and b"<html" not in start:
            return "XML"
        return "HTML"
    found = filetype.guess(head)
    if found is not None:
        return f"{found.mime} ({found.extension})"
    if head[:4] == b"\x7fELF" or head[:2] == b"MZ":
        return "an executable"
    return f"unrecognised bytes (starting {head[:8].hex(' ')})"


def refusal(head: bytes, *, allowed: tuple[str, ...] = MEDIA) -> str | None:
    """None when ``head`` starts a file of an accepted type whose media is in ``allowed``; otherwise what
    was refused, in words for an error message."""
    found = sniff(head)
    if found is not None and found.media in allowed:
        return None
    looked = f"{found.media} ({found.ext})" if found is not None else describe(head)
    kinds = ", ".join(allowed)
    return f"the bytes look like {looked}, which is not an accepted {kinds} type"


def accepted_summary(allowed: tuple[str, ...] = MEDIA) -> str:
    """The accepted types, by media, for messages and docs: ``image (png, jpg, …); video (mp4, …)``."""
    return "; ".join(
        f"{media} ({', '.join(t.ext for t in ACCEPTED.values() if t.media == media)})" for media in allowed
    )
