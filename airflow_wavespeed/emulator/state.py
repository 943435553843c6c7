"""In-memory state of the emulator: predictions and their lifecycle, uploads, the request log.

Everything here is mutated on the server's event loop only; the lock guards what tests read from
their own thread (log, counters, maps), which they always get as copies.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import random
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import aiohttp

from airflow_wavespeed.emulator import catalog, fetch, render
from airflow_wavespeed.emulator.config import EmulatorConfig
from airflow_wavespeed.emulator.records import (
    FetchFailed,
    Prediction,
    PredictionSpec,
    RequestRecord,
    StoredFile,
    UploadTicket,
    media_type,
    safe_filename,
)

__all__ = [
    "EMULATED_FAILURE",
    "TERMINAL_STATUSES",
    "EmulatorState",
    "FetchFailed",
    "Prediction",
    "PredictionSpec",
    "RequestRecord",
    "StoredFile",
    "UploadTicket",
    "safe_filename",
]

TERMINAL_STATUSES = frozenset({"completed", "failed"})
EMULATED_FAILURE = "Emulated failure: the model rejected this request"

# A poll that is otherwise due to complete waits this long for a still-running render, so that
# processing_polls=N means exactly N polls instead of racing the renderer thread.
_POLL_WORK_WAIT = 5.0


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
            required_seconds=config.processing_seconds * config.latency_factor(catalog.media_of(spec.kind)),
            nsfw="[nsfw]" in spec.prompt,
            fail_reason=EMULATED_FAILURE if failing else None,
            generated=spec.generated,
            kind=spec.kind,
            params=spec.params,
            media_urls=spec.media_urls,
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
            self._uploads[upload_id] = StoredFile(data, media_type(kind).content_type, name)
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
        suffix = f".{prediction.output_ext}" if self.config.output_url_extensions else ""
        prediction.output_path = f"/outputs/{prediction.id}/0{suffix}"
        if prediction.output_text is not None:
            prediction.outputs = [prediction.output_text]  # an LLM answers text, not a file
        elif prediction.base64_output:
            encoded = base64.b64encode(data).decode("ascii")
            if self.config.base64_data_uri_prefix:
                encoded = f"data:{prediction.output_content_type};base64,{encoded}"
            prediction.outputs = [encoded]
        else:
            prediction.outputs = [prediction.base_url + prediction.output_path]
        prediction.status = "completed"
        price = self.price_of(prediction.model, prediction.params)
        if price:
            # Billed on completion, as the account's balance shows it.
            self.config.balance = max(0.0, round(self.config.balance - price, 6))

    def price_of(self, model: str, inputs: dict[str, Any]) -> float | None:
        """What one run of ``model`` with ``inputs`` costs (the quote; after the configured discount)."""
        quoted = catalog.price(model, inputs, self.config.price_of(model))
        if quoted is None:
            return None
        return round(quoted * (1 - self.config.price_discount_rate), 6)

    async def _work(self, prediction: Prediction) -> None:
        """Background task of a prediction; an interrupted one fails instead of hanging in processing."""
        try:
            await self._fetch_and_render(prediction)
        except asyncio.CancelledError:
            prediction.work_error = "Prediction interrupted: the emulator was stopped"
            raise

    async def _fetch_and_render(self, prediction: Prediction) -> None:
        """Fetch every input file, then render the output in a worker thread (never on the loop)."""
        base = prediction.base_url
        try:
            inputs = await asyncio.gather(*(fetch.fetch_input(self, url, base) for url in prediction.image_urls))
            others = await asyncio.gather(
                *(fetch.fetch_input(self, url, base, media) for media, url in prediction.media_urls)
            )
        except FetchFailed as exc:
            prediction.work_error = str(exc)
            return
        if prediction.fail_reason is not None:
            return
        job = render.Job(
            kind=prediction.kind,
            prompt=prediction.prompt,
            params=dict(prediction.params),
            aspect_ratio=prediction.aspect_ratio,
            output_format=prediction.output_format,
            scale=self.config.scale,
            images=list(inputs),
        )
        for (media, _), data in zip(prediction.media_urls, others, strict=True):
            job.media_inputs.setdefault(media, []).append(data)
        started = time.perf_counter()
        try:
            output = await asyncio.get_running_loop().run_in_executor(None, render.render, job)
        except Exception as exc:  # e.g. a corrupt file that passed the magic-byte check
            what = "file" if prediction.media_urls else "image"
            prediction.work_error = f"Failed to process input {what}: {exc}"
            return
        prediction.output_bytes, prediction.output_text = output.data, output.text
        prediction.output_ext, prediction.output_content_type = output.ext, output.content_type
        prediction.inference_ms = max(1, math.ceil((time.perf_counter() - started) * 1000))

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

