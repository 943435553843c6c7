"""A total deadline on one synchronous request, wherever it blocks: DNS, connect, TLS, the read.

``requests`` has connect and read timeouts but no total, and its DNS lookup has no bound at all. The
session made by :func:`guarded_session` uses connections that report to the :class:`Deadline` entered
around a request (which shuts them when the time is up) and look their host up within what is left of
it; output downloads also have the address each connection reached checked (:data:`PeerCheck`).
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
import urllib3.util.connection

from airflow_wavespeed.exceptions import WaveSpeedTransportError

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
