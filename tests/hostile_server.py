"""A loopback HTTP server that answers like a compromised or broken WaveSpeed, for the hardening tests.

Each test gives it the routes it needs as aiohttp handlers; the server runs them on its own thread and
event loop and counts the requests it got. Helpers build the usual bad answers: a body trickled a
byte at a time, an answer that never comes, a huge or gzip-bombed body.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HostileServer:
    """``with HostileServer({"GET /path/{x}": handler}) as server: server.url("/path/1")``."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes
        self.hits: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def __enter__(self) -> HostileServer:
        started: Future[int] = Future()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(started)), daemon=True)
        self._thread.start()
        self.port = started.result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def _serve(self, started: Future[int]) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()

        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.hits[f"{request.method} {request.path}"] += 1
            return await handler(request)

        app = web.Application(middlewares=[count])
        for route, handler in self.routes.items():
            method, path = route.split(" ", 1)
            app.router.add_route(method, path, handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        started.set_result(next(a[1] for a in runner.addresses if isinstance(a, tuple)))
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()


def envelope(data: dict[str, Any], code: int = 200) -> dict[str, Any]:
    return {"code": code, "message": "success" if code == 200 else "error", "data": data}


def prediction(prediction_id: str, status: str = "completed", outputs: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return envelope({"id": prediction_id, "model": "openai/gpt-image-2/edit", "status": status, "outputs": outputs or [], **extra})


def answer(body: dict[str, Any], status: int = 200) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status)

    return handle


def trickle(
    body: bytes, seconds_per_byte: float = 0.5, status: int = 200, *, with_length: bool = True, close: bool = False
) -> Handler:
    """Send the headers, then ``body`` a byte at a time: no read timeout ever trips.

    :param with_length: announce the length; without it the body is chunked.
    :param close: answer ``Connection: close``: Python's http.client then hands the socket over to the
        response and forgets it on the connection (the case a deadline must still be able to cut).
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        if with_length:
            response.content_length = len(body)
        if close:
            response.force_close()
        await response.prepare(request)
        for byte in body:
            await response.write(bytes([byte]))
            await asyncio.sleep(seconds_per_byte)
        await response.write_eof()
        return response

    return handle


def hang(seconds: float = 3600.0) -> Handler:
    """Never answer (until the client gives up or the server stops)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.json_response({})

    return handle


def huge(total_bytes: int, *, announce: bool = False, chunk: int = 64 * 1024) -> Handler:
    """A JSON-looking body of ``total_bytes`` (a long string), streamed; its length announced or not.

    The server runs in the test's process, so tracemalloc counts its memory as the client's: the block
    is made here, before a test starts tracing, and written a small chunk at a time so the server
    never holds more than a chunk or two of unsent body.
    """
    block = b"x" * chunk

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if announce:
            response.content_length = total_bytes
        await response.prepare(request)
        head = b'{"code": 200, "message": "'
        await response.write(head)
        sent = len(head)
        try:
            while sent < total_bytes:
                await response.write(block)
                sent += len(block)
        except (ConnectionResetError, ConnectionError):
            return response
        return response

    return handle


def gzip_bomb(expanded_bytes: int) -> Handler:
    """A small gzip body that expands to ``expanded_bytes`` of JSON-looking text."""
    inner = b'{"code": 200, "message": "' + b"0" * expanded_bytes + b'"}'
    packed = gzip.compress(inner, compresslevel=9)

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=packed, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})

    return handle


def encoded(bodies: list[bytes], encoding: str) -> Handler:
    """Answers with these bodies as sent (one per request, the last repeated), under ``Content-Encoding``."""
    sent = [0]

    async def handle(request: web.Request) -> web.StreamResponse:
        body = bodies[min(sent[0], len(bodies) - 1)]
        sent[0] += 1
        return web.Response(body=body, headers={"Content-Type": "application/json", "Content-Encoding": encoding})

    return handle


def echo_authorization(status: int = 401) -> Handler:
    """An error answer whose message repeats the request's Authorization header."""

    async def handle(request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        body = {"code": status, "message": f"invalid credentials: {header}", "data": None}
        return web.Response(text=json.dumps(body), status=status, content_type="application/json")

    return handle


class RawServer:
    """A TCP server on loopback that answers each connection by writing ``reply`` itself, a byte at a time,
    without reading what the client sent first (so ``https://`` clients can be fed a handshake that never
    ends). ``with RawServer(reply) as server: server.base_url``"""

    scheme = "http"

    def __init__(self, reply: bytes, seconds_per_byte: float = 0.05) -> None:
        self.reply, self.seconds_per_byte = reply, seconds_per_byte
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.base_url = f"{self.scheme}://127.0.0.1:{self.port}"
        self._stopped = threading.Event()

    def __enter__(self) -> RawServer:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(client,), daemon=True).start()

    def _answer(self, client: socket.socket) -> None:
        with client:
            try:
                self._before(client)
                for byte in self.reply:
                    if self._stopped.is_set():
                        return
                    client.sendall(bytes([byte]))
                    time.sleep(self.seconds_per_byte)
            except OSError:
                return

    def _before(self, client: socket.socket) -> None:
        """What the server does before it writes its reply."""


class StalledHandshakeServer(RawServer):
    """An ``https://`` server whose TLS handshake never completes: it announces a 16 KiB handshake record
    and then sends it a byte at a time, each well within any connect timeout."""

    scheme = "https"

    def __init__(self, seconds_per_byte: float = 0.05) -> None:
        super().__init__(b"\x16\x03\x03\x40\x00" + b"\x00" * 16384, seconds_per_byte)


class CloseDelimitedServer(RawServer):
    """Answers every request with ``body`` trickled a byte at a time and framed by the connection's end:
    HTTP/1.1, ``Connection: close``, neither a length nor chunks (aiohttp always frames a body, so this
    one writes to the socket itself). A client cut short sees a body that just stops."""

    def __init__(self, body: bytes, seconds_per_byte: float = 0.05) -> None:
        super().__init__(body, seconds_per_byte)
        self.head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"

    def _before(self, client: socket.socket) -> None:
        client.recv(65536)
        client.sendall(self.head)
