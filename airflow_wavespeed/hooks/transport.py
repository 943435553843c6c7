"""How one request reaches WaveSpeed and comes back: deadlines, size caps, the retry loop, error mapping.

The hook decides *what* to ask; this module decides *how*. A worker's requests go through one pooled
``requests`` session (:class:`SyncTransport`); a trigger's polls through the aiohttp session its event
loop shares (:class:`AsyncTransport`). Every answer is untrusted input, so on either side:

- one try has a total deadline (:class:`~airflow_wavespeed.hooks.deadline.Deadline` on the sync side,
  aiohttp's ``total`` on the async side) besides its connect and read timeouts: a server that trickles
  its answer cannot hold a worker;
- an answer is read up to a size cap, decompressed a chunk at a time, and one over the cap is an error
  that is never retried (:mod:`airflow_wavespeed.hooks.answers`);
- redirects are not followed (the API never redirects; a hostile one could point anywhere);
- the API key is scrubbed from the answer before any message, error or event is built from it;
- faults are retried by the one table in :mod:`airflow_wavespeed.exceptions` (:func:`may_retry`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import requests
import tenacity
import urllib3.exceptions

from airflow_wavespeed import __version__
from airflow_wavespeed.exceptions import (
    WaveSpeedAPIError,
    WaveSpeedError,
    WaveSpeedMalformedResponseError,
    WaveSpeedTransportError,
    may_retry,
)
from airflow_wavespeed.hooks.answers import (
    CHUNK_BYTES,
    CappedBody,
    check_length,
    parse_retry_after,
    read_capped,
)
from airflow_wavespeed.hooks.deadline import Deadline, guarded_session
from airflow_wavespeed.hooks.event_loop import LoopResources
from airflow_wavespeed.hooks.limits import RequestLimits
from airflow_wavespeed.prediction import MAX_JSON_VALUES, parse_envelope

if TYPE_CHECKING:
    import aiohttp

USER_AGENT = f"airflow-provider-wavespeed/{__version__}"
#: Keys shorter than this are not scrubbed from answers (as Airflow's masker: too short to be a secret,
#: and replacing them would mangle ordinary words).
MIN_SCRUBBED_KEY = 5

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
    async_headers: dict[str, str] = field(init=False, repr=False, compare=False)
    #: The key as written, JSON-escaped and URL-encoded: what :meth:`scrub` looks for, built once (it runs
    #: twice per poll).
    _forms: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT}
        object.__setattr__(self, "headers", headers)  # built once, not per request
        # The triggerer's session inflates bodies itself (CappedBody): offer only what it can inflate.
        object.__setattr__(self, "async_headers", {**headers, "Accept-Encoding": "gzip, deflate"})
        key = self.api_key
        forms = {key, key.encode("unicode_escape").decode("ascii"), quote(key, safe="")}
        object.__setattr__(self, "_forms", tuple(forms) if len(key) >= MIN_SCRUBBED_KEY else ())

    def scrub(self, text: str) -> str:
        """``text`` with the key (as written, JSON-escaped or URL-encoded) replaced by ``***``."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, "***")
        return text


def retry_rule(
    limits: RequestLimits,
    *,
    billable: bool = False,
    attempts: int | None = None,
    spent: float = 0.0,
    until: float | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` and ``AsyncRetrying`` alike: one rule, two loops.

    :param billable: the request creates billable work (a submit): see :func:`may_retry`.
    :param spent: seconds the request already took before this loop began (the async fast path).
    :param until: a ``time.monotonic()`` deadline no retry may start after (a wait's own deadline).
    """
    tries = attempts or limits.max_attempts
    budget = limits.retry_max_seconds - spent
    if until is not None:
        budget = min(budget, until - time.monotonic())
    # wait_exponential_jitter's formula, min(first * 2**n + uniform(0, 1), max), from parts every tenacity
    # we support has: its own ``initial`` warns from tenacity 9.2 on, in every task log, and the
    # ``multiplier`` replacing it is missing before.
    backoff = tenacity.wait_exponential(multiplier=limits.retry_min_wait, max=limits.retry_max_wait) + tenacity.wait_random(0, 1)

    def wait(retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, WaveSpeedAPIError) and error.retry_after is not None:
            return min(error.retry_after, limits.retry_max_seconds)
        return min(float(backoff(retry_state)), limits.retry_max_wait)

    def log_retry(retry_state: tenacity.RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        sleep = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning(
            "WaveSpeed request failed (%s); try %d of %d in %.1f s", error, retry_state.attempt_number + 1, tries, sleep
        )

    return {
        "retry": tenacity.retry_if_exception(lambda error: may_retry(error, billable=billable)),
        "stop": tenacity.stop_after_attempt(tries) | tenacity.stop_before_delay(budget),
        "wait": wait,
        "before_sleep": log_retry,
        "reraise": True,
    }


@contextmanager
def deadline_of(seconds: float, context: str) -> Iterator[Deadline]:
    """Run one request under a :class:`Deadline`. A request it cut short raises a transport error; any
    other failure of the connection is mapped by :func:`transport_error`."""
    with Deadline(seconds) as deadline:
        try:
            yield deadline
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            mapped = transport_error(error, context)
            if deadline.expired and mapped.request_sent:
                raise deadline.cut_short(context) from None
            raise mapped from None  # a connection that never opened was not cut: it sent nothing


class SyncTransport:
    """A worker's requests: one keep-alive session, so polls reuse their connection."""

    def __init__(self, limits: RequestLimits, *, conn_id: str) -> None:
        self.limits = limits
        self.conn_id = conn_id

    @cached_property
    def session(self) -> requests.Session:
        return guarded_session()

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
        total_timeout: float | None = None,
        max_bytes: int | None = None,
        max_values: int = MAX_JSON_VALUES,
        list_data: bool = False,
        attempts: int | None = None,
        until: float | None = None,
        data: bytes | None = None,
        make_body: Callable[[], dict[str, Any]] | None = None,
    ) -> T:
        """Send one request with the retry rule; return ``parse(data, message)`` of the envelope.

        ``parse`` runs inside the retry loop, so a body that is JSON but not a prediction is retried
        like any other malformed answer.

        :param data: a JSON body, already encoded (encoding fails before anything is sent).
        :param make_body: returns fresh ``requests`` keyword arguments (``data``, ``headers``) for
            each try, for bodies that a send consumes (streamed uploads).
        :param until: a ``time.monotonic()`` deadline for the whole call, retries included.
        :param max_values: how many JSON values the answer may hold; ``list_data``: ``data`` may be a list
            (both :func:`~airflow_wavespeed.prediction.parse_envelope`'s).
        """
        url = f"{credentials.base_url}{path}"
        timeout = (self.limits.connect_timeout, read_timeout or self.limits.read_timeout)
        cap = max_bytes or self.limits.max_response_bytes
        rule = retry_rule(self.limits, billable=billable, attempts=attempts, until=until)
        for attempt in tenacity.Retrying(**rule):
            with attempt:
                if make_body is not None:
                    body = make_body()
                else:
                    body = {"data": data, "headers": {"Content-Type": "application/json"} if data is not None else {}}
                headers = {**credentials.headers, **body.pop("headers", {})}
                seconds = total_timeout or self.limits.request_timeout
                if until is not None:
                    seconds = min(seconds, until - time.monotonic())
                where = f"{context} at {credentials.base_url}"
                with (
                    deadline_of(seconds, where) as deadline,
                    self.session.request(
                        method, url, headers=headers, timeout=timeout, allow_redirects=False, stream=True, **body
                    ) as response,
                ):
                    content = read_capped(response, cap, context)
                    status, retry_after = response.status_code, response.headers.get("Retry-After")
                log.debug("WaveSpeed %s %s -> HTTP %s", method, path, status)
                text = credentials.scrub(content.decode("utf-8", "replace"))
                try:
                    answer = parse_envelope(
                        status, text, context=context, conn_id=self.conn_id,
                        retry_after=parse_retry_after(retry_after), scrub=credentials.scrub,
                        max_values=max_values, list_data=list_data,
                    )  # fmt: skip
                except WaveSpeedMalformedResponseError:
                    # A body that ends with its connection just stops where the deadline cut it.
                    if deadline.expired:
                        raise deadline.cut_short(where) from None
                    raise
                return parse(*answer)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


class AsyncTransport:
    """A trigger's polls: GET (and a cancel's DELETE) only, on the session every hook on the event loop shares.

    GET only, because it retries every failure the rule allows, which a request that may bill must not.
    The one exception, :meth:`delete`, is a cancel: cancelling twice is cancelling once and bills nothing.
    """

    def __init__(self, limits: RequestLimits, *, conn_id: str) -> None:
        self.limits = limits
        self.conn_id = conn_id

    @property
    def try_seconds(self) -> float:
        """The total deadline of one try: its whole answer within ``read_timeout`` of connecting, and never
        past ``request_timeout``."""
        limits = self.limits
        return min(limits.request_timeout, limits.connect_timeout + limits.read_timeout)

    @cached_property
    def _client_timeout(self) -> aiohttp.ClientTimeout:
        import aiohttp

        # The total covers the whole try; ``connect`` bounds the wait for a pooled connection (plus
        # opening one), so a poll never queues long behind others that hang.
        limits = self.limits
        return aiohttp.ClientTimeout(
            total=self.try_seconds, connect=limits.connect_timeout, sock_connect=limits.connect_timeout
        )

    async def delete(self, path: str, credentials: Credentials, *, context: str, parse: Parser[T]) -> T:
        """DELETE with the retry rule of a GET: safe, because a cancel is idempotent and creates nothing."""
        return await self.get(path, credentials, context=context, parse=parse, method="DELETE")

    async def search(
        self, path: str, credentials: Credentials, *, context: str, parse: Parser[T], query: dict[str, Any]
    ) -> T:
        """A POST that only reads (a billing-records search): it creates and bills nothing, so it takes the
        retry rule of a GET. Never for a submit."""
        return await self.get(path, credentials, context=context, parse=parse, method="POST", query=query)

    async def get(
        self,
        path: str,
        credentials: Credentials,
        *,
        context: str,
        parse: Parser[T],
        max_bytes: int | None = None,
        method: str = "GET",
        query: dict[str, Any] | None = None,
        first_try: bool = True,
    ) -> T:
        """
        GET (or ``method``, with ``query`` as its JSON body) with the retry rule: read the body up to the
        cap, return ``parse(data, message)`` of the envelope.

        The first try runs here, bare; only a failure the rule may cure goes on in the tenacity loop
        (:meth:`_retried`), whose tries come back through here with ``first_try=False``. Nearly every poll
        succeeds at once: building the retry machinery per poll cost a triggerer more CPU than the poll
        itself, and every layer of frames is memory each waiting trigger holds while its poll is in
        flight (``bench/RESULTS.md``, wait cost).
        """
        import aiohttp

        started = time.monotonic()
        cap = max_bytes or self.limits.max_response_bytes
        try:
            try:
                async with LoopResources.current().session().request(
                    method,
                    f"{credentials.base_url}{path}",
                    headers=credentials.async_headers,
                    timeout=self._client_timeout,
                    allow_redirects=False,
                    json=query,
                ) as response:
                    check_length(response.headers.get("Content-Length"), cap, context)
                    body = CappedBody(response.headers.get("Content-Encoding"), cap, context, credentials.scrub)
                    while chunk := await response.content.read(CHUNK_BYTES):
                        body.feed(chunk)
                    status = response.status
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                raise _async_transport_error(error, f"{context} at {credentials.base_url}") from None
            text = credentials.scrub(body.data.decode("utf-8", "replace"))
            return parse(
                *parse_envelope(
                    status, text, context=context, conn_id=self.conn_id, retry_after=retry_after, scrub=credentials.scrub
                )
            )
        except WaveSpeedError as error:
            if not first_try or self.limits.max_attempts == 1 or not may_retry(error, billable=False):
                raise
            first_error = error
        return await self._retried(
            first_error, time.monotonic() - started, path, credentials,
            context=context, parse=parse, max_bytes=max_bytes, method=method, query=query,
        )  # fmt: skip

    async def _retried(
        self, first_error: WaveSpeedError, spent: float, path: str, credentials: Credentials, **request: Any
    ) -> T:
        """The tenacity loop after a first try (``spent`` seconds) failed with ``first_error``."""
        replay: WaveSpeedError | None = first_error
        async for attempt in tenacity.AsyncRetrying(**retry_rule(self.limits, spent=spent)):
            with attempt:
                if replay is not None:
                    # Replayed as the loop's try 1, so the rule computes its wait (or Retry-After) from it.
                    replayed, replay = replay, None
                    raise replayed
                result: T = await self.get(path, credentials, first_try=False, **request)
                return result
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


def transport_error(error: BaseException, context: str) -> WaveSpeedTransportError:
    """Map a requests (or urllib3) failure, telling apart 'never sent' (safe to resubmit) from 'maybe sent'."""
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
