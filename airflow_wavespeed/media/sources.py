"""What a user hands ``upload_media`` (a path, bytes or a file object) opened as one rewindable stream,
and the name and type it is sent under, judged by its first bytes (a name can lie)."""

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
from airflow_wavespeed.media.types import (
    ACCEPTED,
    FILE_MEDIA,
    SNIFF_BYTES,
    MediaType,
    accepted_summary,
    kinds_in_words,
    refusal,
    sniff,
)

#: A stream that cannot be rewound is spooled for retries: in memory up to this, then on disk.
SPOOL_BYTES = 8 * 1024 * 1024
#: What may be uploaded as a model input: every media but text (a model takes text inline).
UPLOADABLE_MEDIA = FILE_MEDIA


def upload_name(filename: str, head: bytes, described: str, *, allowed: tuple[str, ...] = UPLOADABLE_MEDIA) -> tuple[str, MediaType]:
    """The name and type to send a file as, judged by its first bytes (a text file named ``.png`` is
    refused before anything is sent). Its own name when the extension agrees with the bytes, else one with
    the extension the bytes call for. Raises naming ``described`` when the bytes are not of ``allowed`` media.
    """
    found = sniff(head)
    problem = refusal(head, allowed=allowed)
    if found is None or problem is not None:
        raise WaveSpeedInputError(
            f"{described} is not {_what(allowed)}, judged by its first bytes (whatever its name): {problem}; "
            f"allowed: {accepted_summary(allowed).upper()}"
        )
    suffix = Path(filename).suffix.lower().lstrip(".")
    same = ACCEPTED.get({"jpeg": "jpg", "tif": "tiff"}.get(suffix, suffix))
    if same is not None and same.content_type == found.content_type:
        return filename, found
    return f"{Path(filename).stem or 'input'}.{found.ext}", found


def _what(allowed: tuple[str, ...]) -> str:
    """``an image WaveSpeed accepts, nor a video, audio or 3D file``: the image first, as most inputs are."""
    others = tuple(media for media in allowed if media != "image")
    if "image" not in allowed:
        return f"{kinds_in_words(allowed)} WaveSpeed accepts"
    return "an image WaveSpeed accepts" + (f", nor {kinds_in_words(others)}" if others else "")


def default_name(head: bytes) -> str:
    """A name for bytes that come without one: ``upload.<ext>`` from their type."""
    found = sniff(head)
    return f"upload.{found.ext if found is not None else 'bin'}"


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
        name = filename or default_name(data[:SNIFF_BYTES])
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
        name = default_name(stream.read(SNIFF_BYTES))
    return UploadSource(stream, name, lambda: stream.seek(start))
