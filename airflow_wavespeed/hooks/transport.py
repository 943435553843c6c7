"""How one request reaches WaveSpeed and comes back: timeouts, the retry loop, and error mapping.

The hook decides *what* to ask; this module decides *how*. A worker's requests go through one pooled
``requests`` session (:class:`SyncTransport`); a trigger's polls through the aiohttp session its event
loop shares (:class:`AsyncTransport`). Both retry by the one table in :mod:`airflow_wavespeed.exceptions`
(:func:`~airflow_wavespeed.exceptions.may_retry`) and hand every answer to
:func:`~airflow_wavespeed.prediction.parse_envelope`, so a fault means the same on either side.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import requests
import tenacity

from airflow_wavespeed import __version__
from airflow_wavespeed.exceptions import (
    WaveSpeedAPIError,
    WaveSpeedError,
    WaveSpeedTransportError,
    may_retry,
)
from airflow_wavespeed.hooks.event_loop import LoopResources
from airflow_wavespeed.hooks.limits import RequestLimits
from airflow_wavespeed.prediction import parse_envelope

if TYPE_CHECKING:
    import aiohttp

USER_AGENT = f"airflow-provider-wavespeed/{__version__}"
log = logging.getLogger(__name__)

T = TypeVar("T")
#: Turns an answer's ``(data, message)`` into what the caller wants; raising inside it is a fault like any other.
Parser = Callable[[dict[str, Any], str], T]


def envelope(data: dict[str, Any], message: str) -> tuple[dict[str, Any], str]:
    """The parser that keeps the envelope's ``(data, message)`` as they are."""
    return data, message


@dataclass(frozen=True)
class Credentials:
    """What a request needs from the connection. The key stays out of the repr."""

    api_key: str = field(repr=False)
    base_url: str
    headers: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT}
        object.__setattr__(self, "headers", headers)  # built once, not per request


def retry_rule(
    limits: RequestLimits,
    *,
    billable: bool = False,
    attempts: int | None = None,
    spent: float = 0.0,
) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` and ``AsyncRetrying`` alike: one rule, two loops.

    :param billable: the request creates billable work (a submit): see :func:`may_retry`.
    :param spent: seconds the request already took before this loop began (the async fast path).
    """
    tries = attempts or limits.max_attempts
    backoff = tenacity.wait_exponential_jitter(initial=limits.retry_min_wait, max=limits.retry_max_wait)

    def wait(retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, WaveSpeedAPIError) and error.retry_after is not None:
            return min(error.retry_after, limits.retry_max_seconds)
        return float(backoff(retry_state))

    def log_retry(retry_state: tenacity.RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        sleep = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning(
            "WaveSpeed request failed (%s); try %d of %d in %.1f s", error, retry_state.attempt_number + 1, tries, sleep
        )

    return {
        "retry": tenacity.retry_if_exception(lambda error: may_retry(error, billable=billable)),
        "stop": tenacity.stop_after_attempt(tries) | tenacity.stop_before_delay(limits.retry_max_seconds - spent),
        "wait": wait,
        "before_sleep": log_retry,
        "reraise": True,
    }


class SyncTransport:
    """A worker's requests: one keep-alive ``requests`` session, so polls reuse their connection."""

    def __init__(self, limits: RequestLimits, *, conn_id: str) -> None:
        self.limits = limits
        self.conn_id = conn_id

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def request(
        self,
        method: str,
        path: str,
        credentials: Credentials,
        *,
        context: str,
        parse: Parser[T],
        billable: bool = False,
        read_timeout: float | None = None,
        attempts: int | None = None,
        json: Any = None,
        make_body: Callable[[], dict[str, Any]] | None = None,
    ) -> T:
        """Send one request with the retry rule; return ``parse(data, message)`` of the envelope.

        ``parse`` runs inside the retry loop, so a body that is JSON but not a prediction is retried
        like any other malformed answer.

        :param make_body: returns fresh ``requests`` keyword arguments (``data``, ``headers``) for
            each try, for bodies that a send consumes (streamed uploads).
        """
        url = f"{credentials.base_url}{path}"
        timeout = (self.limits.connect_timeout, read_timeout or self.limits.read_timeout)
        for attempt in tenacity.Retrying(**retry_rule(self.limits, billable=billable, attempts=attempts)):
            with attempt:
                body = make_body() if make_body is not None else {"json": json}
                headers = {**credentials.headers, **body.pop("headers", {})}
                try:
                    response = self.session.request(method, url, headers=headers, timeout=timeout, **body)
                except requests.exceptions.RequestException as error:
                    raise _transport_error(error, f"{context} at {credentials.base_url}") from None
                log.debug("WaveSpeed %s %s -> HTTP %s", method, path, response.status_code)
                return parse(
                    *parse_envelope(
                        response.status_code,
                        response.content,
                        context=context,
                        conn_id=self.conn_id,
                        retry_after=parse_retry_after(response.headers.get("Retry-After")),
                    )
                )
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


class AsyncTransport:
    """A trigger's polls: GET only, on the session every hook on the event loop shares.

    GET only, because it retries every failure the rule allows, which a request that may bill must not.
    """

    def __init__(self, limits: RequestLimits, *, conn_id: str) -> None:
        self.limits = limits
        self.conn_id = conn_id

    @cached_property
    def _client_timeout(self) -> aiohttp.ClientTimeout:
        import aiohttp

        return aiohttp.ClientTimeout(
            total=None, sock_connect=self.limits.connect_timeout, sock_read=self.limits.read_timeout
        )

    async def get(self, path: str, credentials: Credentials, *, context: str, parse: Parser[T]) -> T:
        """
        GET with the retry rule. The first try runs bare; only a failure the rule may cure enters the
        tenacity loop: nearly every poll succeeds at once, and building the retry machinery per poll
        cost a triggerer more CPU than the poll itself (``bench/RESULTS.md``, wait cost).
        """
        started = time.monotonic()
        try:
            return await self._send(path, credentials, context=context, parse=parse)
        except WaveSpeedError as error:
            if self.limits.max_attempts == 1 or not may_retry(error, billable=False):
                raise
            first_error: WaveSpeedError | None = error
        rule = retry_rule(self.limits, spent=time.monotonic() - started)
        async for attempt in tenacity.AsyncRetrying(**rule):
            with attempt:
                if first_error is not None:
                    # Replayed as the loop's try 1, so the rule computes its wait (or Retry-After) from it.
                    replayed, first_error = first_error, None
                    raise replayed
                return await self._send(path, credentials, context=context, parse=parse)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def _send(self, path: str, credentials: Credentials, *, context: str, parse: Parser[T]) -> T:
        """One try: GET, read the body, return ``parse(data, message)`` of the envelope."""
        import aiohttp

        try:
            async with LoopResources.current().session().get(
                f"{credentials.base_url}{path}", headers=credentials.headers, timeout=self._client_timeout
            ) as response:
                body = await response.read()
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise _async_transport_error(error, f"{context} at {credentials.base_url}") from None
        return parse(
            *parse_envelope(status, body, context=context, conn_id=self.conn_id, retry_after=retry_after)
        )


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


def _transport_error(error: requests.exceptions.RequestException, context: str) -> WaveSpeedTransportError:
    """Map a requests failure, telling apart 'never sent' (safe to resubmit) from 'maybe sent'."""
    import urllib3.exceptions

    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)
    never_sent = isinstance(error, requests.exceptions.ConnectTimeout) or isinstance(
        reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
    )
    timed_out = isinstance(error, requests.exceptions.ReadTimeout)
    return _failed(error, context, never_sent=never_sent, timed_out=timed_out)


def _async_transport_error(error: BaseException, context: str) -> WaveSpeedTransportError:
    """The same for aiohttp."""
    import aiohttp

    never_sent = isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
    return _failed(error, context, never_sent=never_sent, timed_out=isinstance(error, asyncio.TimeoutError))


def _failed(error: BaseException, context: str, *, never_sent: bool, timed_out: bool) -> WaveSpeedTransportError:
    if never_sent:
        what = "could not connect"
    elif timed_out:
        what = "no answer within the read timeout"
    else:
        what = f"connection failed ({type(error).__name__})"
    return WaveSpeedTransportError(f"{context}: {what}", request_sent=not never_sent)
