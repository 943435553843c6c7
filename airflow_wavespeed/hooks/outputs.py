"""Fetching the output files that WaveSpeed's answers point at, from hosts the rules allow only.

An output URL comes from an API answer, so it is untrusted input: fetched naively, it could make a
worker read an internal service (a cloud metadata endpoint, an admin port) and store what it answers.
So :class:`OutputHostPolicy` allows:

- http(s) only, and no credentials in the URL;
- a host whose every address is public: loopback, private, link-local, multicast, reserved and
  unspecified ranges are refused, IPv4 and IPv6 alike, IPv4 addresses inside IPv6 ones included;
- besides those, the origin (scheme, host, port) of the connection's base URL, so the bundled emulator
  works, and any host at all when a private deployment opts in with ``allow_private_output_hosts``
  (on the operators, or in the connection's extra).

Redirects are followed by hand, every hop checked by the same rules (its DNS lookup bounded in time:
the name is the answer's choice), and the address each connection actually reached is checked again
(:data:`~airflow_wavespeed.hooks.deadline.PeerCheck`), so a DNS answer cannot change between the check
and the use. That only images are stored is decided by the bytes,
in :mod:`airflow_wavespeed.utils.storage`.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from airflow_wavespeed.exceptions import WaveSpeedError, WaveSpeedOutputError, WaveSpeedOutputRefusedError
from airflow_wavespeed.hooks.answers import content_length
from airflow_wavespeed.hooks.deadline import Deadline, guarded_session, resolve
from airflow_wavespeed.hooks.limits import RequestLimits
from airflow_wavespeed.hooks.transport import transport_error

#: Redirect hops followed from one output URL.
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(address: str) -> bool:
    """Whether an IP address is a public one, looking through IPv4-mapped, 6to4, Teredo and NAT64 forms."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(str(embedded))
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified
    )


def redacted(url: str) -> str:
    """A URL safe to print: credentials in it are replaced by ``***``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


@dataclass(frozen=True)
class OutputHostPolicy:
    """Which hosts output files may be fetched from.

    :param trusted_origin: ``(scheme, host, port)`` of the connection's base URL, always allowed.
    :param allow_private: lift the address rule (a private deployment whose outputs live inside).
    """

    trusted_origin: tuple[str, str, int] | None = None
    allow_private: bool = False

    @classmethod
    def for_base_url(cls, base_url: str, *, allow_private: bool = False) -> OutputHostPolicy:
        return cls(_origin(base_url), allow_private)

    def check_url(self, url: str, *, lookup_seconds: float = 10.0) -> None:
        """Refuse a URL the rules do not allow, before anything is sent to it.

        :param lookup_seconds: how long the host's DNS lookup may take (the name is the answer's choice).
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise WaveSpeedOutputRefusedError(f"output URL {redacted(url)!r} is not http(s); it was not fetched")
        if parts.username is not None or parts.password is not None:
            raise WaveSpeedOutputRefusedError(
                f"output URL {redacted(url)!r} carries credentials; it was not fetched"
            )
        host = (parts.hostname or "").lower()
        if not host:
            raise WaveSpeedOutputRefusedError(f"output URL {redacted(url)!r} has no host; it was not fetched")
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise WaveSpeedOutputRefusedError(f"output URL {redacted(url)!r} has an invalid port") from None
        if self.allow_private or (scheme, host, port) == self.trusted_origin:
            return
        try:
            addresses = {info[4][0] for info in resolve(host, port, lookup_seconds)}
        except TimeoutError:
            raise WaveSpeedOutputError(
                f"output URL {redacted(url)!r}: looking up {host!r} took longer than {lookup_seconds:g} s; it was "
                "not fetched"
            ) from None
        except (OSError, UnicodeError) as error:
            raise WaveSpeedOutputError(f"output URL {redacted(url)!r}: cannot resolve {host!r} ({error})") from None
        private = sorted(str(address) for address in addresses if not is_public_address(str(address)))
        if private:
            raise WaveSpeedOutputRefusedError(
                f"output URL {redacted(url)!r} points at a non-public address ({', '.join(private)}); it was not "
                "fetched. Outputs are fetched from public hosts and the connection's own base URL only; a "
                "private deployment can set allow_private_output_hosts=True (operator argument, or "
                "{\"allow_private_output_hosts\": true} in the wavespeed connection's extra)"
            )

    def check_peer(self, scheme: str, host: str, port: int, address: str) -> None:
        """Refuse a connection that reached a non-public address (a :data:`PeerCheck`)."""
        if self.allow_private or (scheme, host.lower(), port) == self.trusted_origin:
            return
        if not is_public_address(address):
            raise WaveSpeedOutputRefusedError(
                f"the output host {host!r} resolved to the non-public address {address} when connecting; "
                "nothing was fetched from it (allow_private_output_hosts lifts this rule)"
            )


class OutputDownloader:
    """Streams output files under an :class:`OutputHostPolicy`, with the hook's timeouts."""

    def __init__(self, policy: OutputHostPolicy, limits: RequestLimits) -> None:
        self.policy = policy
        self.limits = limits
        self.session = guarded_session(peer_check=policy.check_peer, pool_maxsize=4)

    @contextmanager
    def open(self, url: str) -> Iterator[tuple[IO[bytes], int | None]]:
        """The body of ``url`` as a stream and its announced length, redirects checked hop by hop.

        The whole download, read by the caller inside the ``with``, is bounded by ``transfer_timeout``.
        """
        with Deadline(self.limits.transfer_timeout) as deadline:
            try:
                response = self._follow(url, deadline)
            except WaveSpeedError:
                raise
            except Exception as error:
                raise _download_error(url, deadline, error) from None
            with response:
                length = response.headers.get("Content-Length")
                response.raw.decode_content = True
                stream: IO[bytes] = _Stream(response.raw, deadline, url)  # type: ignore[assignment]
                yield stream, content_length(length)

    def _follow(self, url: str, deadline: Deadline) -> requests.Response:
        timeout = (self.limits.connect_timeout, self.limits.read_timeout)
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            if deadline.expired:
                raise _download_error(url, deadline, TimeoutError())
            self.policy.check_url(current, lookup_seconds=min(self.limits.connect_timeout, deadline.remaining()))
            response = self.session.get(current, stream=True, allow_redirects=False, timeout=timeout)
            if response.is_redirect and response.headers.get("Location"):
                response.close()
                current = urljoin(current, response.headers["Location"])
                continue
            if response.status_code >= 400:
                response.close()
                raise WaveSpeedOutputError(f"downloading output {redacted(url)} failed: HTTP {response.status_code}")
            return response
        raise WaveSpeedOutputRefusedError(f"output URL {redacted(url)!r} redirected more than {MAX_REDIRECTS} times")


class _Stream(io.RawIOBase):
    """The download's raw stream, whose failures are provider errors (a deadline's cut says so)."""

    def __init__(self, raw: Any, deadline: Deadline, url: str) -> None:
        self._raw, self._deadline, self._url = raw, deadline, url

    def readinto(self, buffer: Any) -> int:
        try:
            data: bytes = self._raw.read(len(buffer))
        except Exception as error:
            raise _download_error(self._url, self._deadline, error) from None
        if not data and len(buffer) and self._deadline.expired:
            # The deadline shut the connection: a body without a length then just ends, cut short.
            raise _download_error(self._url, self._deadline, EOFError("cut short"))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


def _download_error(url: str, deadline: Deadline, error: BaseException) -> WaveSpeedOutputError:
    if deadline.expired:
        return WaveSpeedOutputError(
            f"downloading output {redacted(url)} took longer than transfer_timeout={deadline.seconds:g} s"
        )
    return WaveSpeedOutputError(f"downloading output {redacted(url)} failed: {transport_error(error, 'download')}")


def _origin(url: str) -> tuple[str, str, int] | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), parts.port or _DEFAULT_PORTS[scheme]
