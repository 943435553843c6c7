"""Run the emulator in a background thread, for tests and notebooks that stay synchronous."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future
from types import TracebackType

from aiohttp import web

from airflow_wavespeed.emulator.config import EmulatorConfig
from airflow_wavespeed.emulator.server import create_app
from airflow_wavespeed.emulator.state import EmulatorState, Prediction, RequestRecord, StoredFile

# In-flight handlers (a sync-mode POST can wait 30 s) get this long before stop() cuts them off.
_SHUTDOWN_GRACE = 0.5


class Emulator:
    """A WaveSpeed API emulator on a free loopback port, served by its own thread and event loop.

    Usage::

        with Emulator(api_key="test-key", config=EmulatorConfig(processing_polls=2)) as emu:
            client = Client(api_key="test-key", base_url=emu.base_url)
    """

    def __init__(
        self,
        api_key: str | None = None,
        config: EmulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._state = EmulatorState(config if config is not None else EmulatorConfig(), api_key)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._port: int | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving; returns once the port is bound (raises if it could not be)."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        started: Future[int] = Future()
        self._thread = threading.Thread(
            target=self._serve_in_thread, args=(started,), name="wavespeed-emulator", daemon=True
        )
        self._thread.start()
        try:
            self._port = started.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=5)
            self._thread = None
            raise
        return self

    def stop(self) -> None:
        """Stop serving and join the thread; in-flight requests get a short grace period."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout=10)
        self._thread = self._loop = self._stop_event = None
        self._port = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve_in_thread(self, started: Future[int]) -> None:
        try:
            asyncio.run(self._serve(started))
        except BaseException as exc:  # report startup failures to start(); later ones end the thread
            if not started.done():
                started.set_exception(exc)

    async def _serve(self, started: Future[int]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        runner = web.AppRunner(
            create_app(state=self._state), access_log=None, shutdown_timeout=_SHUTDOWN_GRACE
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
            ports = {address[1] for address in runner.addresses if isinstance(address, tuple)}
            self._state.bound_ports.update(ports)
            started.set_result(min(ports))
            await self._stop_event.wait()
        finally:
            await runner.cleanup()

    # -- views ------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._port is None:
            raise RuntimeError("emulator is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """E.g. http://127.0.0.1:54321, to pass as the client's base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def config(self) -> EmulatorConfig:
        """The live config: assign its fields to change behaviour from the next request on."""
        return self._state.config

    @property
    def state(self) -> EmulatorState:
        """The server state (advanced use)."""
        return self._state

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, in the order requests were answered."""
        return self._state.requests

    @property
    def predictions(self) -> dict[str, Prediction]:
        """A copy of the id -> prediction map (read the predictions, do not modify them)."""
        return self._state.predictions

    @property
    def uploads(self) -> dict[str, StoredFile]:
        """A copy of the upload id -> stored file map."""
        return self._state.uploads

    def add_upload(self, data: bytes, filename: str = "input.png") -> str:
        """Store a file as if uploaded (no HTTP, nothing logged); answers its download URL. Takes what the
        upload route takes: images, video, audio and 3D, typed by their bytes."""
        from airflow_wavespeed.emulator.uploads import UPLOAD_MEDIA, upload_type

        found = upload_type(data)
        if found is None:
            raise ValueError(f"not an accepted {', '.join(UPLOAD_MEDIA)} file")
        return self.base_url + self._state.store_upload(data, found.ext, filename)

    def submit_count(self, include_rejected: bool = False) -> int:
        """Submit POSTs that created a prediction; with include_rejected, every submit POST received."""
        return self._state.submit_count(include_rejected)

    def stats(self) -> dict[str, object]:
        """Same counters as GET /_emulator/stats."""
        return self._state.stats()

    def reset(self) -> None:
        """Clear log, predictions and uploads and restore the initial config (runs on the server loop)."""
        loop = self._loop
        if loop is None or self._thread is None:
            self._state.reset()
            return

        async def do_reset() -> None:
            self._state.reset()

        asyncio.run_coroutine_threadsafe(do_reset(), loop).result(timeout=10)
