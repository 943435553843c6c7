"""WaveSpeedHook: the WaveSpeed v3 API as Python methods, with the key of an Airflow connection.

This module says *what* is asked (paths, bodies, what an answer must hold); how a request travels and
is retried lives in :mod:`airflow_wavespeed.hooks.transport`, and what the hooks of one event loop
share in :mod:`airflow_wavespeed.hooks.event_loop`. aiohttp is imported on first async use: a worker
that submits and defers never loads it.
"""

from __future__ import annotations

import os
import re
import reprlib
import time
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook, mask_secret

from airflow_wavespeed.exceptions import (
    WaveSpeedAuthError,
    WaveSpeedConnectionConfigError,
    WaveSpeedError,
    WaveSpeedInputError,
    WaveSpeedMalformedResponseError,
    WaveSpeedNotFoundError,
    WaveSpeedSpendLimitError,
    WaveSpeedSubmitUncertainError,
    WaveSpeedTimeoutError,
)
from airflow_wavespeed.hooks.catalog import CatalogCalls
from airflow_wavespeed.hooks.event_loop import LoopResources
from airflow_wavespeed.hooks.history import HistoryMixin
from airflow_wavespeed.hooks.limits import RequestLimits
from airflow_wavespeed.hooks.outputs import OutputDownloader, OutputHostPolicy
from airflow_wavespeed.hooks.transport import AsyncTransport, Credentials, Parser, SyncTransport, T, envelope
from airflow_wavespeed.media.sources import open_upload_source, upload_name
from airflow_wavespeed.media.types import SNIFF_BYTES
from airflow_wavespeed.prediction import MAX_URL_CHARS, Prediction, judge_poll
from airflow_wavespeed.utils.validation import (
    check_json,
    check_positive,
    finite_number,
    validate_model,
    validate_prediction_id,
)

if TYPE_CHECKING:
    from types import TracebackType

    import requests
    from airflow.sdk import Connection

__all__ = ["WaveSpeedHook"]

DEFAULT_BASE_URL = "https://api.wavespeed.ai"


class WaveSpeedHook(CatalogCalls, HistoryMixin, BaseHook):
    """
    Talk to the WaveSpeed v3 API with the key of an Airflow connection of type ``wavespeed``.

    The API key is the connection's password; the host, when set, is a full base URL (the default is
    ``https://api.wavespeed.ai``; the bundled emulator is e.g. ``http://127.0.0.1:8765``).

    In a trigger, ``async with hook:`` keeps the event loop's shared session open while it waits.

    :param wavespeed_conn_id: the Airflow connection to use.
    :param limits: timeouts and retry bounds, the fields of
        :class:`~airflow_wavespeed.hooks.limits.RequestLimits` (``connect_timeout``, ``read_timeout``,
        ``sync_read_timeout``, ``upload_read_timeout``, ``max_attempts``, ``retry_min_wait``,
        ``retry_max_wait``, ``retry_max_seconds``, ``request_timeout``, ``transfer_timeout``,
        ``max_response_bytes``, ``max_base64_response_bytes``, ``transfer_min_rate``). Operators pass their ``hook_params`` here.
    """

    conn_name_attr = "wavespeed_conn_id"
    default_conn_name = "wavespeed_default"
    conn_type = "wavespeed"
    hook_name = "WaveSpeed AI"

    def __init__(self, wavespeed_conn_id: str = default_conn_name, **limits: Any) -> None:
        super().__init__()
        self.limits = RequestLimits.from_params(limits, argument="WaveSpeedHook's keyword arguments")
        self.wavespeed_conn_id = wavespeed_conn_id
        self._sync = SyncTransport(self.limits, conn_id=wavespeed_conn_id)
        self._async = AsyncTransport(self.limits, conn_id=wavespeed_conn_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(wavespeed_conn_id={self.wavespeed_conn_id!r})"

    async def __aenter__(self) -> WaveSpeedHook:
        self._lease = LoopResources.current().lease()
        await self._lease.__aenter__()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self._lease.__aexit__(kind, error, traceback)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form for Airflow 3.1/3.2; 3.3 reads the same from ``get_provider_info``."""
        from airflow_wavespeed import CONNECTION_UI_FIELD_BEHAVIOUR

        return CONNECTION_UI_FIELD_BEHAVIOUR

    # ---------------------------------------------------------------- the connection

    @cached_property
    def _credentials(self) -> Credentials:
        return self._credentials_from(self.get_connection(self.wavespeed_conn_id))

    async def _acredentials(self, *, refused: Credentials | None = None) -> Credentials:
        """The connection, read without blocking the loop, once for every hook on it (see LoopResources)."""

        async def read() -> Credentials:
            return self._credentials_from(await self.aget_connection(self.wavespeed_conn_id))

        return await LoopResources.current().credentials(self.wavespeed_conn_id, read, refused=refused)

    def _credentials_from(self, conn: Connection) -> Credentials:
        api_key = (conn.password or "").strip()
        if not api_key:
            raise WaveSpeedConnectionConfigError(
                f"Airflow connection {self.wavespeed_conn_id!r} has no WaveSpeed API key: "
                "put the key in the connection's password field."
            )
        mask_secret(api_key)
        if not api_key.isascii() or not api_key.isprintable() or any(c.isspace() for c in api_key):
            # It could not be sent in a header (or would split one): refused before any request.
            raise WaveSpeedConnectionConfigError(
                f"Airflow connection {self.wavespeed_conn_id!r} has an API key with spaces, line breaks, "
                "control or non-ASCII characters; WaveSpeed keys have none. Paste the key again."
            )
        return Credentials(api_key, self._base_url_from(conn))

    def _base_url_from(self, conn: Connection) -> str:
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            return DEFAULT_BASE_URL
        if not re.match(r"^https?://[^/\s]+", host):
            raise WaveSpeedConnectionConfigError(
                f"Airflow connection {self.wavespeed_conn_id!r} has host {host!r}; the host must be a full "
                f"base URL starting with http:// or https://, such as {DEFAULT_BASE_URL}."
            )
        if re.search(r"(^|/)api(/v\d+)?(/|$)", urlsplit(host).path.strip("/")):
            raise WaveSpeedConnectionConfigError(
                f"Airflow connection {self.wavespeed_conn_id!r} has base URL {host!r}; the base URL is the host "
                f"only, such as {DEFAULT_BASE_URL}, without /api/v3 (the provider adds the API's paths)."
            )
        if conn.port and not re.match(r"^https?://[^/]+:\d+", host):
            host = f"{host}:{conn.port}"
        return host

    @property
    def longest_poll_seconds(self) -> float:
        """The most one poll can take, retries included: no new try starts after ``retry_max_seconds``,
        a try lasts at most its total deadline, and a refused key is read again and the poll sent once
        more (:meth:`aget_prediction`). Reading the connection is Airflow's call and not bounded here: a
        trigger whose deadline is within this reach puts its own timer on the poll."""
        return 2 * (self.limits.retry_max_seconds + self._async.try_seconds)

    @property
    def base_url(self) -> str:
        return self._credentials.base_url

    @property
    def session(self) -> requests.Session:
        """The worker's pooled ``requests`` session."""
        return self._sync.session

    def get_conn(self) -> requests.Session:
        return self.session

    def output_downloader(self, *, allow_private_hosts: bool = False) -> OutputDownloader:
        """Fetches output files by the output-host rules (see :mod:`airflow_wavespeed.hooks.outputs`).

        Output URLs are fetched from public hosts and from this connection's own base URL; the address
        rule is lifted by ``allow_private_hosts`` or ``{"allow_private_output_hosts": true}`` in the
        connection's extra. The key is not needed (and never sent) to download, so a task that only
        copies outputs works without the connection too: then only public hosts are allowed.
        """
        try:
            conn = self.get_connection(self.wavespeed_conn_id)
        except AirflowNotFoundException:
            base_url, opted_in = DEFAULT_BASE_URL, False
        else:
            base_url = self._base_url_from(conn)
            opted_in = conn.extra_dejson.get("allow_private_output_hosts") in (True, "true", "True", "1", 1)
        policy = OutputHostPolicy.for_base_url(base_url, allow_private=allow_private_hosts or opted_in)
        return OutputDownloader(policy, self.limits)

    def _request(self, method: str, path: str, *, context: str, parse: Parser[T], **options: Any) -> T:
        return self._sync.request(method, path, self._credentials, context=context, parse=parse, **options)

    # ---------------------------------------------------------------- the API

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
        # Everything that can fail without a byte sent fails here, as an input or connection error.
        body = check_json(
            {**inputs, "enable_sync_mode": enable_sync_mode, "enable_base64_output": enable_base64_output},
            argument="inputs",
        )
        self._credentials  # noqa: B018 - a connection that cannot be read fails here, before anything is sent
        limits = self.limits
        try:
            prediction = self._request(
                "POST",
                f"/api/v3/{model}",
                context=f"submit to {model}",
                parse=_prediction_parser("submit"),
                billable=True,
                read_timeout=limits.sync_read_timeout if enable_sync_mode else limits.read_timeout,
                total_timeout=limits.request_timeout + (limits.sync_read_timeout if enable_sync_mode else 0.0),
                max_bytes=limits.max_base64_response_bytes if enable_base64_output else None,
                data=body,
            )
        except WaveSpeedError as error:
            if error.created_nothing:
                raise
            raise _submit_uncertain(model, error) from error
        except Exception as error:  # any other surprise may describe a billed prediction
            raise _submit_uncertain(model, error) from error
        self.log.info("Submitted WaveSpeed prediction %s (%s), status %s", prediction.id, model, prediction.raw_status)
        return prediction

    def get_prediction(self, prediction_id: str, *, base64_outputs: bool = False, until: float | None = None) -> Prediction:
        """Fetch a prediction's current state (``GET /api/v3/predictions/{id}/result``).

        :param base64_outputs: the prediction was submitted with ``enable_base64_output``: its answer
            may carry images, so it is read up to ``max_base64_response_bytes``.
        :param until: a ``time.monotonic()`` deadline for the call, retries included.
        """
        validate_prediction_id(prediction_id)
        return self._request(
            "GET",
            f"/api/v3/predictions/{prediction_id}/result",
            context=f"get prediction {prediction_id}",
            parse=_prediction_parser(f"get prediction {prediction_id}"),
            max_bytes=self.limits.max_base64_response_bytes if base64_outputs else None,
            until=until,
        )

    async def aget_prediction(self, prediction_id: str, *, base64_outputs: bool = False) -> Prediction:
        """:meth:`get_prediction` for the triggerer: aiohttp on a shared session, never blocking.

        A key the API refuses is read again once, in case it was rotated. A trigger's poll, so no layer of
        its own between here and the transport: every waiting trigger holds this chain of frames while its
        poll is in flight.
        """
        validate_prediction_id(prediction_id)
        path, context = f"/api/v3/predictions/{prediction_id}/result", f"get prediction {prediction_id}"
        parse = _prediction_parser(context)
        max_bytes = self.limits.max_base64_response_bytes if base64_outputs else None
        credentials = LoopResources.current().known_credentials(self.wavespeed_conn_id) or await self._acredentials()
        try:
            return await self._async.get(path, credentials, context=context, parse=parse, max_bytes=max_bytes)
        except WaveSpeedAuthError:
            fresh = await self._acredentials(refused=credentials)
            if fresh == credentials:
                raise
            return await self._async.get(path, fresh, context=context, parse=parse, max_bytes=max_bytes)

    def wait_for_prediction(
        self,
        prediction_id: str,
        *,
        poll_interval: float = 2.0,
        timeout: float | None = 600.0,
        base64_outputs: bool = False,
    ) -> Prediction:
        """
        Poll in this process until the prediction is terminal; for tasks that do not defer.

        Each poll is judged by :func:`~airflow_wavespeed.prediction.judge_poll`, as in the trigger, and
        no poll (nor its retries) runs past the deadline, however slowly the server answers.

        :raises WaveSpeedTimeoutError: the deadline passed first.
        """
        deadline = None if timeout is None else time.monotonic() + check_positive(timeout, argument="timeout")
        while True:
            try:
                answer: Prediction | WaveSpeedError = self.get_prediction(
                    prediction_id, base64_outputs=base64_outputs, until=deadline
                )
            except WaveSpeedError as error:
                answer = error
            if isinstance(answer, WaveSpeedError) and deadline is not None and time.monotonic() >= deadline:
                answer = WaveSpeedTimeoutError(prediction_id, _wait_timed_out(prediction_id, timeout))
            verdict = judge_poll(prediction_id, answer)
            if verdict.warning:
                self.log.warning("%s", verdict.warning)
            if verdict.error is not None:
                raise verdict.error
            if verdict.finished and verdict.prediction is not None:
                return verdict.prediction
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise WaveSpeedTimeoutError(prediction_id, _wait_timed_out(prediction_id, timeout))
            time.sleep(poll_interval)

    def upload_media(
        self,
        path_or_bytes: str | os.PathLike[str] | bytes | IO[bytes],
        filename: str | None = None,
    ) -> str:
        """
        Upload a local image, video, audio or 3D file and return its download URL, to pass as a model input.

        The file is streamed as the multipart field ``file``; uploads are retried like polls (an upload
        bills nothing). A stream that cannot be rewound is spooled first so a retry can resend it.

        :param path_or_bytes: a path, the bytes, or a binary file object.
        :param filename: the name to send; defaults to the path's name, or one from the bytes' type.
        """
        from requests_toolbelt import MultipartEncoder

        with open_upload_source(path_or_bytes, filename) as upload:
            # The bytes decide what is sent (a name can lie), before anything is sent.
            upload.rewind()
            name, found = upload_name(upload.filename, upload.stream.read(SNIFF_BYTES), f"upload_media: {upload.filename!r}")
            content_type = found.content_type

            def make_body() -> dict[str, Any]:
                upload.rewind()
                encoder = MultipartEncoder(fields={"file": (name, upload.stream, content_type)})
                return {"data": encoder, "headers": {"Content-Type": encoder.content_type}}

            data, _ = self._request(
                "POST",
                "/api/v3/media/upload/binary",
                context=f"upload {name}",
                parse=envelope,
                read_timeout=self.limits.upload_read_timeout,
                total_timeout=self.limits.transfer_timeout,
                make_body=make_body,
            )
        url = data.get("download_url")
        if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
            raise WaveSpeedMalformedResponseError(
                f"upload {name}: no usable 'download_url' in the answer", http_status=200, body=str(data)
            )
        return url

    def get_balance(self) -> float:
        """The account balance in USD (``GET /api/v3/balance``; the newer ``/api/v3/account/balance`` when
        the first answers 404)."""
        try:
            data, _ = self._request("GET", "/api/v3/balance", context="get balance", parse=envelope)
        except WaveSpeedNotFoundError:
            data, _ = self._request("GET", "/api/v3/account/balance", context="get balance", parse=envelope)
        balance = finite_number(data.get("balance"))
        if balance is None:
            raise WaveSpeedMalformedResponseError("get balance: no numeric 'balance'", http_status=200, body=_excerpt(data))
        return balance

    def require_balance(self, min_balance_usd: float, *, refused: str) -> float:
        """The account balance, or :class:`WaveSpeedSpendLimitError` (no retries) when it is below
        ``min_balance_usd``; ``refused`` ends the message with what was not submitted."""
        balance = self.get_balance()
        if balance < min_balance_usd:
            raise WaveSpeedSpendLimitError(
                f"The WaveSpeed balance is {balance:.4f} USD, below min_balance_usd={min_balance_usd:g}; {refused}"
            )
        return balance

    def test_connection(self) -> tuple[bool, str]:
        """Check the key with the cheapest call there is, ``GET /api/v3/balance`` (bills nothing).

        The messages name no connection id: Airflow tests a form under a temporary id the user never
        chose, so they speak of "this connection" and its fields.
        """
        try:
            try:
                data, _ = self._request("GET", "/api/v3/balance", context="check balance", parse=envelope, attempts=2)
            except WaveSpeedNotFoundError:  # the newer path, as get_balance tries it
                data, _ = self._request(
                    "GET", "/api/v3/account/balance", context="check balance", parse=envelope, attempts=2
                )
        except WaveSpeedNotFoundError as error:
            return False, (
                f"{self.base_url} answered 404 for /api/v3/balance ({error.api_message or 'not found'}). The base "
                f"URL must be the WaveSpeed API's host only, such as {DEFAULT_BASE_URL}."
            )
        except WaveSpeedError as error:
            return False, str(error).replace(f"Airflow connection {self.wavespeed_conn_id!r}", "this connection")
        return True, f"Connected to WaveSpeed at {self.base_url}; balance: {data.get('balance')} USD"


def _excerpt(data: Any) -> str:
    """A short repr of an answer's data for an error: ``str()`` of megabytes of it took the triggerer's loop
    tenths of a second on every poll."""
    short = reprlib.Repr()
    short.maxstring, short.maxother, short.maxlist, short.maxdict, short.maxlevel = 200, 200, 5, 10, 3
    return short.repr(data)


def _prediction_parser(context: str) -> Parser[Prediction]:
    """Read a prediction from an answer's data; one that is not a prediction is a malformed answer."""

    def parse(data: dict[str, Any], message: str) -> Prediction:
        try:
            return Prediction.from_data(data, message=message)
        except ValueError as error:
            raise WaveSpeedMalformedResponseError(f"{context}: {error}", http_status=200, body=_excerpt(data)) from None

    return parse


def _wait_timed_out(prediction_id: str, timeout: float | None) -> str:
    return (
        f"WaveSpeed prediction {prediction_id} did not finish within {timeout} s; it may still finish on "
        "WaveSpeed: wait on it again with WaveSpeedPredictionSensor."
    )


def _submit_uncertain(model: str, error: BaseException) -> WaveSpeedSubmitUncertainError:
    return WaveSpeedSubmitUncertainError(
        f"Submitting to {model} failed after the request may have reached WaveSpeed ({error}). A prediction "
        "may have been created and billed, so it was not submitted again. Look for it in the WaveSpeed "
        "dashboard's prediction history before re-running this task."
    )
