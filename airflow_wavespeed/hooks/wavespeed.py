"""WaveSpeedHook: authentication and every HTTP call to the WaveSpeed v3 API.

One class serves the worker (requests, one pooled session) and the triggerer (aiohttp, one session
shared by every trigger on the event loop). Both go through the same retry rule,
:meth:`WaveSpeedHook._retry_rule`, so a fault is handled the same way wherever it happens.
aiohttp is imported on first async use: a worker that submits and defers never loads it.
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import requests
import tenacity
from airflow.providers.common.compat.sdk import BaseHook, mask_secret

from airflow_wavespeed import __version__
from airflow_wavespeed.exceptions import (
    WaveSpeedAPIError,
    WaveSpeedAuthError,
    WaveSpeedBadRequestError,
    WaveSpeedConnectionConfigError,
    WaveSpeedError,
    WaveSpeedInputError,
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedRateLimitError,
    WaveSpeedServerError,
    WaveSpeedSubmitUncertainError,
    WaveSpeedTimeoutError,
    WaveSpeedTransportError,
)
from airflow_wavespeed.prediction import Prediction, PredictionStatus, parse_envelope
from airflow_wavespeed.utils.media import check_uploadable, sniff_image_extension
from airflow_wavespeed.utils.validation import check_positive, validate_model, validate_prediction_id

if TYPE_CHECKING:
    import aiohttp
    from airflow.sdk import Connection

__all__ = ["Prediction", "PredictionStatus", "WaveSpeedHook"]

DEFAULT_BASE_URL = "https://api.wavespeed.ai"
USER_AGENT = f"airflow-provider-wavespeed/{__version__}"
#: Statuses a retry may cure: rate limiting and the 5xx answers of a busy or restarting service.
RETRYABLE_HTTP_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Envelope ``code`` values over HTTP 200 that mean the same as a 500 or 503: internal, unavailable.
RETRYABLE_API_CODES = frozenset({5000, 5003})
#: Submit failures that prove WaveSpeed created nothing: the key or the request was refused, or a
#: rate limit. They pass through as they are; every other submit failure is uncertain.
SUBMIT_ERRORS_CREATING_NOTHING = (
    WaveSpeedAuthError,
    WaveSpeedBadRequestError,
    WaveSpeedNotFoundError,
    WaveSpeedRateLimitError,
)
#: How long the hooks on one event loop (a triggerer's) reuse a connection they read.
CONNECTION_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class _Credentials:
    """What a request needs from the connection. The key stays out of the repr."""

    api_key: str = field(repr=False)
    base_url: str
    headers: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT}
        object.__setattr__(self, "headers", headers)  # built once, not per request


class WaveSpeedHook(BaseHook):
    """
    Talk to the WaveSpeed v3 API with the key of an Airflow connection of type ``wavespeed``.

    The API key is the connection's password; the host, when set, is a full base URL (the default is
    ``https://api.wavespeed.ai``; the bundled emulator is e.g. ``http://127.0.0.1:8765``).

    :param wavespeed_conn_id: the Airflow connection to use.
    :param connect_timeout: seconds to open a connection.
    :param read_timeout: seconds to wait for an answer (submit, poll, balance).
    :param sync_read_timeout: seconds a sync-mode submit may wait for the model to finish.
    :param upload_read_timeout: seconds to wait for the answer to a media upload.
    :param max_attempts: tries per request for the faults a retry may cure.
    :param retry_min_wait: first backoff in seconds (doubling, with jitter) when no Retry-After is given.
    :param retry_max_wait: longest single backoff when the server gives no Retry-After.
    :param retry_max_seconds: the whole retry sequence of one request never runs longer than this
        (and a server's Retry-After is honoured up to this long).
    """

    conn_name_attr = "wavespeed_conn_id"
    default_conn_name = "wavespeed_default"
    conn_type = "wavespeed"
    hook_name = "WaveSpeed AI"

    def __init__(
        self,
        wavespeed_conn_id: str = default_conn_name,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        sync_read_timeout: float = 300.0,
        upload_read_timeout: float = 300.0,
        max_attempts: int = 5,
        retry_min_wait: float = 1.0,
        retry_max_wait: float = 30.0,
        retry_max_seconds: float = 120.0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("read_timeout", read_timeout),
            ("sync_read_timeout", sync_read_timeout),
            ("upload_read_timeout", upload_read_timeout),
            ("retry_min_wait", retry_min_wait),
            ("retry_max_wait", retry_max_wait),
            ("retry_max_seconds", retry_max_seconds),
        ):
            check_positive(value, argument=name)
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise WaveSpeedInputError(f"max_attempts must be an int of at least 1, got {max_attempts!r}")
        self.wavespeed_conn_id = wavespeed_conn_id
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.sync_read_timeout = sync_read_timeout
        self.upload_read_timeout = upload_read_timeout
        self.max_attempts = max_attempts
        self.retry_min_wait = retry_min_wait
        self.retry_max_wait = retry_max_wait
        self.retry_max_seconds = retry_max_seconds

    def __repr__(self) -> str:
        return f"{type(self).__name__}(wavespeed_conn_id={self.wavespeed_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form for Airflow 3.1/3.2; 3.3 reads the same from ``get_provider_info``."""
        from airflow_wavespeed import CONNECTION_UI_FIELD_BEHAVIOUR

        return CONNECTION_UI_FIELD_BEHAVIOUR

    # ---------------------------------------------------------------- connection

    def _credentials_from(self, conn: Connection) -> _Credentials:
        api_key = (conn.password or "").strip()
        if not api_key:
            raise WaveSpeedConnectionConfigError(
                f"Airflow connection {self.wavespeed_conn_id!r} has no WaveSpeed API key: "
                "put the key in the connection's password field."
            )
        mask_secret(api_key)
        return _Credentials(api_key, self._base_url_from(conn))

    def _base_url_from(self, conn: Connection) -> str:
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            return DEFAULT_BASE_URL
        if not re.match(r"^https?://[^/\s]+", host):
            raise WaveSpeedConnectionConfigError(
                f"Airflow connection {self.wavespeed_conn_id!r} has host {host!r}; the host must be a full "
                f"base URL starting with http:// or https://, such as {DEFAULT_BASE_URL}."
            )
        if conn.port and not re.match(r"^https?://[^/]+:\d+", host):
            host = f"{host}:{conn.port}"
        return host

    @cached_property
    def _credentials(self) -> _Credentials:
        return self._credentials_from(self.get_connection(self.wavespeed_conn_id))

    async def _acredentials(self, *, refused: _Credentials | None = None) -> _Credentials:
        """
        The connection, read without blocking the event loop and shared by the hooks on that loop.

        A triggerer may hold thousands of triggers on one connection; each lookup can be a round trip
        through the API server, so the loop reads it once per :data:`CONNECTION_CACHE_SECONDS`, and
        callers arriving while a read is under way wait on that read. ``refused`` (a key the API just
        refused) forces a fresh read unless one was made since. A refresh that fails keeps the last
        good credentials, so a brief API-server outage does not fail every waiting task.
        """
        loop = asyncio.get_running_loop()
        cache = _LOOP_CREDENTIALS.get(loop)
        if cache is None:
            _forget_closed_loops(_LOOP_CREDENTIALS)
            cache = _LOOP_CREDENTIALS[loop] = {}
        entry = cache.get(self.wavespeed_conn_id)
        if entry is None or _needs_read(entry, refused):
            read = asyncio.ensure_future(self._aread_credentials(None if entry is None else _settled(entry[0])))
            entry = cache[self.wavespeed_conn_id] = (read, time.monotonic() + CONNECTION_CACHE_SECONDS)
        try:
            return await asyncio.shield(entry[0])
        except Exception:
            if cache.get(self.wavespeed_conn_id) is entry:
                del cache[self.wavespeed_conn_id]  # a failed first read is not cached
            raise

    async def _aread_credentials(self, last_good: _Credentials | None) -> _Credentials:
        try:
            return self._credentials_from(await self.aget_connection(self.wavespeed_conn_id))
        except Exception as error:
            if last_good is None:
                raise
            self.log.warning(
                "Re-reading Airflow connection %r failed (%s); polls go on with the key read before",
                self.wavespeed_conn_id,
                error,
            )
            return last_good

    @property
    def base_url(self) -> str:
        return self._credentials.base_url

    @cached_property
    def _client_timeout(self) -> aiohttp.ClientTimeout:
        import aiohttp

        return aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout)

    @cached_property
    def session(self) -> requests.Session:
        """One keep-alive session per hook: polls reuse the connection instead of a new TLS handshake."""
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def get_conn(self) -> requests.Session:
        return self.session

    # ---------------------------------------------------------------- the retry rule

    @staticmethod
    def is_retryable(error: BaseException, *, creates_billable_work: bool = False) -> bool:
        """Whether one more try of the same request may cure ``error``.

        A request that creates billable work (a submit) is retried only when it provably created
        nothing: a 429, or a connection that never opened. Everything else may retry 429, 500, 502,
        503, 504 (and the envelope codes 5000 and 5003), malformed bodies, dropped connections and read
        timeouts.
        """
        if isinstance(error, WaveSpeedRateLimitError):
            return True
        if isinstance(error, WaveSpeedTransportError):
            return not (creates_billable_work and error.request_sent)
        if creates_billable_work:
            return False
        if isinstance(error, WaveSpeedServerError):
            return error.http_status in RETRYABLE_HTTP_STATUSES or error.http_status in RETRYABLE_API_CODES
        return isinstance(error, WaveSpeedMalformedResponseError)

    def _retry_rule(
        self, *, creates_billable_work: bool = False, attempts: int | None = None, spent: float = 0.0
    ) -> dict[str, Any]:
        """Keyword arguments for ``tenacity.Retrying`` and ``AsyncRetrying`` alike: one rule, two loops.

        :param spent: seconds the request already took before this loop began (the async fast path).
        """
        backoff = tenacity.wait_exponential_jitter(initial=self.retry_min_wait, max=self.retry_max_wait)

        def wait(retry_state: tenacity.RetryCallState) -> float:
            error = retry_state.outcome.exception() if retry_state.outcome else None
            if isinstance(error, WaveSpeedAPIError) and error.retry_after is not None:
                return min(error.retry_after, self.retry_max_seconds)
            return float(backoff(retry_state))

        def log_retry(retry_state: tenacity.RetryCallState) -> None:
            error = retry_state.outcome.exception() if retry_state.outcome else None
            sleep = retry_state.next_action.sleep if retry_state.next_action else 0.0
            self.log.warning(
                "WaveSpeed request failed (%s); try %d of %d in %.1f s",
                error,
                retry_state.attempt_number + 1,
                attempts or self.max_attempts,
                sleep,
            )

        return {
            "retry": tenacity.retry_if_exception(
                lambda e: self.is_retryable(e, creates_billable_work=creates_billable_work)
            ),
            "stop": tenacity.stop_after_attempt(attempts or self.max_attempts)
            | tenacity.stop_before_delay(self.retry_max_seconds - spent),
            "wait": wait,
            "before_sleep": log_retry,
            "reraise": True,
        }

    # ---------------------------------------------------------------- sync transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        context: str,
        creates_billable_work: bool = False,
        read_timeout: float | None = None,
        attempts: int | None = None,
        json: Any = None,
        make_body: Callable[[], dict[str, Any]] | None = None,
        parse: Callable[[dict[str, Any], str], Any] = lambda data, message: (data, message),
    ) -> Any:
        """Send one request with the shared retry rule; return ``parse(data, message)`` of the envelope.

        ``parse`` runs inside the retry loop, so a body that is JSON but not a prediction is retried
        like any other malformed answer.

        :param make_body: returns fresh ``requests`` keyword arguments (``data``, ``headers``) for
            each try, for bodies that a send consumes (streamed uploads).
        """
        credentials = self._credentials
        url = f"{credentials.base_url}{path}"
        timeout = (self.connect_timeout, read_timeout or self.read_timeout)
        for attempt in tenacity.Retrying(
            **self._retry_rule(creates_billable_work=creates_billable_work, attempts=attempts)
        ):
            with attempt:
                body = make_body() if make_body is not None else {"json": json}
                headers = {**credentials.headers, **body.pop("headers", {})}
                try:
                    response = self.session.request(method, url, headers=headers, timeout=timeout, **body)
                except requests.exceptions.RequestException as error:
                    raise _transport_error(error, f"{context} at {credentials.base_url}") from None
                self.log.debug("WaveSpeed %s %s -> HTTP %s", method, path, response.status_code)
                return parse(
                    *parse_envelope(
                        response.status_code,
                        response.content,
                        context=context,
                        conn_id=self.wavespeed_conn_id,
                        retry_after=parse_retry_after(response.headers.get("Retry-After")),
                    )
                )
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    # ---------------------------------------------------------------- async transport

    async def _aget(self, path: str, *, context: str, parse: Callable[[dict[str, Any], str], Any]) -> Any:
        """The async twin of :meth:`_request`, for a trigger's polls.

        GET only: it retries every failure the rule allows, which a request that may bill must not.
        """
        credentials = await self._acredentials()
        try:
            return await self._asend_with_retries(path, credentials, context=context, parse=parse)
        except WaveSpeedAuthError:
            # The loop's cached connection may hold a key rotated since: read it again, retry if it changed.
            fresh = await self._acredentials(refused=credentials)
            if fresh == credentials:
                raise
            return await self._asend_with_retries(path, fresh, context=context, parse=parse)

    async def _asend_with_retries(
        self,
        path: str,
        credentials: _Credentials,
        *,
        context: str,
        parse: Callable[[dict[str, Any], str], Any],
    ) -> Any:
        """
        The first try runs bare; only a failure the rule may cure enters the tenacity loop.

        Nearly every poll succeeds at once, and building the retry machinery per poll cost a triggerer
        more CPU (and garbage collection) than the poll itself (``bench/RESULTS.md``, wait cost).
        """
        started = time.monotonic()
        try:
            return await self._asend(path, credentials, context=context, parse=parse)
        except WaveSpeedError as error:
            if self.max_attempts == 1 or not self.is_retryable(error):
                raise
            first_error: WaveSpeedError | None = error
        async for attempt in tenacity.AsyncRetrying(**self._retry_rule(spent=time.monotonic() - started)):
            with attempt:
                if first_error is not None:
                    # Replayed as the loop's try 1, so the rule computes its wait (or Retry-After) from it.
                    replayed, first_error = first_error, None
                    raise replayed
                return await self._asend(path, credentials, context=context, parse=parse)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def _asend(
        self,
        path: str,
        credentials: _Credentials,
        *,
        context: str,
        parse: Callable[[dict[str, Any], str], Any],
    ) -> Any:
        """One try: GET, read the body, return ``parse(data, message)`` of the envelope."""
        import aiohttp

        try:
            async with shared_client_session().get(
                f"{credentials.base_url}{path}", headers=credentials.headers, timeout=self._client_timeout
            ) as response:
                body = await response.read()
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise _atransport_error(error, f"{context} at {credentials.base_url}") from None
        return parse(
            *parse_envelope(status, body, context=context, conn_id=self.wavespeed_conn_id, retry_after=retry_after)
        )

    # ---------------------------------------------------------------- API methods

    def submit(
        self,
        model: str,
        inputs: dict[str, Any],
        *,
        enable_sync_mode: bool = False,
        enable_base64_output: bool = False,
    ) -> Prediction:
        """
        Submit one prediction (billed). Never sent twice.

        Retried only when the request provably created nothing (HTTP 429, or no connection could be
        opened). Any other failure after the request may have reached WaveSpeed raises
        :class:`WaveSpeedSubmitUncertainError` instead of resubmitting.

        :param model: the model path, e.g. ``openai/gpt-image-2/edit``.
        :param inputs: the model's inputs, sent as the JSON body.
        :param enable_sync_mode: the POST waits for the result (it may still come back unfinished).
        :param enable_base64_output: outputs come back as base64 strings instead of URLs.
        """
        validate_model(model)
        if not isinstance(inputs, dict):
            raise WaveSpeedInputError(f"inputs must be a dict of model inputs, got {type(inputs).__name__}")
        body = {**inputs, "enable_sync_mode": enable_sync_mode, "enable_base64_output": enable_base64_output}
        context = f"submit to {model}"
        self._credentials  # noqa: B018 - a connection that cannot be read fails here, before anything is sent
        try:
            data, message = self._request(
                "POST",
                f"/api/v3/{model}",
                context=context,
                creates_billable_work=True,
                read_timeout=self.sync_read_timeout if enable_sync_mode else self.read_timeout,
                json=body,
            )
            prediction = Prediction.from_data(data, message=message)
        except SUBMIT_ERRORS_CREATING_NOTHING:
            raise
        except WaveSpeedTransportError as error:
            if not error.request_sent:
                raise
            raise _submit_uncertain(model, error) from error
        except Exception as error:  # any other answer (or one we cannot read) may describe a billed prediction
            raise _submit_uncertain(model, error) from error
        self.log.info("Submitted WaveSpeed prediction %s (%s), status %s", prediction.id, model, prediction.raw_status)
        return prediction

    def get_prediction(self, prediction_id: str) -> Prediction:
        """Fetch a prediction's current state (``GET /api/v3/predictions/{id}/result``)."""
        validate_prediction_id(prediction_id)
        prediction: Prediction = self._request(
            "GET",
            f"/api/v3/predictions/{prediction_id}/result",
            context=f"get prediction {prediction_id}",
            parse=lambda data, message: _prediction_from(data, message, prediction_id),
        )
        return prediction

    async def aget_prediction(self, prediction_id: str) -> Prediction:
        """:meth:`get_prediction` for the triggerer: aiohttp on a shared session, never blocking."""
        validate_prediction_id(prediction_id)
        prediction: Prediction = await self._aget(
            f"/api/v3/predictions/{prediction_id}/result",
            context=f"get prediction {prediction_id}",
            parse=lambda data, message: _prediction_from(data, message, prediction_id),
        )
        return prediction

    def wait_for_prediction(
        self, prediction_id: str, *, poll_interval: float = 2.0, timeout: float | None = 600.0
    ) -> Prediction:
        """
        Poll in this process until the prediction is terminal; for tasks that do not defer.

        A poll that still fails after its retries is logged and polling goes on until the deadline:
        the prediction is billed already, so giving up early would only lose it.

        :raises WaveSpeedTimeoutError: the deadline passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                prediction = self.get_prediction(prediction_id)
                if prediction.status.is_terminal():
                    return prediction
                if prediction.status is PredictionStatus.UNKNOWN:
                    self.log.warning("Prediction %s has unknown status %r", prediction_id, prediction.raw_status)
            except WaveSpeedError as error:
                if not self.is_retryable(error):
                    raise
                self.log.warning("Polling prediction %s failed, will poll again: %s", prediction_id, error)
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise WaveSpeedTimeoutError(
                    prediction_id,
                    f"WaveSpeed prediction {prediction_id} did not finish within {timeout} s; it may still "
                    "finish on WaveSpeed: wait on it again with WaveSpeedPredictionSensor.",
                )
            time.sleep(poll_interval)

    def upload_media(
        self,
        path_or_bytes: str | os.PathLike[str] | bytes | IO[bytes],
        filename: str | None = None,
    ) -> str:
        """
        Upload a local image and return its download URL, to pass as a model input.

        The file is streamed as the multipart field ``file``; uploads are retried like polls (an upload
        bills nothing). A stream that cannot be rewound is spooled first so a retry can resend it.

        :param path_or_bytes: a path, the bytes, or a binary file object.
        :param filename: the name to send; defaults to the path's name, or one from the bytes' type.
        """
        from requests_toolbelt import MultipartEncoder

        source, filename, rewind, close = _open_upload(path_or_bytes, filename)
        try:
            content_type = check_uploadable(filename, argument="upload_media")

            def make_body() -> dict[str, Any]:
                rewind()
                encoder = MultipartEncoder(fields={"file": (filename, source, content_type)})
                return {"data": encoder, "headers": {"Content-Type": encoder.content_type}}

            data, _ = self._request(
                "POST",
                "/api/v3/media/upload/binary",
                context=f"upload {filename}",
                read_timeout=self.upload_read_timeout,
                make_body=make_body,
            )
        finally:
            close()
        url = data.get("download_url")
        if not isinstance(url, str) or not url:
            raise WaveSpeedMalformedResponseError(
                f"upload {filename}: no 'download_url' in the answer", http_status=200, body=str(data)
            )
        return url

    def test_connection(self) -> tuple[bool, str]:
        """Check the key with the cheapest call there is, ``GET /api/v3/balance`` (bills nothing)."""
        try:
            data, _ = self._request("GET", "/api/v3/balance", context="check balance", attempts=2)
        except WaveSpeedError as error:
            return False, str(error)
        return True, f"Connected to WaveSpeed at {self.base_url}; balance: {data.get('balance')} USD"


def _open_upload(
    source: str | os.PathLike[str] | bytes | IO[bytes], filename: str | None
) -> tuple[IO[bytes], str, Callable[[], Any], Callable[[], None]]:
    """``(file object, filename, rewind, close)`` for any of the sources upload_media takes."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise WaveSpeedInputError(f"upload_media: no file at {str(path)!r}")
        handle = path.open("rb")
        return handle, filename or path.name, lambda: handle.seek(0), handle.close
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise WaveSpeedInputError("upload_media: the bytes are empty")
        buffer = io.BytesIO(data)
        return buffer, filename or f"upload{sniff_image_extension(data[:16]) or '.bin'}", lambda: buffer.seek(0), buffer.close
    if not hasattr(source, "read"):
        raise WaveSpeedInputError(
            f"upload_media takes a path, bytes or a binary file object, got {type(source).__name__}"
        )
    name = filename or os.path.basename(str(getattr(source, "name", "")))
    close: Callable[[], None] = lambda: None  # noqa: E731  (the caller owns the file object)
    if not getattr(source, "seekable", lambda: False)():
        # A stream cannot be rewound for a retry: spool it (memory up to 8 MiB, then disk).
        spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (closed by the caller)
        shutil.copyfileobj(source, spool, 1024 * 1024)
        source, close = spool, spool.close  # type: ignore[assignment]
        source.seek(0)
    start = source.tell()
    if not name:
        name = f"upload{sniff_image_extension(source.read(16)) or '.bin'}"
    return source, name, lambda: source.seek(start), close


def shared_client_session() -> aiohttp.ClientSession:
    """The aiohttp session every hook on the running event loop shares (one connection pool)."""
    import aiohttp

    loop = asyncio.get_running_loop()
    session = _SESSIONS.get(loop)
    if session is None or session.closed:
        _forget_closed_loops(_SESSIONS)
        connector = aiohttp.TCPConnector(limit=100, keepalive_timeout=30)
        session = aiohttp.ClientSession(connector=connector)
        _SESSIONS[loop] = session
    return session


@asynccontextmanager
async def shared_client_session_lease() -> AsyncIterator[None]:
    """Keep the loop's shared session open while any lease holder (a waiting trigger) is running.

    The last holder to leave closes it, so a short-lived loop (``dag.test()`` runs each trigger in
    its own) leaves no unclosed session behind, while a triggerer with waiting triggers keeps its pool.
    """
    loop = asyncio.get_running_loop()
    _LEASES[loop] = _LEASES.get(loop, 0) + 1
    try:
        yield
    finally:
        _LEASES[loop] -= 1
        if not _LEASES[loop]:
            del _LEASES[loop]
            await close_shared_client_session()


async def close_shared_client_session() -> None:
    """Close the running loop's shared session and forget its connections (short-lived loops, tests)."""
    _LOOP_CREDENTIALS.pop(asyncio.get_running_loop(), None)
    session = _SESSIONS.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


def _forget_closed_loops(per_loop: dict[asyncio.AbstractEventLoop, Any]) -> None:
    """Drop what closed event loops left behind (each ``dag.test()`` trigger runs in its own loop)."""
    for loop in [loop for loop in per_loop if loop.is_closed()]:
        del per_loop[loop]


def _needs_read(entry: tuple[asyncio.Future[_Credentials], float], refused: _Credentials | None) -> bool:
    """Whether a loop's cached read must be replaced: it failed, expired or gave the refused key.

    Never while it is still running: callers arriving then share it.
    """
    read, expires = entry
    if not read.done():
        return False
    last_good = _settled(read)
    return last_good is None or last_good == refused or expires < time.monotonic()


def _settled(read: asyncio.Future[_Credentials]) -> _Credentials | None:
    """What a finished connection read gave; None while it runs, or when it failed or was cancelled."""
    if not read.done() or read.cancelled() or read.exception() is not None:
        return None
    return read.result()


_SESSIONS: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
_LEASES: dict[asyncio.AbstractEventLoop, int] = {}
#: Per loop: connection id -> (the read of its credentials, when it expires on the monotonic clock).
_LOOP_CREDENTIALS: dict[asyncio.AbstractEventLoop, dict[str, tuple[asyncio.Future[_Credentials], float]]] = {}


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
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _prediction_from(data: dict[str, Any], message: str, prediction_id: str) -> Prediction:
    try:
        return Prediction.from_data(data, message=message)
    except ValueError as error:
        raise WaveSpeedMalformedResponseError(
            f"get prediction {prediction_id}: {error}", http_status=200, body=str(data)
        ) from None


def _submit_uncertain(model: str, error: BaseException) -> WaveSpeedSubmitUncertainError:
    return WaveSpeedSubmitUncertainError(
        f"Submitting to {model} failed after the request may have reached WaveSpeed ({error}). A prediction "
        "may have been created and billed, so it was not submitted again. Look for it in the WaveSpeed "
        "dashboard's prediction history before re-running this task."
    )


def _transport_error(error: requests.exceptions.RequestException, context: str) -> WaveSpeedTransportError:
    """Map a requests failure, telling apart 'never sent' (safe to resubmit) from 'maybe sent'."""
    import urllib3.exceptions

    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)
    never_sent = isinstance(error, requests.exceptions.ConnectTimeout) or isinstance(
        reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
    )
    if isinstance(error, requests.exceptions.ReadTimeout):
        what = "no answer within the read timeout"
    elif never_sent:
        what = "could not connect"
    else:
        what = f"connection failed ({type(error).__name__})"
    return WaveSpeedTransportError(f"{context}: {what}", request_sent=not never_sent)


def _atransport_error(error: BaseException, context: str) -> WaveSpeedTransportError:
    import aiohttp

    never_sent = isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
    if isinstance(error, asyncio.TimeoutError) and not never_sent:
        what = "no answer within the read timeout"
    elif never_sent:
        what = "could not connect"
    else:
        what = f"connection failed ({type(error).__name__})"
    return WaveSpeedTransportError(f"{context}: {what}", request_sent=not never_sent)
