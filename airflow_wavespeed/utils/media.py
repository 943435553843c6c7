"""Image files: what WaveSpeed accepts for upload, telling a type from its first bytes, and opening what
a user hands ``upload_media`` (a path, bytes or a file object) as one rewindable stream."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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
#: Bytes enough to tell every type above from its signature.
SNIFF_BYTES = 16
#: A stream that cannot be rewound is spooled for retries: in memory up to this, then on disk.
SPOOL_BYTES = 8 * 1024 * 1024


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


def upload_name(filename: str, head: bytes, described: str) -> str:
    """The name to send an image as, judged by its first bytes (a name can lie: a text file named
    ``.png`` is refused before anything is sent). Its own name when the extension agrees with the
    bytes, else one with the extension the bytes call for. Raises naming ``described`` otherwise.
    """
    extension = sniff_image_extension(head)
    if extension is None:
        raise WaveSpeedInputError(
            f"{described} is not an image WaveSpeed accepts, judged by its first bytes (whatever its name); "
            f"allowed: {', '.join(sorted({t.split('/')[1].upper() for t in UPLOADABLE_TYPES.values()}))}"
        )
    if UPLOADABLE_TYPES.get(Path(filename).suffix.lower()) == UPLOADABLE_TYPES[extension]:
        return filename
    return f"{Path(filename).stem or 'input'}{extension}"


@dataclass(frozen=True)
class UploadSource:
    """One upload's body: a stream, the name to send it as, and how to rewind it for a retry."""

    stream: IO[bytes]
    filename: str
    rewind: Callable[[], object]


@contextmanager
def open_upload_source(source: str | os.PathLike[str] | bytes | IO[bytes], filename: str | None) -> Iterator[UploadSource]:
    """Open any of the sources ``upload_media`` takes; what this opens it closes (a caller's file stays open)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise WaveSpeedInputError(f"upload_media: no file at {str(path)!r}")
        with path.open("rb") as handle:
            yield UploadSource(handle, filename or path.name, lambda: handle.seek(0))
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise WaveSpeedInputError("upload_media: the bytes are empty")
        name = filename or f"upload{sniff_image_extension(data[:SNIFF_BYTES]) or '.bin'}"
        with io.BytesIO(data) as buffer:
            yield UploadSource(buffer, name, lambda: buffer.seek(0))
        return
    if not hasattr(source, "read"):
        raise WaveSpeedInputError(
            f"upload_media takes a path, bytes or a binary file object, got {type(source).__name__}"
        )
    name = filename or os.path.basename(str(getattr(source, "name", "")))
    if getattr(source, "seekable", lambda: False)():
        yield _rewindable(source, name)
        return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        shutil.copyfileobj(source, spool, 1024 * 1024)
        spool.seek(0)
        yield _rewindable(spool, name)  # type: ignore[arg-type]


def _rewindable(stream: IO[bytes], name: str) -> UploadSource:
    start = stream.tell()
    if not name:
        name = f"upload{sniff_image_extension(stream.read(SNIFF_BYTES)) or '.bin'}"
    return UploadSource(stream, name, lambda: stream.seek(start))
