"""How one request reaches WaveSpeed and comes back: deadlines, size caps, the retry loop, error mapping.

The hook decides *what* to ask; this module decides *how*. A worker's requests go through one pooled
``requests`` session (:class:`SyncTransport`); a trigger's polls through the aiohttp session its event
loop shares (:class:`AsyncTransport`). Every answer is untrusted input, so on either side:

- one try has a total deadline (:class:`Deadline` on the sync side, aiohttp's ``total`` on the async
  side) besides its connect and read timeouts: a server that trickles its answer cannot hold a worker;
- an answer is read up to a size cap, decompressed a chunk at a time, and one over the cap is an error
  that is never retried;
- redirects are not followed (the API never redirects; a hostile one could point anywhere);
- the API key is scrubbed from the answer before any message, error or event is built from it;
- faults are retried by the one table in :mod:`airflow_wavespeed.exceptions` (:func:`may_retry`).
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import ipaddress
import logging
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import requests
import tenacity
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
import urllib3.util.connection

from airflow_wavespeed import __version__
from airflow_wavespeed.exceptions import (
    WaveSpeedAPIError,
    WaveSpeedError,
    WaveSpeedMalformedResponseError,
    WaveSpeedResponseTooLargeError,
    WaveSpeedTransportError,
    may_retry,
)
from airflow_wavespeed.hooks.event_loop import LoopResources
from airflow_wavespeed.hooks.limits import RequestLimits
from airflow_wavespeed.prediction import MAX_FIELD_CHARS, clip, parse_envelope

if TYPE_CHECKING:
    import aiohttp

USER_AGENT = f"airflow-provider-wavespeed/{__version__}"
#: How much of an answer is read at a time (and so the most decompressed ahead of the size check).
CHUNK_BYTES = 64 * 1024
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

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT}
        object.__setattr__(self, "headers", headers)  # built once, not per request
        # The triggerer's session inflates bodies itself (CappedBody): offer only what it can inflate.
        object.__setattr__(self, "async_headers", {**headers, "Accept-Encoding": "gzip, deflate"})

    def scrub(self, text: str) -> str:
        """``text`` with the key (as written, JSON-escaped or URL-encoded) replaced by ``***``."""
        key = self.api_key
        if len(key) < MIN_SCRUBBED_KEY:
            return text
        for form in {key, key.encode("unicode_escape").decode("ascii"), quote(key, safe="")}:
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


# ---------------------------------------------------------------- the sync side's total deadline

_CURRENT_DEADLINE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("wavespeed_deadline", default=None)


class Deadline:
    """A total time limit on one synchronous request, wherever it blocks.

    ``requests`` has connect and read timeouts but no total: a server that sends a byte a second never
    trips a read timeout. While a deadline is entered, every connection the request uses (the
    connection classes of :class:`GuardedAdapter` report in) is shut down when the time is up, which
    wakes the blocked read at once; the caller then sees :attr:`expired`.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = max(seconds, 0.0)
        self._expired = False
        self._connections: list[urllib3.connection.HTTPConnection] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._token: contextvars.Token[Deadline | None] | None = None
        self._ends = float("inf")

    def __enter__(self) -> Deadline:
        self._token = _CURRENT_DEADLINE.set(self)
        self._ends = time.monotonic() + self.seconds
        self._timer.start()
        return self

    @property
    def expired(self) -> bool:
        """Whether the time is up (also in the moment before the timer has shut the connections)."""
        return self._expired or time.monotonic() >= self._ends

    @expired.setter
    def expired(self, value: bool) -> None:
        self._expired = value

    def remaining(self) -> float:
        """Seconds left; what a step the deadline cannot interrupt (a DNS lookup) may still take."""
        return max(self._ends - time.monotonic(), 0.0)

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._expired, self._ends = self.expired, float("inf")  # what the request saw; time no longer runs
        with self._lock:
            self._connections.clear()
        if self._token is not None:
            _CURRENT_DEADLINE.reset(self._token)

    def cut_short(self, context: str) -> WaveSpeedTransportError:
        """The error for a request this deadline cut."""
        return WaveSpeedTransportError(f"{context}: no complete answer within {self.seconds:.1f} s", request_sent=True)

    def watch(self, connection: urllib3.connection.HTTPConnection) -> None:
        with self._lock:
            self._connections.append(connection)
            expired = self.expired
        if expired:
            _shut(connection)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)


def _shut(connection: urllib3.connection.HTTPConnection) -> None:
    # An answer that ends with its connection ("Connection: close", or no length) takes the socket over:
    # http.client then sets ``connection.sock`` to None while the body is still being read, so the socket
    # kept when the connection was opened is the one to shut.
    sock = connection.sock or getattr(connection, "opened_socket", None)
    if sock is not None:
        try:
            # The plain socket's shutdown, also for TLS: it wakes a read blocked in another thread.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


def resolve(host: str, port: int, seconds: float, family: int = socket.AF_UNSPEC) -> list[Any]:
    """``socket.getaddrinfo`` that gives up after ``seconds`` (raising :class:`TimeoutError`).

    A lookup has no timeout of its own and nothing can interrupt it: a host name that a hostile answer
    chose, served by its owner's name server, holds the caller for as long as the system resolver lets
    it, per lookup. So a name (not an address) is looked up in a daemon thread, which is left behind if
    it overruns: it cannot be stopped, and being a daemon it does not hold up the task process's exit.
    """
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass  # a name: looked up below
    else:
        return socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    answer: list[Any] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            answer.extend(socket.getaddrinfo(host, port, family, socket.SOCK_STREAM))
        except BaseException as error:  # handed to the caller
            failure.append(error)
        finally:
            done.set()

    threading.Thread(target=lookup, name=f"wavespeed-resolve-{host}", daemon=True).start()
    if not done.wait(seconds):
        raise TimeoutError(f"looking up {host!r} took longer than {seconds:g} s")
    if failure:
        raise failure[0]
    return answer


def _numeric_host(sockaddr: tuple[Any, ...]) -> str:
    """The address of a getaddrinfo answer as a host to connect to, an IPv6 scope (link-local) kept."""
    scope = sockaddr[3] if len(sockaddr) == 4 else 0
    return f"{sockaddr[0]}%{scope}" if scope and "%" not in sockaddr[0] else str(sockaddr[0])


def _connect_resolved(connection: Any, make: Callable[[], socket.socket]) -> socket.socket:
    """Open ``connection`` as urllib3 would, its DNS lookup bounded by the connect timeout and what is
    left of the current :class:`Deadline` (urllib3's own lookup has no bound)."""
    bounds = [connection.timeout] if isinstance(connection.timeout, (int, float)) else []
    deadline = _CURRENT_DEADLINE.get()
    if deadline is not None:
        bounds.append(deadline.remaining())
    if not bounds:
        return make()
    seconds = min(bounds)
    name = connection._dns_host
    try:
        found = resolve(name, connection.port, seconds, urllib3.util.connection.allowed_gai_family())
    except TimeoutError:
        raise urllib3.exceptions.ConnectTimeoutError(
            connection, f"looking up {connection.host} took longer than {seconds:g} s"
        ) from None
    except (OSError, UnicodeError) as error:
        raise urllib3.exceptions.NameResolutionError(connection.host, connection, error) from None  # type: ignore[arg-type]
    failed: Exception | None = None
    try:
        for address in dict.fromkeys(_numeric_host(info[4]) for info in found):
            # urllib3 connects to ``_dns_host``; an address there needs no second (unbounded) lookup.
            connection._dns_host = address
            try:
                return make()
            except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as error:
                failed = error  # try the host's next address, as urllib3 does
    finally:
        connection._dns_host = name
    raise failed or urllib3.exceptions.NameResolutionError(connection.host, connection, socket.gaierror("no address"))


#: Checks the address a new connection reached: ``(scheme, host, port, peer address)``; raises to refuse.
PeerCheck = Callable[[str, str, int, str], None]


def _connection_classes(peer_check: PeerCheck | None) -> dict[str, type[urllib3.connectionpool.HTTPConnectionPool]]:
    """urllib3 pool classes whose connections report to the current :class:`Deadline` and, when given,
    have the address they connected to checked (no DNS trick can swap the address between check and use)."""

    def new_conn(connection: Any, scheme: str, make: Callable[[], socket.socket]) -> socket.socket:
        sock = _connect_resolved(connection, make)
        if peer_check is not None and getattr(connection, "proxy", None) is None:
            try:
                peer_check(scheme, connection.host, connection.port, sock.getpeername()[0])
            except BaseException:
                sock.close()
                raise
        return sock

    def request(connection: Any, send: Callable[[], None]) -> None:
        deadline = _CURRENT_DEADLINE.get()
        if deadline is not None:
            deadline.watch(connection)
        send()

    def opened(connection: Any) -> None:
        # Keep the socket for the deadline (see _shut), and report in again: a plain http connection
        # opens inside request(), after it was watched, so a deadline that ran out while it was opening
        # (slow DNS, a dropped SYN) found no socket to shut. watch() shuts one that has expired.
        connection.opened_socket = connection.sock
        deadline = _CURRENT_DEADLINE.get()
        if deadline is not None:
            deadline.watch(connection)

    class Connection(urllib3.connection.HTTPConnection):
        opened_socket: socket.socket | None = None

        def _new_conn(self) -> socket.socket:
            return new_conn(self, "http", super()._new_conn)

        def connect(self) -> None:
            super().connect()
            opened(self)

        def request(self, *args: Any, **kwargs: Any) -> None:
            request(self, lambda: super(Connection, self).request(*args, **kwargs))

    class TLSConnection(urllib3.connection.HTTPSConnection):
        opened_socket: socket.socket | None = None

        def _new_conn(self) -> socket.socket:
            return new_conn(self, "https", super()._new_conn)

        def connect(self) -> None:
            super().connect()
            opened(self)  # the TLS socket: the TCP one it wraps was detached

        def request(self, *args: Any, **kwargs: Any) -> None:
            request(self, lambda: super(TLSConnection, self).request(*args, **kwargs))

    class Pool(urllib3.connectionpool.HTTPConnectionPool):
        ConnectionCls = Connection

    class TLSPool(urllib3.connectionpool.HTTPSConnectionPool):
        ConnectionCls = TLSConnection

    return {"http": Pool, "https": TLSPool}


class GuardedAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose connections honour :class:`Deadline` and an optional :data:`PeerCheck`."""

    def __init__(self, peer_check: PeerCheck | None = None, **kwargs: Any) -> None:
        self._pools = _connection_classes(peer_check)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = self._pools
        return manager


def guarded_session(*, peer_check: PeerCheck | None = None, pool_maxsize: int = 16) -> requests.Session:
    """A keep-alive session whose every connection honours :class:`Deadline` (and ``peer_check``)."""
    session = requests.Session()
    adapter = GuardedAdapter(peer_check, pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


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


def read_capped(response: requests.Response, max_bytes: int, context: str) -> bytes:
    """The whole body (decompressed a chunk at a time), or :class:`WaveSpeedResponseTooLargeError`."""
    _check_length(response.headers.get("Content-Length"), max_bytes, context)
    body = bytearray()
    for chunk in response.iter_content(CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(context, max_bytes)
    return bytes(body)


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
                    )  # fmt: skip
                except WaveSpeedMalformedResponseError:
                    # A body that ends with its connection just stops where the deadline cut it.
                    if deadline.expired:
                        raise deadline.cut_short(where) from None
                    raise
                return parse(*answer)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


class AsyncTransport:
    """A trigger's polls: GET only, on the session every hook on the event loop shares.

    GET only, because it retries every failure the rule allows, which a request that may bill must not.
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

    async def get(
        self, path: str, credentials: Credentials, *, context: str, parse: Parser[T], max_bytes: int | None = None
    ) -> T:
        """
        GET with the retry rule. The first try runs bare; only a failure the rule may cure enters the
        tenacity loop: nearly every poll succeeds at once, and building the retry machinery per poll
        cost a triggerer more CPU than the poll itself (``bench/RESULTS.md``, wait cost).
        """
        started = time.monotonic()
        cap = max_bytes or self.limits.max_response_bytes
        try:
            return await self._send(path, credentials, context=context, parse=parse, cap=cap)
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
                return await self._send(path, credentials, context=context, parse=parse, cap=cap)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def _send(self, path: str, credentials: Credentials, *, context: str, parse: Parser[T], cap: int) -> T:
        """One try: GET, read the body up to ``cap``, return ``parse(data, message)`` of the envelope."""
        import aiohttp

        try:
            async with LoopResources.current().session().get(
                f"{credentials.base_url}{path}",
                headers=credentials.async_headers,
                timeout=self._client_timeout,
                allow_redirects=False,
            ) as response:
                _check_length(response.headers.get("Content-Length"), cap, context)
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
            raise _too_large(self.context, self.cap)
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
                raise _too_large(self.context, self.cap)
        self.data += chunk
        if len(self.data) > self.cap:
            raise _too_large(self.context, self.cap)


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


def _check_length(header: str | None, max_bytes: int, context: str) -> None:
    if (length := content_length(header)) is not None and length > max_bytes:
        raise _too_large(context, max_bytes, announced=length)


def _too_large(context: str, max_bytes: int, announced: int | None = None) -> WaveSpeedResponseTooLargeError:
    size = f"{announced} bytes" if announced is not None else "more"
    return WaveSpeedResponseTooLargeError(
        f"{context}: the answer is {size}, over the cap of {max_bytes} bytes (hook_params max_response_bytes, "
        "or max_base64_response_bytes for base64 outputs); it was not read further and is not retried"
    )


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
