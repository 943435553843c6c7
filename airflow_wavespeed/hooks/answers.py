"""Reading one answer under a size cap: bodies decompressed a chunk at a time, lengths and
``Retry-After`` headers read as the untrusted text they are. Shared by the worker and the triggerer."""

from __future__ import annotations

import email.utils
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_wavespeed.exceptions import WaveSpeedMalformedResponseError, WaveSpeedResponseTooLargeError
from airflow_wavespeed.prediction import MAX_FIELD_CHARS, clip

if TYPE_CHECKING:
    import requests

#: How much of an answer is read at a time (and so the most decompressed ahead of the size check).
CHUNK_BYTES = 64 * 1024


def read_capped(response: requests.Response, max_bytes: int, context: str) -> bytes:
    """The whole body (decompressed a chunk at a time), or :class:`WaveSpeedResponseTooLargeError`."""
    check_length(response.headers.get("Content-Length"), max_bytes, context)
    body = bytearray()
    for chunk in response.iter_content(CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:
            raise too_large(context, max_bytes)
    return bytes(body)


class CappedBody:
    """An answer's body, decompressed as it arrives and never past ``cap`` bytes.

    aiohttp's own decompression runs ahead of the reader (tens of MiB from a gzip bomb), so the
    triggerer's session takes bodies as sent and inflates them here, a chunk at a time, with zlib's
    ``max_length``: memory stays within the cap whatever the compression ratio.
    """

    def __init__(self, encoding: str | None, cap: int, context: str, scrub: Callable[[str], str] = str) -> None:
        self.cap, self.context = cap, context
        self.data = bytearray()
        self._raw_bytes = 0
        self._head = b""  # a raw deflate body is told apart by its first two bytes
        coding = (encoding or "identity").strip().lower()
        self._raw_deflate_possible = coding == "deflate"
        if coding in ("gzip", "x-gzip", "deflate"):
            self._inflater: Any = zlib.decompressobj(47)  # 32 + 15: a zlib or gzip header, detected
        elif coding == "identity":
            self._inflater = None
        else:
            named = scrub(repr(encoding))  # a header is the server's text too: it may echo the key
            raise WaveSpeedMalformedResponseError(
                f"{context}: unsupported Content-Encoding {clip(named, MAX_FIELD_CHARS)}", http_status=0, body=""
            )

    def feed(self, chunk: bytes) -> None:
        self._raw_bytes += len(chunk)
        if self._raw_bytes > self.cap:
            raise too_large(self.context, self.cap)
        if self._inflater is not None and self._inflater.eof and chunk:
            # zlib would keep appending these to ``unused_data``, each time copying all of it.
            raise WaveSpeedMalformedResponseError(
                f"{self.context}: data after the end of the compressed body", http_status=0, body=""
            )
        if self._inflater is not None:
            if self._raw_deflate_possible:
                # "deflate" is often sent without its zlib header (raw deflate, as browsers accept too).
                chunk, self._head = self._head + chunk, b""
                if len(chunk) < 2:
                    self._head = chunk  # a body may arrive a byte at a time
                    return
                self._raw_deflate_possible = False
                if chunk[0] & 0x0F != 8 or (chunk[0] << 8 | chunk[1]) % 31:
                    self._inflater = zlib.decompressobj(-15)
            room = self.cap + 1 - len(self.data)
            try:
                chunk = self._inflater.decompress(chunk, room)
            except zlib.error as error:  # a corrupt body: malformed, retried like any other
                raise WaveSpeedMalformedResponseError(
                    f"{self.context}: the body does not inflate ({error})", http_status=0, body=""
                ) from None
            if self._inflater.unconsumed_tail:
                raise too_large(self.context, self.cap)
        self.data += chunk
        if len(self.data) > self.cap:
            raise too_large(self.context, self.cap)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date; None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year of twenty digits
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def content_length(header: str | None) -> int | None:
    """A ``Content-Length`` value, or None when absent or not plain ASCII digits (``"²".isdigit()`` is True)."""
    return int(header) if header and header.isascii() and header.isdigit() else None


def check_length(header: str | None, max_bytes: int, context: str) -> None:
    if (length := content_length(header)) is not None and length > max_bytes:
        raise too_large(context, max_bytes, announced=length)


def too_large(context: str, max_bytes: int, announced: int | None = None) -> WaveSpeedResponseTooLargeError:
    size = f"{announced} bytes" if announced is not None else "more"
    return WaveSpeedResponseTooLargeError(
        f"{context}: the answer is {size}, over the cap of {max_bytes} bytes (hook_params max_response_bytes, "
        "or max_base64_response_bytes for base64 outputs); it was not read further and is not retried"
    )
