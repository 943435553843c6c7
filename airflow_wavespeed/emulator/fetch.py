"""Fetching a prediction's input files: from the emulator's own memory when the URL is its own, else over
HTTP with a timeout and a size cap; every file is checked by its bytes to be the media it must be."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
from yarl import URL

from airflow_wavespeed.emulator.records import FetchFailed
from airflow_wavespeed.media.types import SNIFF_BYTES, sniff

if TYPE_CHECKING:
    from airflow_wavespeed.emulator.state import EmulatorState

_READ_CHUNK = 1 << 16
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"})


async def fetch_input(state: EmulatorState, url: str, base_url: str, media: str = "image") -> bytes:
    """The bytes of one input URL, which must be a file of ``media`` (image, video or audio)."""
    try:
        data = await fetch_bytes(state, url, base_url)
    except FetchFailed as exc:
        raise FetchFailed(f"Failed to fetch input {media} {url}: {exc}") from None
    found = sniff(data[:SNIFF_BYTES])
    if found is None or found.media != media:
        raise FetchFailed(f"Failed to fetch input {media} {url}: not a supported {media}")
    return data


async def fetch_bytes(state: EmulatorState, url: str, base_url: str) -> bytes:
    """The body behind a URL, at most ``max_upload_bytes`` of it."""
    try:
        parsed = URL(url)
    except ValueError:
        raise FetchFailed("invalid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise FetchFailed("only http and https URLs are supported")
    if is_own_url(state, parsed, base_url):
        local = state.local_file(parsed.path)
        if local is None:
            raise FetchFailed("HTTP 404")
        return local
    if state.session is None:
        raise FetchFailed("emulator is shutting down")
    limit = state.config.max_upload_bytes
    timeout = aiohttp.ClientTimeout(total=state.config.fetch_timeout_seconds)
    try:
        async with state.session.get(url, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise FetchFailed(f"HTTP {response.status}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(_READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise FetchFailed(f"larger than {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except asyncio.TimeoutError:
        raise FetchFailed(f"timed out after {state.config.fetch_timeout_seconds:g} s") from None
    except aiohttp.ClientError as exc:
        raise FetchFailed(str(exc) or type(exc).__name__) from None


def is_own_url(state: EmulatorState, url: URL, base_url: str) -> bool:
    """Whether a URL points at this emulator, so it is read from memory instead of over HTTP."""
    if not url.path.startswith(("/media/", "/outputs/")):
        return False
    origins = {URL(base_url).origin()}
    if state.config.public_base_url:
        origins.add(URL(state.config.public_base_url).origin())
    if url.origin() in origins:
        return True
    return url.host in _LOOPBACK_HOSTS and url.port in state.bound_ports
