"""Image file types: what WaveSpeed accepts for upload, and how to tell a type from its first bytes."""

from __future__ import annotations

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
