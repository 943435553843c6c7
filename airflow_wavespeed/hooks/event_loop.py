"""What the hooks on one event loop share: one aiohttp session and one read of each connection.

A triggerer runs every waiting trigger on one event loop. Each trigger builds its own hook, but they
all poll the same API with the same key: one connection pool and one connection lookup serve them all.
:meth:`LoopResources.current` gives the running loop's object. A trigger holds a :meth:`lease`
(``async with hook:``) while it waits, and the last one out closes the session, so a short-lived loop
(``dag.test()`` runs each trigger in its own) leaves nothing open behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import aiohttp

#: Whatever the hooks read from a connection (their credentials); compared to tell a refused key.
Credentials = TypeVar("Credentials")
Shared = TypeVar("Shared")

#: How long the hooks on one event loop reuse a connection they read.
CONNECTION_CACHE_SECONDS = 60.0
#: Connections the loop's pool may open at once. Above a triggerer's default capacity (1,000 triggers),
#: so a poll never waits for a connection that other, slow polls hold.
POOL_LIMIT = 1000

log = logging.getLogger(__name__)


@dataclass
class _ConnectionRead(Generic[Credentials]):
    """One read of a connection's credentials, shared by every caller that arrives while it runs."""

    read: asyncio.Future[Credentials]
    expires: float

    def settled(self) -> Credentials | None:
        """What the read gave; None while it runs, or when it failed or was cancelled."""
        if not self.read.done() or self.read.cancelled() or self.read.exception() is not None:
            return None
        return self.read.result()

    def stale(self, refused: Credentials | None) -> bool:
        """Whether to read again: the read failed, expired or gave the key the API just refused.

        Never while it is still running: callers arriving then share it.
        """
        if not self.read.done():
            return False
        last_good = self.settled()
        return last_good is None or last_good == refused or self.expires < time.monotonic()


class LoopResources:
    """The session, its leases and the connection reads of one event loop."""

    _by_loop: dict[asyncio.AbstractEventLoop, LoopResources] = {}

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._leases = 0
        self._reads: dict[str, _ConnectionRead[Any]] = {}
        self._shared: dict[Hashable, Any] = {}

    @classmethod
    def current(cls) -> LoopResources:
        """The running loop's resources, made on first use; what closed loops left is dropped then."""
        loop = asyncio.get_running_loop()
        resources = cls._by_loop.get(loop)
        if resources is None:
            for closed in [other for other in cls._by_loop if other.is_closed()]:
                del cls._by_loop[closed]
            resources = cls._by_loop[loop] = cls()
        return resources

    def session(self) -> aiohttp.ClientSession:
        """The loop's one aiohttp session (one connection pool for every trigger on it)."""
        import aiohttp

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=POOL_LIMIT, keepalive_timeout=30)
            # Bodies are inflated by the reader, within its size cap (transport.CappedBody).
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    def shared(self, key: Hashable, make: Callable[[], Shared]) -> Shared:
        """One object per ``key`` for every trigger on this loop, made on first use and dropped by
        :meth:`close`: the triggers waiting with one connection and one set of hook arguments share one
        hook (a hook keeps nothing of a poll, and one per trigger was a tenth of a wait's memory)."""
        found: Shared | None = self._shared.get(key)
        if found is None:
            found = self._shared[key] = make()
        return found

    def known_credentials(self, conn_id: str) -> Any:
        """The connection's credentials from a read that settled within :data:`CONNECTION_CACHE_SECONDS`,
        else None. Nearly every poll is answered here, with no coroutine, future or shield."""
        entry = self._reads.get(conn_id)
        if entry is None or entry.expires < time.monotonic():
            return None
        return entry.settled()

    async def credentials(
        self,
        conn_id: str,
        read: Callable[[], Awaitable[Credentials]],
        *,
        refused: Credentials | None = None,
    ) -> Credentials:
        """
        The connection's credentials, read at most once per :data:`CONNECTION_CACHE_SECONDS`.

        A triggerer may hold thousands of triggers on one connection; each lookup can be a round trip
        through the API server, so callers arriving while a read is under way wait on that read.
        ``refused`` (a key the API just refused) forces a fresh read unless one was made since. A
        refresh that fails keeps the last good credentials, so a brief API-server outage does not fail
        every waiting task.
        """
        if refused is None and (known := self.known_credentials(conn_id)) is not None:
            return known  # type: ignore[no-any-return]
        entry = self._reads.get(conn_id)
        if entry is None or entry.stale(refused):
            last_good = None if entry is None else entry.settled()
            entry = _ConnectionRead(
                asyncio.ensure_future(_read_or_keep(conn_id, read, last_good)),
                time.monotonic() + CONNECTION_CACHE_SECONDS,
            )
            self._reads[conn_id] = entry
        try:
            return await asyncio.shield(entry.read)
        except Exception:
            if self._reads.get(conn_id) is entry:
                del self._reads[conn_id]  # a failed first read is not cached
            raise

    def lease(self) -> _Lease:
        """Keep the session open while the holder (a waiting trigger) runs; the last one out closes it."""
        return _Lease(self)

    async def close(self) -> None:
        """Close the session and forget the connection reads (short-lived loops, tests)."""
        self._reads.clear()
        self._shared.clear()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        if self._by_loop.get(asyncio.get_running_loop()) is self:
            del self._by_loop[asyncio.get_running_loop()]


class _Lease:
    """``async with`` :meth:`LoopResources.lease`. A class, not an ``asynccontextmanager``: every waiting
    trigger holds one for its whole wait, and a generator-based one costs a suspended frame and an entry
    in the loop's async-generator set per trigger (``bench/RESULTS.md``, wait cost)."""

    __slots__ = ("_resources",)

    def __init__(self, resources: LoopResources) -> None:
        self._resources = resources

    async def __aenter__(self) -> None:
        self._resources._leases += 1

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        resources = self._resources
        resources._leases -= 1
        if not resources._leases:
            await resources.close()


async def _read_or_keep(
    conn_id: str, read: Callable[[], Awaitable[Credentials]], last_good: Credentials | None
) -> Credentials:
    try:
        return await read()
    except Exception as error:
        if last_good is None:
            raise
        log.warning(
            "Re-reading Airflow connection %r failed (%s); polls go on with the key read before", conn_id, error
        )
        return last_good
