"""In-memory state of the emulator: predictions and their lifecycle, uploads, the request log.

Everything here is mutated on the server's event loop only; the lock guards what tests read from
their own thread (log, counters, maps), which they always get as copies.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import math
import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import aiohttp
from yarl import URL

from airflow_wavespeed.emulator import images
from airflow_wavespeed.emulator.config import EmulatorConfig

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
CANCELLED_MESSAGE = "Cancelled by the user"
EMULATED_FAILURE = "Emulated failure: the model rejected this request"

_READ_CHUNK = 1 << 16
# A poll that is otherwise due to complete waits this long for a still-running render, so that
# processing_polls=N means exactly N polls instead of racing the renderer thread.
_POLL_WORK_WAIT = 5.0
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"})


@dataclass(frozen=True)
class RequestRecord:
    """One served request, as tests see it: no headers and no bodies, on purpose."""

    method: str
    path: str
    status: int | Literal["dropped"]
    prediction_id: str | None
    time: float

    def to_dict(self) -> dict[str, Any]:
        """JSON view for the control endpoint."""
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "prediction_id": self.prediction_id,
            "time": self.time,
        }


@dataclass
class StoredFile:
    """Bytes of an uploaded file, served back under /media like the real CDN would."""

    data: bytes = field(repr=False)
    content_type: str
    filename: str


@dataclass
class UploadTicket:
    """A pending presigned-style upload (the SDK's ticket + PUT flow)."""

    upload_id: str
    filename: str


@dataclass
class Prediction:
    """Server-side state of one prediction. Tests may read it; only the server thread writes it."""

    id: str
    model: str
    prompt: str
    image_urls: list[str]
    aspect_ratio: str | None
    output_format: str
    base64_output: bool
    sync: bool
    base_url: str
    created_at: str
    created_monotonic: float
    required_polls: int
    required_seconds: float
    nsfw: bool
    fail_reason: str | None
    generated: bool = False
    polls: int = 0
    status: str = "created"
    outputs: list[str] = field(default_factory=list)
    error: str = ""
    inference_ms: int = 0
    work_error: str | None = None
    output_bytes: bytes | None = field(default=None, repr=False)
    work: asyncio.Task[None] | None = field(default=None, repr=False)
    #: The submitted JSON body, as history items show it (emulator/history.py).
    input: dict[str, Any] = field(default_factory=dict, repr=False)
    #: What completing it billed, in USD (None: nothing billed).
    billed_usd: float | None = None

    @property
    def output_path(self) -> str:
        """Path of the single output file."""
        return f"/outputs/{self.id}/0.{self.output_format}"

    def data(self) -> dict[str, Any]:
        """The `data` object of the API envelope for the current state."""
        completed = self.status == "completed"
        return {
            "id": self.id,
            "model": self.model,
            "outputs": list(self.outputs),
            "urls": {"get": f"{self.base_url}/api/v3/predictions/{self.id}/result"},
            "has_nsfw_contents": [self.nsfw] * len(self.outputs) if completed else [],
            "status": self.status,
            "created_at": self.created_at,
            "error": self.error,
            "timings": {"inference": self.inference_ms},
        }


class FetchFailed(Exception):
    """An input image could not be fetched; the message is the reason."""


@dataclass
class PredictionSpec:
    """Validated submit inputs, as the HTTP layer hands them to the state."""

    prompt: str
    image_urls: list[str]
    aspect_ratio: str | None
    output_format: str
    sync: bool
    base64_output: bool
    generated: bool


class EmulatorState:
    """All mutable state of one emulator. Mutated on the server loop; read from any thread."""

    def __init__(self, config: EmulatorConfig | None = None, api_key: str | None = None) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.defaults = self.config.copy()
        self.api_key = api_key
        self.bound_ports: set[int] = set()
        self.session: aiohttp.ClientSession | None = None
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)
        self._predictions: dict[str, Prediction] = {}
        self._uploads: dict[str, StoredFile] = {}
        self._tickets: dict[str, UploadTicket] = {}
        self._log: list[RequestRecord] = []
        self._submits_received = 0
        self._submits_created = 0
        self._polls = 0
        #: Bumped by reset(): a request that began before a reset is not logged after it.
        self.generation = 0

    # -- views for tests (any thread) -------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    @property
    def predictions(self) -> dict[str, Prediction]:
        """A copy of the id -> prediction map."""
        with self._lock:
            return dict(self._predictions)

    @property
    def uploads(self) -> dict[str, StoredFile]:
        """A copy of the upload id -> file map."""
        with self._lock:
            return dict(self._uploads)

    def submit_count(self, include_rejected: bool = False) -> int:
        """Submit POSTs that created a prediction (or all received, with include_rejected)."""
        with self._lock:
            return self._submits_received if include_rejected else self._submits_created

    def stats(self) -> dict[str, Any]:
        """Counters answered by GET /_emulator/stats."""
        with self._lock:
            statuses = Counter(prediction.status for prediction in self._predictions.values())
            return {
                "submits": self._submits_created,
                "submits_rejected": self._submits_received - self._submits_created,
                "predictions": dict(statuses),
                "polls": self._polls,
            }

    # -- mutation (server loop) -------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything and restore the config the emulator was created with."""
        with self._lock:
            tasks = [p.work for p in self._predictions.values() if p.work is not None]
            self._predictions.clear()
            self._uploads.clear()
            self._tickets.clear()
            self._log.clear()
            self._submits_received = self._submits_created = self._polls = 0
            self.generation += 1
        for task in tasks:
            task.cancel()
        self.config.restore(self.defaults)
        self.reseed()

    def reseed(self) -> None:
        """Restart the fault generator from config.seed, so a run can be reproduced."""
        self._rng = random.Random(self.config.seed)

    def cancel_work(self) -> None:
        """Stop background fetch/render tasks (server shutdown)."""
        for prediction in self.predictions.values():
            if prediction.work is not None:
                prediction.work.cancel()

    def roll(self, rate: float) -> bool:
        """True with probability `rate`; a zero rate does not consume randomness."""
        return rate > 0 and self._rng.random() < rate

    def choice(self, options: tuple[int, ...]) -> int:
        """A random pick from the seeded generator."""
        return self._rng.choice(options)

    def record(self, entry: RequestRecord, generation: int | None = None) -> None:
        """Append to the request log, unless the request began before the last reset (``generation``)."""
        with self._lock:
            if generation is None or generation == self.generation:
                self._log.append(entry)

    def count_submit(self) -> None:
        """A submit POST arrived (whatever happens to it)."""
        with self._lock:
            self._submits_received += 1

    def count_poll(self) -> None:
        """A result GET arrived (whatever happens to it)."""
        with self._lock:
            self._polls += 1

    def create_prediction(self, model: str, spec: PredictionSpec, base_url: str) -> Prediction:
        """Store a new prediction and start fetching/rendering it in the background."""
        config = self.config
        failing = "[fail]" in spec.prompt or self.roll(config.fail_rate)
        now = datetime.now(timezone.utc)
        prediction = Prediction(
            id=uuid.uuid4().hex,
            model=model,
            prompt=spec.prompt,
            image_urls=spec.image_urls,
            aspect_ratio=spec.aspect_ratio,
            output_format=spec.output_format,
            base64_output=spec.base64_output,
            sync=spec.sync,
            base_url=base_url,
            created_at=now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            created_monotonic=time.monotonic(),
            required_polls=config.processing_polls,
            required_seconds=config.processing_seconds,
            nsfw="[nsfw]" in spec.prompt,
            fail_reason=EMULATED_FAILURE if failing else None,
            generated=spec.generated,
        )
        with self._lock:
            self._predictions[prediction.id] = prediction
            self._submits_created += 1
        prediction.work = asyncio.get_running_loop().create_task(self._work(prediction))
        return prediction

    def delete_prediction(self, prediction_id: str) -> bool:
        """Forget a prediction, as WaveSpeed does after 7 days: its result then answers 404."""
        with self._lock:
            return self._predictions.pop(prediction_id, None) is not None

    def get_prediction(self, prediction_id: str) -> Prediction | None:
        """Look a prediction up by id."""
        with self._lock:
            return self._predictions.get(prediction_id)

    def store_upload(self, data: bytes, kind: str, filename: str | None, upload_id: str | None = None) -> str:
        """Keep uploaded bytes; answers the path they are served under."""
        name = safe_filename(filename, kind)
        upload_id = upload_id or uuid.uuid4().hex
        with self._lock:
            self._uploads[upload_id] = StoredFile(data, images.CONTENT_TYPES[kind], name)
        return f"/media/{upload_id}/{name}"

    def get_upload(self, upload_id: str, filename: str) -> StoredFile | None:
        """An uploaded file, if the id and name match."""
        with self._lock:
            stored = self._uploads.get(upload_id)
        return stored if stored is not None and stored.filename == filename else None

    def add_ticket(self, filename: str) -> tuple[str, UploadTicket]:
        """Register a presigned-style upload; answers its token."""
        token = uuid.uuid4().hex
        ticket = UploadTicket(upload_id=uuid.uuid4().hex, filename=filename)
        with self._lock:
            self._tickets[token] = ticket
        return token, ticket

    def take_ticket(self, token: str) -> UploadTicket | None:
        """Look up (without consuming) an upload ticket."""
        with self._lock:
            return self._tickets.get(token)

    def drop_ticket(self, token: str) -> None:
        """A ticket is single-use once its file arrived."""
        with self._lock:
            self._tickets.pop(token, None)

    # -- prediction lifecycle ---------------------------------------------------------------------

    async def advance(self, prediction: Prediction) -> None:
        """Move a prediction forward if its latency is served; called by polls and sync waits."""
        if prediction.status in TERMINAL_STATUSES:
            return
        prediction.status = "processing"
        work = prediction.work
        if work is not None and work.done() and prediction.work_error is not None:
            self._fail(prediction, prediction.work_error)
            return
        if not prediction.sync and prediction.polls <= prediction.required_polls:
            return
        if time.monotonic() - prediction.created_monotonic < prediction.required_seconds:
            return
        if work is not None and not work.done():
            await asyncio.wait({work}, timeout=_POLL_WORK_WAIT)
        if prediction.status in TERMINAL_STATUSES or work is None or not work.done():
            return
        if prediction.work_error is not None:
            self._fail(prediction, prediction.work_error)
        elif prediction.fail_reason is not None:
            self._fail(prediction, prediction.fail_reason)
        else:
            self._complete(prediction)

    async def wait_terminal(self, prediction: Prediction, timeout: float) -> bool:
        """Wait (at most `timeout` seconds) for a sync-mode prediction to finish."""

        async def settle() -> None:
            while prediction.status not in TERMINAL_STATUSES:
                await self.advance(prediction)
                if prediction.status in TERMINAL_STATUSES:
                    return
                due = prediction.created_monotonic + prediction.required_seconds - time.monotonic()
                await asyncio.sleep(min(0.05, max(0.005, due)))

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(settle(), timeout)
        return prediction.status in TERMINAL_STATUSES

    def _fail(self, prediction: Prediction, error: str) -> None:
        prediction.status = "failed"
        prediction.error = error
        prediction.outputs = []

    def _complete(self, prediction: Prediction) -> None:
        data = prediction.output_bytes or b""
        if prediction.base64_output:
            encoded = base64.b64encode(data).decode("ascii")
            if self.config.base64_data_uri_prefix:
                encoded = f"data:{images.CONTENT_TYPES[prediction.output_format]};base64,{encoded}"
            prediction.outputs = [encoded]
        else:
            prediction.outputs = [prediction.base_url + prediction.output_path]
        prediction.status = "completed"
        price = self.config.price_of(prediction.model)
        if price:
            # Billed on completion, as the account's balance shows it.
            prediction.billed_usd = round(price * self.config.billed_ratio, 6)
            self.config.balance = max(0.0, round(self.config.balance - prediction.billed_usd, 6))

    async def _work(self, prediction: Prediction) -> None:
        """Background task of a prediction; an interrupted one fails instead of hanging in processing."""
        try:
            await self._fetch_and_render(prediction)
        except asyncio.CancelledError:
            prediction.work_error = "Prediction interrupted: the emulator was stopped"
            raise

    async def _fetch_and_render(self, prediction: Prediction) -> None:
        """Fetch every input image, then render the output in a worker thread (never on the loop)."""
        try:
            inputs = await asyncio.gather(
                *(self._fetch_input(url, prediction) for url in prediction.image_urls)
            )
        except FetchFailed as exc:
            prediction.work_error = str(exc)
            return
        if prediction.fail_reason is not None:
            return
        scale, fmt = self.config.scale, prediction.output_format
        if prediction.generated or not inputs:
            ratio = prediction.aspect_ratio or "1:1"
            render = functools.partial(images.render_generated, prediction.prompt, ratio, scale, fmt)
        else:
            render = functools.partial(
                images.render_edit, inputs, prediction.prompt, prediction.aspect_ratio, scale, fmt
            )
        started = time.perf_counter()
        try:
            prediction.output_bytes = await asyncio.get_running_loop().run_in_executor(None, render)
        except Exception as exc:  # e.g. a corrupt image that passed the magic-byte check
            prediction.work_error = f"Failed to process input image: {exc}"
            return
        prediction.inference_ms = max(1, math.ceil((time.perf_counter() - started) * 1000))

    async def _fetch_input(self, url: str, prediction: Prediction) -> bytes:
        try:
            data = await self._fetch_bytes(url, prediction.base_url)
        except FetchFailed as exc:
            raise FetchFailed(f"Failed to fetch input image {url}: {exc}") from None
        if images.detect_image_type(data) is None:
            raise FetchFailed(f"Failed to fetch input image {url}: not a supported image")
        return data

    async def _fetch_bytes(self, url: str, base_url: str) -> bytes:
        try:
            parsed = URL(url)
        except ValueError:
            raise FetchFailed("invalid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise FetchFailed("only http and https URLs are supported")
        if self._is_own_url(parsed, base_url):
            local = self.local_file(parsed.path)
            if local is None:
                raise FetchFailed("HTTP 404")
            return local
        if self.session is None:
            raise FetchFailed("emulator is shutting down")
        limit = self.config.max_upload_bytes
        timeout = aiohttp.ClientTimeout(total=self.config.fetch_timeout_seconds)
        try:
            async with self.session.get(url, timeout=timeout) as response:
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
            raise FetchFailed(f"timed out after {self.config.fetch_timeout_seconds:g} s") from None
        except aiohttp.ClientError as exc:
            raise FetchFailed(str(exc) or type(exc).__name__) from None

    def _is_own_url(self, url: URL, base_url: str) -> bool:
        """Whether a URL points at this emulator, so it is read from memory instead of over HTTP."""
        if not url.path.startswith(("/media/", "/outputs/")):
            return False
        origins = {URL(base_url).origin()}
        if self.config.public_base_url:
            origins.add(URL(self.config.public_base_url).origin())
        if url.origin() in origins:
            return True
        return url.host in _LOOPBACK_HOSTS and url.port in self.bound_ports

    def local_file(self, path: str) -> bytes | None:
        """Bytes behind one of the emulator's own /media or /outputs paths."""
        parts = path.strip("/").split("/")
        if len(parts) != 3:
            return None
        kind, ident, name = parts
        if kind == "media":
            stored = self.get_upload(ident, name)
            return stored.data if stored is not None else None
        prediction = self.get_prediction(ident)
        if prediction is None or prediction.status != "completed" or prediction.output_path != path:
            return None
        return prediction.output_bytes


    # -- history, cancel, billing records (emulator/history.py) --------------------------------------

    def history(self) -> list[Prediction]:
        """Every prediction, newest first, as the history endpoint pages through them."""
        with self._lock:
            return sorted(self._predictions.values(), key=lambda p: p.created_monotonic, reverse=True)

    def cancel_prediction(self, prediction_id: str) -> Prediction | None:
        """Cancel a prediction that has not finished (a finished one stays as it is); None when unknown.

        Its background work is stopped, and a cancelled prediction bills nothing here (WaveSpeed promises
        no such thing: "partial refunds may apply").
        """
        prediction = self.get_prediction(prediction_id)
        if prediction is None or prediction.status in TERMINAL_STATUSES:
            return prediction
        prediction.status = "cancelled"
        prediction.error = CANCELLED_MESSAGE
        prediction.outputs = []
        if prediction.work is not None:
            prediction.work.cancel()
        return prediction


def safe_filename(filename: str | None, kind: str) -> str:
    """A URL-safe file name: basename, [A-Za-z0-9._-] only, with an extension."""
    base = re.split(r"[\\/]", filename or "")[-1]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[:128] or "upload"
    if "." not in name:
        name = f"{name}.{images.EXTENSIONS[kind]}"
    return name
