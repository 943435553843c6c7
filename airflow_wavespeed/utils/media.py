"""Image file types: what WaveSpeed accepts for upload, and how to tell a type from its first bytes."""

from __future__ import annotations

from pathlib import Path

from airflow_wavespeed.exceptions import WaveSpeedInputError

#: What the upload endpoint accepts, by file extension.
UPLOADABLE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}


def check_uploadable(filename: str, *, argument: str) -> str:
    """Return ``filename``'s content type, or raise naming ``argument`` when the upload endpoint refuses it."""
    content_type = UPLOADABLE_TYPES.get(Path(filename).suffix.lower())
    if content_type is None:
        raise WaveSpeedInputError(
            f"{argument}: {filename!r} is not an image type WaveSpeed accepts; allowed extensions: "
            f"{', '.join(sorted(UPLOADABLE_TYPES))}"
        )
    return content_type


def sniff_image_extension(head: bytes) -> str | None:
    """The file extension for an image's first bytes, for bytes that come without a name."""
    signatures = {
        b"\x89PNG\r\n\x1a\n": ".png",
        b"\xff\xd8\xff": ".jpg",
        b"GIF87a": ".gif",
        b"GIF89a": ".gif",
        b"BM": ".bmp",
        b"II*\x00": ".tiff",
        b"MM\x00*": ".tiff",
    }
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return next((ext for magic, ext in signatures.items() if head.startswith(magic)), None)
