"""An API that answers like a compromised or broken WaveSpeed: each defect of the attack review, through
the real path (the hook, operators and trigger over loopback HTTP, moto for S3).

The sections follow issue 10: output fetching (SSRF), deadlines, starvation of the shared pool, size
caps, 404s on a stored prediction, a failed state-store write, the key echoed by a server, and local
faults reported as local.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.exceptions import (
    WaveSpeedAuthError,
    WaveSpeedConnectionConfigError,
    WaveSpeedError,
    WaveSpeedInputError,
    WaveSpeedMalformedResponseError,
    WaveSpeedOutputError,
    WaveSpeedOutputRefusedError,
    WaveSpeedPredictionFailedError,
    WaveSpeedResponseTooLargeError,
    WaveSpeedResumeError,
    WaveSpeedSubmitUncertainError,
    WaveSpeedTimeoutError,
    WaveSpeedTransportError,
)
from airflow_wavespeed.hooks.answers import CappedBody
from airflow_wavespeed.hooks.event_loop import LoopResources
from airflow_wavespeed.hooks.limits import RequestLimits
from airflow_wavespeed.hooks.outputs import OutputDownloader, OutputHostPolicy, is_public_address
from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator
from airflow_wavespeed.prediction import accepted_outputs
from airflow_wavespeed.triggers.event import PredictionEvent
from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger
from airflow_wavespeed.utils.ledger import STATE_STORE_KEY
from tests import hostile_server as hs
from tests.conftest import connection_json
from tests.hostile_server import HostileServer
from tests.task_context import DictStateStore, make_context

pytest_plugins = ["tests.s3_fixtures"]

EDIT = "openai/gpt-image-2/edit"
SUBMIT = "POST /api/v3/openai/gpt-image-2/edit"
KEY = "sk-hostile-" + "Q7x9" * 8
MiB = 1024 * 1024
FAST = {"retry_min_wait": 0.01, "retry_max_wait": 0.05}


@pytest.fixture
def png(sample_png: bytes) -> bytes:
    return sample_png


def use(server: HostileServer | hs.CloseDelimitedServer | Emulator, monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any] | None = None) -> None:
    """Point ``wavespeed_default`` at ``server`` with the distinctive key."""
    conn = json.loads(connection_json(server.base_url, KEY))
    if extra is not None:
        conn["extra"] = json.dumps(extra)
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", json.dumps(conn))


def png_route(data: bytes, content_type: str = "image/png") -> hs.Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=data, content_type=content_type)

    return handle


@pytest.fixture
def internal() -> Iterator[HostileServer]:
    """An internal service on loopback (think cloud metadata): it answers a secret to anyone."""

    async def secret(request: web.Request) -> web.StreamResponse:
        return web.Response(text="AKIA-INTERNAL-SECRET", content_type="text/plain")

    with HostileServer({"GET /latest/meta-data": secret}) as server:
        yield server


def completed_with(outputs: list[str]) -> dict[str, hs.Handler]:
    """An API whose submit answers a completed prediction with these outputs."""
    return {SUBMIT: hs.answer(hs.prediction("p-ssrf", outputs=outputs))}


def edit(**kwargs: Any) -> WaveSpeedImageEditOperator:
    arguments: dict[str, Any] = {
        "task_id": "edit",
        "images": ["https://example.com/in.png"],
        "prompt": "make it blue",
        "deferrable": False,
        "hook_params": FAST,
    }
    return WaveSpeedImageEditOperator(**{**arguments, **kwargs})


# ---------------------------------------------------------------- 1. output downloads (SSRF)


def test_an_output_on_an_internal_address_is_never_fetched_nor_stored_locally(
    monkeypatch: pytest.MonkeyPatch, internal: HostileServer, tmp_path: Path
) -> None:
    secret_url = internal.url("/latest/meta-data")
    with HostileServer(completed_with([secret_url])) as api:
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedOutputRefusedError, match=r"non-public address \(127\.0\.0\.1\)") as raised:
            edit(output_uri=str(tmp_path / "out")).execute(make_context())
    assert secret_url in str(raised.value)
    assert internal.hits["GET /latest/meta-data"] == 0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_an_output_on_an_internal_address_is_never_written_to_s3(
    monkeypatch: pytest.MonkeyPatch, internal: HostileServer, aws_conn: str, s3: Any, bucket: str
) -> None:
    with HostileServer(completed_with([internal.url("/latest/meta-data")])) as api:
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedOutputRefusedError):
            edit(output_uri=f"s3://{bucket}/edits").execute(make_context())
    assert internal.hits["GET /latest/meta-data"] == 0
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_every_redirect_hop_is_checked(monkeypatch: pytest.MonkeyPatch, internal: HostileServer, tmp_path: Path) -> None:
    """Three hops on the API's own (allowed) origin, the fourth to an internal address: refused there."""
    target = internal.url("/latest/meta-data")
    holder: dict[str, str] = {}

    async def hop(request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        raise web.HTTPFound(target if n >= 3 else f"/hop/{n + 1}")

    async def submit(request: web.Request) -> web.StreamResponse:
        return web.json_response(hs.prediction("p-hops", outputs=[holder["first"]]))

    with HostileServer({"GET /hop/{n}": hop, SUBMIT: submit}) as api:
        holder["first"] = api.url("/hop/1")
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedOutputRefusedError, match="non-public address"):
            edit(output_uri=str(tmp_path)).execute(make_context())
        assert [api.hits[f"GET /hop/{n}"] for n in (1, 2, 3)] == [1, 1, 1]
    assert internal.hits["GET /latest/meta-data"] == 0


def test_a_url_with_credentials_is_refused_and_the_password_never_printed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    leaky = "http://admin:hunter2-secret@127.0.0.1:9/outputs/x.png"
    with HostileServer(completed_with([leaky])) as api:
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedOutputRefusedError, match="carries credentials") as raised:
            edit(output_uri=str(tmp_path)).execute(make_context())
    assert "hunter2" not in str(raised.value) and "***@" in str(raised.value)


def test_only_image_bytes_are_stored_and_named_by_their_type(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, png: bytes
) -> None:
    """From the API's own origin: a script named .py is refused, a PNG named .py is stored as .png."""
    script = b"import os; os.system('rm -rf /')\n"
    routes = {"GET /outputs/evil.py": png_route(script, "text/plain"), "GET /outputs/real.py": png_route(png, "text/x-python")}
    holder: dict[str, list[str]] = {}

    async def submit(request: web.Request) -> web.StreamResponse:
        return web.json_response(hs.prediction("p-types", outputs=holder["outputs"]))

    with HostileServer({**routes, SUBMIT: submit}) as api:
        use(api, monkeypatch)
        holder["outputs"] = [api.url("/outputs/evil.py")]
        with pytest.raises(WaveSpeedOutputRefusedError, match=r"output http://\S+/outputs/evil.py of prediction p-types is not an image"):
            edit(output_uri=str(tmp_path / "a")).execute(make_context())
        assert not (tmp_path / "a").exists() or not any((tmp_path / "a").rglob("*"))

        holder["outputs"] = [api.url("/outputs/real.py")]
        (stored,) = edit(output_uri=str(tmp_path / "b")).execute(make_context())
    assert stored.endswith("p-types_0.png") and Path(stored).read_bytes() == png


def test_a_refused_connection_is_a_provider_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with HostileServer(completed_with([])) as api:
        dead_port_url = f"{api.base_url}/outputs/gone.png"  # the API's own origin: allowed, then closed
    with HostileServer(completed_with([dead_port_url])) as api:
        # The trusted origin is this server's; the dead one is another loopback port: opt in to reach it.
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedOutputError, match="could not connect|failed") as raised:
            edit(output_uri=str(tmp_path), allow_private_output_hosts=True).execute(make_context())
    assert not isinstance(raised.value, WaveSpeedOutputRefusedError)


@pytest.mark.parametrize("where", ["operator", "connection-extra"])
def test_private_deployments_opt_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, png: bytes, where: str
) -> None:
    with HostileServer({"GET /cdn/out.png": png_route(png)}) as private_cdn:
        api = HostileServer(completed_with([private_cdn.url("/cdn/out.png")]))
        with api:
            use(api, monkeypatch, extra={"allow_private_output_hosts": True} if where == "connection-extra" else None)
            opt_in = {"allow_private_output_hosts": True} if where == "operator" else {}
            (stored,) = edit(output_uri=str(tmp_path), **opt_in).execute(make_context())
    assert Path(stored).read_bytes() == png


def test_the_address_a_connection_reached_is_checked_again(monkeypatch: pytest.MonkeyPatch, png: bytes) -> None:
    """A DNS answer that changed between the check and the connection (rebinding) is caught at connect."""
    with HostileServer({"GET /x.png": png_route(png)}) as cdn:
        policy = OutputHostPolicy(trusted_origin=("https", "api.wavespeed.ai", 443))
        monkeypatch.setattr(policy.__class__, "check_url", lambda self, url, **_: None)  # the name looked public
        downloader = OutputDownloader(policy, RequestLimits())
        refused = pytest.raises(WaveSpeedOutputRefusedError, match="non-public address 127.0.0.1 when connecting")
        with refused, downloader.open(cdn.url("/x.png")):
            pass
        assert cdn.hits["GET /x.png"] == 0


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("64:ff9b::7f00:1", False),
        ("2002:7f00:1::", False),
        ("2002:0808:0808::", True),
    ],
)
def test_public_addresses_table(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_an_ip_literal_host_and_localhost_are_refused_before_any_connection() -> None:
    policy = OutputHostPolicy(trusted_origin=("https", "api.wavespeed.ai", 443))
    for url in ("http://127.0.0.1:9/x.png", "http://localhost:9/x.png", "http://[::1]:9/x.png", "http://0x7f000001/x.png"):
        with pytest.raises(WaveSpeedOutputRefusedError):
            policy.check_url(url)
    for url in ("ftp://example.com/x.png", "file:///etc/passwd", "http:///x.png"):
        with pytest.raises(WaveSpeedOutputRefusedError):
            policy.check_url(url)
    policy.check_url("https://api.wavespeed.ai/outputs/x.png")  # the connection's own origin, unresolved


# ---------------------------------------------------------------- 2. every request has a total deadline

TRICKLED = json.dumps(hs.prediction("p-slow", status="processing")).encode()


def test_a_trickled_submit_answer_cannot_hold_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer({SUBMIT: hs.trickle(TRICKLED, 0.2)}) as api:
        use(api, monkeypatch)
        hook = WaveSpeedHook(request_timeout=1.5, read_timeout=5, **FAST)
        started = time.monotonic()
        with pytest.raises(WaveSpeedSubmitUncertainError, match=r"no complete answer within 1.5 s"):
            hook.submit(EDIT, {"images": ["https://example.com/a.png"], "prompt": "p"})
        assert time.monotonic() - started < 4
        assert api.hits[SUBMIT] == 1


def test_a_trickled_poll_cannot_outlast_wait_for_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer({"GET /api/v3/predictions/{id}/result": hs.trickle(TRICKLED, 0.2)}) as api:
        use(api, monkeypatch)
        started = time.monotonic()
        with pytest.raises(WaveSpeedTimeoutError, match="did not finish within 2"):
            WaveSpeedHook(read_timeout=5, **FAST).wait_for_prediction("p-slow", poll_interval=0.1, timeout=2)
        assert time.monotonic() - started < 4


TRICKLE_SHAPES = {
    "length": {},
    "chunked": {"with_length": False},
    "length, close": {"close": True},
    "no length, close": {"with_length": False, "close": True},
}


@pytest.mark.parametrize("shape", TRICKLE_SHAPES)
def test_a_trickled_answer_is_cut_at_the_deadline_whatever_its_framing(
    monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """A trickled answer is cut when the request's total deadline is up, also when the server answers
    ``Connection: close`` (http.client then forgets the socket on the connection), and is reported as a
    timeout, never as "malformed JSON" (a body that ends with its connection just stops when cut)."""
    handler = hs.trickle(TRICKLED, 0.05, **TRICKLE_SHAPES[shape])
    with HostileServer({"GET /api/v3/predictions/{id}/result": handler}) as api:
        use(api, monkeypatch)
        hook = WaveSpeedHook(request_timeout=1.0, read_timeout=5, max_attempts=1, **FAST)
        started = time.monotonic()
        with pytest.raises(WaveSpeedTransportError, match=r"no complete answer within 1.0 s") as raised:
            hook.get_prediction("p-slow")
        assert time.monotonic() - started < 2.5, "the body takes 4.5 s to trickle: the deadline cut it"
        assert not isinstance(raised.value, WaveSpeedMalformedResponseError)


def test_a_close_delimited_answer_cut_at_the_deadline_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """No length and no chunks: the body ends with the connection, so the cut leaves JSON that just stops.
    That is the deadline's doing, and the error says so rather than calling the answer malformed."""
    with hs.CloseDelimitedServer(TRICKLED, 0.05) as api:
        use(api, monkeypatch)
        hook = WaveSpeedHook(request_timeout=1.0, read_timeout=5, max_attempts=1, **FAST)
        started = time.monotonic()
        with pytest.raises(WaveSpeedTransportError, match=r"no complete answer within 1.0 s") as raised:
            hook.get_prediction("p-slow")
        assert time.monotonic() - started < 2.5
        assert not isinstance(raised.value, WaveSpeedMalformedResponseError)
    with hs.CloseDelimitedServer(TRICKLED, 0.0) as whole:  # the same answer in time parses
        use(whole, monkeypatch)
        assert WaveSpeedHook(request_timeout=1.0, max_attempts=1).get_prediction("p-slow").id == "p-slow"


def test_a_tls_handshake_that_never_ends_is_bounded_by_connect_timeout() -> None:
    """The deadline watches a connection from its first request; before that, the TLS handshake is bounded
    as a whole by ``connect_timeout`` (CPython turns a socket timeout into a deadline over the handshake),
    however slowly the server trickles it."""
    with hs.StalledHandshakeServer(0.05) as cdn:
        policy = OutputHostPolicy(trusted_origin=None, allow_private=True)
        downloader = OutputDownloader(policy, RequestLimits(connect_timeout=2, transfer_timeout=1))
        started = time.monotonic()
        late = pytest.raises(WaveSpeedOutputError, match="took longer than transfer_timeout=1 s")
        with late, downloader.open(f"{cdn.base_url}/x.png") as (stream, _):
            stream.read()
        assert time.monotonic() - started < 3.5, "the handshake alone would take 14 minutes"


def test_a_deadline_that_runs_out_while_a_connection_opens_still_cuts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain-http connection opens inside the request, after the deadline started watching it: a slow DNS
    answer (an attacker's own name server) used to leave the deadline nothing to shut, and the trickled
    body then ran for as long as its read timeout allowed per byte."""
    real = socket.getaddrinfo

    def slow_dns(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-dns.test":
            time.sleep(1.5)  # past the whole transfer_timeout, before any connection exists
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_dns)
    with HostileServer({"GET /o.png": hs.trickle(b"x" * 400, 0.05)}) as cdn:  # 20 s to trickle
        policy = OutputHostPolicy(trusted_origin=None, allow_private=True)
        downloader = OutputDownloader(policy, RequestLimits(transfer_timeout=1, connect_timeout=5, read_timeout=5))
        started = time.monotonic()
        late = pytest.raises(WaveSpeedOutputError, match="took longer than transfer_timeout=1 s")
        with late, downloader.open(f"http://slow-dns.test:{cdn.port}/o.png") as (stream, _):
            stream.read()
        # Two slow lookups (the policy's, the connection's): 3 s; the trickle would add 20 s.
        assert time.monotonic() - started < 5, f"{time.monotonic() - started:.1f} s"


@pytest.fixture
def hung_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Lookups of ``*.hung.test`` never answer (an attacker's name server dropping queries), until the
    test ends; returns the names looked up."""
    real = socket.getaddrinfo
    released = threading.Event()
    asked: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host).endswith(".hung.test"):
            asked.append(host)
            released.wait(60)
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield asked
    released.set()


def test_the_output_hosts_lookup_is_bounded_by_connect_timeout(hung_dns: list[str]) -> None:
    """The address rule looks the output host up before anything is sent: a name whose lookup never
    ends (the answer chose it) is refused after connect_timeout, not after the system resolver's limits."""
    policy = OutputHostPolicy(trusted_origin=("https", "api.wavespeed.ai", 443))
    downloader = OutputDownloader(
        policy, RequestLimits(connect_timeout=1, read_timeout=30, transfer_timeout=60)
    )
    started = time.monotonic()
    refused = pytest.raises(
        WaveSpeedOutputError, match=r"looking up 'cdn.hung.test' took longer than 1 s; it was not"
    )
    with refused, downloader.open("https://cdn.hung.test/x.png"):
        pass
    assert time.monotonic() - started < 3
    assert hung_dns == ["cdn.hung.test"]


def test_a_connections_own_lookup_is_bounded_by_connect_timeout(hung_dns: list[str]) -> None:
    """Where the policy looks nothing up (a private deployment that opted in), the connection's own
    lookup has the same bound, and is reported as a connection that never opened (nothing was sent)."""
    policy = OutputHostPolicy(trusted_origin=None, allow_private=True)
    downloader = OutputDownloader(
        policy, RequestLimits(connect_timeout=1, read_timeout=30, transfer_timeout=60)
    )
    started = time.monotonic()
    unsent = pytest.raises(WaveSpeedOutputError, match="failed: download: could not connect")
    with unsent, downloader.open("http://cdn.hung.test:9/x.png"):
        pass
    assert time.monotonic() - started < 3
    assert hung_dns == ["cdn.hung.test"]


def test_an_api_host_whose_lookup_hangs_fails_as_never_sent(
    hung_dns: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's own requests use the same connections: a submit whose host never resolves is known not
    to have been sent (so it cannot have been billed), after connect_timeout per try."""
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json("http://api.hung.test:9", KEY))
    hook = WaveSpeedHook(max_attempts=2, connect_timeout=0.5, **FAST)
    started = time.monotonic()
    with pytest.raises(WaveSpeedTransportError, match="could not connect") as failed:
        hook.submit(EDIT, {"images": ["https://example.com/a.png"], "prompt": "p"})
    assert failed.value.created_nothing
    assert time.monotonic() - started < 3
    assert hung_dns == ["api.hung.test"] * 2, "one bounded lookup per try"


def test_a_lookup_the_deadline_cut_is_still_known_unsent(hung_dns: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """With a deadline shorter than connect_timeout the lookup ends with the deadline, but nothing was
    sent: the submit is retried, never 'uncertain'."""
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json("http://api.hung.test:9", KEY))
    hook = WaveSpeedHook(max_attempts=2, connect_timeout=30, request_timeout=0.5, **FAST)
    with pytest.raises(WaveSpeedTransportError, match="could not connect") as failed:
        hook.submit(EDIT, {"images": ["https://example.com/a.png"], "prompt": "p"})
    assert failed.value.created_nothing
    assert hung_dns == ["api.hung.test"] * 2


def test_a_deadline_that_ended_in_time_stays_unexpired() -> None:
    """Read after its request finished (a malformed answer is judged then), a deadline says what the
    request saw, not whether the time has since run out."""
    from airflow_wavespeed.hooks.deadline import Deadline

    with Deadline(0.05) as deadline:
        pass
    time.sleep(0.1)
    assert not deadline.expired


def test_a_link_local_address_keeps_its_scope_when_connected_to() -> None:
    """The connection connects to the looked-up address itself: an IPv6 scope (the interface of a
    link-local address) must survive, or the connect fails with EINVAL."""
    from airflow_wavespeed.hooks.deadline import _numeric_host

    answer = socket.getaddrinfo("fe80::1%lo", 80, 0, socket.SOCK_STREAM)[0][4]
    host = _numeric_host(answer)
    assert host.startswith("fe80::1%")
    assert socket.getaddrinfo(host, 80, 0, socket.SOCK_STREAM)[0][4] == answer
    assert _numeric_host(("127.0.0.1", 80)) == "127.0.0.1"
    assert _numeric_host(("2606:4700::1", 80, 0, 0)) == "2606:4700::1"


def test_a_lookup_left_running_does_not_hold_up_the_task_process_exit() -> None:
    """The overrunning lookup thread is a daemon: the process that gave up on it still exits at once."""
    script = (
        "import socket, time\n"
        "socket.getaddrinfo = lambda *a, **k: time.sleep(600)\n"
        "from airflow_wavespeed.hooks.deadline import resolve\n"
        "try:\n"
        "    resolve('cdn.hung.test', 443, 0.2)\n"
        "except TimeoutError as error:\n"
        "    print('gave up:', error)\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "gave up: looking up 'cdn.hung.test' took longer than 0.2 s"
    assert time.monotonic() - started < 30, "the process waited for the lookup thread"


def test_a_download_the_deadline_cut_short_is_an_error_even_without_a_length() -> None:
    """A body with no Content-Length simply ends when the deadline shuts its connection: never a success."""
    from airflow_wavespeed.hooks.deadline import Deadline
    from airflow_wavespeed.hooks.outputs import _Stream

    class Ended:
        def read(self, size: int) -> bytes:
            return b""

    deadline = Deadline(60)
    deadline.expired = True
    with pytest.raises(WaveSpeedOutputError, match="took longer than transfer_timeout=60 s"):
        _Stream(Ended(), deadline, "https://e.com/o.png").read(1024)
    assert _Stream(Ended(), Deadline(60), "https://e.com/o.png").read(1024) == b"", "a body that ended in time"


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
def test_a_trickled_output_cannot_outlast_transfer_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, png: bytes, close: bool
) -> None:
    holder: dict[str, str] = {}

    async def submit(request: web.Request) -> web.StreamResponse:
        return web.json_response(hs.prediction("p-trickle", outputs=[holder["url"]]))

    with HostileServer({SUBMIT: submit, "GET /outputs/slow.png": hs.trickle(png, 0.05, close=close)}) as api:
        holder["url"] = api.url("/outputs/slow.png")
        use(api, monkeypatch)
        started = time.monotonic()
        with pytest.raises(WaveSpeedOutputError, match="took longer than transfer_timeout=1.5 s"):
            edit(output_uri=str(tmp_path), hook_params={**FAST, "transfer_timeout": 1.5}).execute(make_context())
        assert time.monotonic() - started < 4
    assert not any(tmp_path.rglob("*.png"))


@pytest.mark.parametrize("behaviour", ["hang", "trickle"])
async def test_the_trigger_times_out_on_time_whatever_the_server_does(
    monkeypatch: pytest.MonkeyPatch, behaviour: str
) -> None:
    handler = hs.hang() if behaviour == "hang" else hs.trickle(TRICKLED, 0.2)
    with HostileServer({"GET /api/v3/predictions/{id}/result": handler}) as api:
        use(api, monkeypatch)
        poll_interval, deadline = 0.5, time.time() + 2.0
        trigger = WaveSpeedPredictionTrigger("p-slow", poll_interval=poll_interval, end_time=deadline, hook_params=FAST)
        (event,) = [event.payload async for event in trigger.run()]
        late = time.time() - deadline
    assert event["status"] == "timeout" and "p-slow" in event["message"]
    assert late <= poll_interval + 1.0, f"{late:.2f} s after the deadline"


# ---------------------------------------------------------------- 3. hung polls cannot starve healthy ones


async def test_hung_polls_do_not_starve_healthy_triggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """120 hung polls beside 30 healthy triggers polling every 0.5 s: the healthy ones keep their pace.

    Before the fix the loop's pool held 100 connections, all taken by hung polls.
    """
    polls: dict[str, list[float]] = {}

    async def result(request: web.Request) -> web.StreamResponse:
        prediction_id = request.match_info["id"]
        if prediction_id.startswith("hung"):
            await asyncio.sleep(3600)
        polls.setdefault(prediction_id, []).append(time.monotonic())
        return web.json_response(hs.prediction(prediction_id, status="processing"))

    with HostileServer({"GET /api/v3/predictions/{id}/result": result}) as api:
        use(api, monkeypatch)
        end = time.time() + 4.0
        hung = [WaveSpeedPredictionTrigger(f"hung-{n}", poll_interval=0.5, end_time=end) for n in range(120)]
        await asyncio.sleep(0)
        healthy = [WaveSpeedPredictionTrigger(f"ok-{n}", poll_interval=0.5, end_time=end) for n in range(30)]

        async def drain(trigger: WaveSpeedPredictionTrigger) -> None:
            async for _ in trigger.run():
                pass

        await asyncio.gather(*(drain(t) for t in hung + healthy))
    gaps = [b - a for times in polls.values() for a, b in zip(times, times[1:], strict=False)]
    assert len(polls) == 30 and all(len(times) >= 5 for times in polls.values()), {k: len(v) for k, v in polls.items()}
    assert max(gaps) <= 1.0, f"longest gap {max(gaps):.2f} s, more than twice the 0.5 s interval"


async def test_a_poll_waits_for_a_pooled_connection_no_longer_than_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_wavespeed.hooks import event_loop

    monkeypatch.setattr(event_loop, "POOL_LIMIT", 1)
    with HostileServer({"GET /api/v3/predictions/{id}/result": hs.hang()}) as api:
        use(api, monkeypatch)
        hook = WaveSpeedHook(connect_timeout=0.5, max_attempts=1)
        try:
            holder = asyncio.ensure_future(hook.aget_prediction("hung-1"))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            with pytest.raises(WaveSpeedError, match="could not connect"):
                await hook.aget_prediction("hung-2")
            assert time.monotonic() - started < 2
            holder.cancel()
        finally:
            await LoopResources.current().close()


# ---------------------------------------------------------------- 4. answers have a size cap


@pytest.mark.parametrize(
    "handler",
    [hs.huge(64 * MiB), hs.huge(64 * MiB, announce=True), hs.gzip_bomb(64 * MiB)],
    ids=["streamed", "announced", "gzip-bomb"],
)
def test_an_over_size_poll_answer_is_refused_once_with_bounded_memory(
    monkeypatch: pytest.MonkeyPatch, handler: hs.Handler
) -> None:
    small = hs.answer(hs.prediction("p-warm"))

    async def route(request: web.Request) -> web.StreamResponse:
        return await (small if request.match_info["id"] == "p-warm" else handler)(request)

    with HostileServer({"GET /api/v3/predictions/{id}/result": route}) as api:
        use(api, monkeypatch)
        hook = WaveSpeedHook(max_response_bytes=MiB, **FAST)
        # The first call looks the connection up and opens the session: what that costs is not the answer's.
        hook.get_prediction("p-warm")
        tracemalloc.start()
        try:
            with pytest.raises(WaveSpeedResponseTooLargeError, match="over the cap of 1048576 bytes"):
                hook.get_prediction("p-huge")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert api.hits["GET /api/v3/predictions/p-huge/result"] == 1, "an over-size answer is not retried"
    assert peak < 2 * MiB, f"peak {peak / MiB:.1f} MiB for a 1 MiB cap"


@pytest.mark.parametrize("handler", [hs.huge(64 * MiB), hs.gzip_bomb(64 * MiB)], ids=["streamed", "gzip-bomb"])
async def test_an_over_size_answer_in_the_triggerer_is_an_error_event(
    monkeypatch: pytest.MonkeyPatch, handler: hs.Handler
) -> None:
    with HostileServer({"GET /api/v3/predictions/{id}/result": handler}) as api:
        use(api, monkeypatch)
        trigger = WaveSpeedPredictionTrigger(
            "p-huge", poll_interval=0.1, end_time=time.time() + 30, hook_params={**FAST, "max_response_bytes": MiB}
        )
        (event,) = [event.payload async for event in trigger.run()]
        assert api.hits["GET /api/v3/predictions/p-huge/result"] == 1
    assert event["status"] == "error" and "over the cap" in event["message"]


def _deflate(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(wbits=wbits)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize("wbits", [15, -15], ids=["zlib-deflate", "raw-deflate"])
async def test_the_triggerer_inflates_deflate_with_or_without_its_header(
    monkeypatch: pytest.MonkeyPatch, wbits: int
) -> None:
    body = json.dumps(hs.prediction("p-deflate", outputs=["https://e.com/o.png"])).encode()
    with HostileServer({"GET /api/v3/predictions/{id}/result": hs.encoded([_deflate(body, wbits)], "deflate")}) as api:
        use(api, monkeypatch)
        trigger = WaveSpeedPredictionTrigger("p-deflate", poll_interval=0.1, end_time=time.time() + 30, hook_params=FAST)
        (event,) = [event.payload async for event in trigger.run()]
    assert event["status"] == "success" and event["outputs"] == ["https://e.com/o.png"], event


async def test_a_body_that_does_not_inflate_is_malformed_and_polled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A corrupt gzip body is a malformed answer (retried), not a raw zlib error that ends the wait."""
    good = gzip.compress(json.dumps(hs.prediction("p-corrupt", outputs=["https://e.com/o.png"])).encode())
    corrupt = good[:10] + b"\xff" * 40
    handler = hs.encoded([corrupt, good], "gzip")
    with HostileServer({"GET /api/v3/predictions/{id}/result": handler}) as api:
        use(api, monkeypatch)
        trigger = WaveSpeedPredictionTrigger("p-corrupt", poll_interval=0.1, end_time=time.time() + 30, hook_params=FAST)
        (event,) = [event.payload async for event in trigger.run()]
        assert api.hits["GET /api/v3/predictions/p-corrupt/result"] == 2
    assert event["status"] == "success", event
    with pytest.raises(WaveSpeedMalformedResponseError, match="does not inflate"):
        body = CappedBody("gzip", MiB, "get prediction p-corrupt")
        body.feed(corrupt)


async def test_outputs_the_nsfw_policy_drops_resume_on_a_worker_not_in_the_triggerer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """end_from_trigger with nsfw_policy='drop': when outputs are dropped the worker finishes (and logs it)."""
    from airflow.triggers.base import TaskSuccessEvent

    outputs = ["https://e.com/flagged.png", "https://e.com/clean.png"]
    body = hs.prediction("p-nsfw", outputs=outputs, has_nsfw_contents=[True, False])
    with HostileServer({"GET /api/v3/predictions/{id}/result": hs.answer(body)}) as api:
        use(api, monkeypatch)
        trigger = WaveSpeedPredictionTrigger(
            "p-nsfw", poll_interval=0.1, end_time=time.time() + 30, hook_params=FAST,
            end_from_trigger=True, nsfw_policy="drop",
        )  # fmt: skip
        (event,) = [event async for event in trigger.run()]
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["status"] == "success" and event.payload["outputs"] == outputs


def test_an_api_that_serves_only_the_newer_balance_path_passes_the_connection_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``/api/v3/balance`` answers 404, ``/api/v3/account/balance`` the balance: both checks agree."""
    with HostileServer({"GET /api/v3/account/balance": hs.answer(hs.envelope({"balance": 12.5}))}) as api:
        use(api, monkeypatch)
        hook = WaveSpeedHook(**FAST)
        assert hook.get_balance() == 12.5
        ok, message = hook.test_connection()
    assert ok and "balance: 12.5 USD" in message, message


def test_an_over_size_submit_answer_is_uncertain_and_not_resent(monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer({SUBMIT: hs.huge(16 * MiB)}) as api:
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedSubmitUncertainError, match="over the cap"):
            WaveSpeedHook(max_response_bytes=MiB, **FAST).submit(EDIT, {"images": ["https://e.com/a.png"], "prompt": "p"})
        assert api.hits[SUBMIT] == 1


def _huge_failure() -> dict[str, Any]:
    """A failed prediction whose text fields fill megabytes (within the body cap)."""
    body = hs.prediction("p-huge", status="failed", error="E" * (3 * MiB), model="m" * MiB)
    body["message"] = "M" * MiB
    return body


async def test_a_huge_answer_is_clipped_before_it_reaches_an_event_or_a_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The body cap bounds memory; what an answer puts into a trigger event (stored in Airflow's database),
    XCom or an error message is bounded too: free text clipped, saying how much was left out."""
    with HostileServer({"GET /api/v3/predictions/{id}/result": hs.answer(_huge_failure())}) as api:
        use(api, monkeypatch)
        trigger = WaveSpeedPredictionTrigger("p-huge", poll_interval=0.1, end_time=time.time() + 30, hook_params=FAST)
        (event,) = [event.payload async for event in trigger.run()]
        hook = WaveSpeedHook(**FAST)
        failed = await asyncio.to_thread(hook.wait_for_prediction, "p-huge", poll_interval=0.1, timeout=30)
    with pytest.raises(WaveSpeedPredictionFailedError) as raised:
        accepted_outputs(failed, "allow")
    assert event["status"] == "failed"
    assert len(json.dumps(event)) < 8_000, "the event carries the clipped text, not megabytes"
    assert "more characters)" in event["message"]
    assert len(str(raised.value)) < 3_000 and "more characters)" in str(raised.value)
    assert len(json.dumps(PredictionEvent.from_payload(event).terminal_prediction().to_xcom())) < 3_000


def test_a_huge_error_message_is_clipped(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"code": 500, "message": "busy " * MiB, "data": None}
    with HostileServer({"GET /api/v3/predictions/{id}/result": hs.answer(body, status=500)}) as api:
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedError) as raised:
            WaveSpeedHook(max_attempts=1, **FAST).get_prediction("p-busy")
    assert len(str(raised.value)) < 3_000 and "more characters)" in str(raised.value)


@pytest.mark.parametrize(
    "outputs",
    [[f"https://cdn.example.com/{n}.png" for n in range(1001)], ["https://cdn.example.com/" + "a" * (16 * 1024)]],
    ids=["1001 outputs", "a 16 KiB URL"],
)
def test_outputs_beyond_any_model_are_malformed(monkeypatch: pytest.MonkeyPatch, outputs: list[str]) -> None:
    """No model returns a thousand outputs or a URL of 16 KiB: such an answer never reaches XCom."""
    with HostileServer({"GET /api/v3/predictions/{id}/result": hs.answer(hs.prediction("p-many", outputs=outputs))}) as api:
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedMalformedResponseError, match="p-many has (1001 outputs|an output URL longer)"):
            WaveSpeedHook(max_attempts=1, **FAST).get_prediction("p-many")


def test_an_upload_answer_with_a_16_kib_url_is_malformed(monkeypatch: pytest.MonkeyPatch, png: bytes) -> None:
    body = hs.envelope({"download_url": "https://cdn.example.com/" + "a" * (16 * 1024)})
    with HostileServer({"POST /api/v3/media/upload/binary": hs.answer(body)}) as api:
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedMalformedResponseError, match="no usable 'download_url'"):
            WaveSpeedHook(max_attempts=1, **FAST).upload_media(png, filename="in.png")


def test_json_nested_past_the_stack_is_a_malformed_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A body of 50,000 nested arrays overflows json's recursion: malformed (retried), not a raw RecursionError.
    (Under MAX_JSON_VALUES, so it is decoded: deeper bodies are refused before decoding, by their count.)"""

    async def deep(request: web.Request) -> web.StreamResponse:
        return web.Response(text="[" * 50_000 + "]" * 50_000, content_type="application/json")

    with HostileServer({"GET /api/v3/predictions/{id}/result": deep}) as api:
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedMalformedResponseError, match="not a JSON object"):
            WaveSpeedHook(max_attempts=2, **FAST).get_prediction("p-deep")
        assert api.hits["GET /api/v3/predictions/p-deep/result"] == 2, "retried like any malformed answer"


def test_bytes_after_a_gzip_body_are_malformed_and_count_against_the_cap() -> None:
    """zlib keeps bytes sent after the end of a compressed stream in ``unused_data``, copying all of them on
    every chunk: the triggerer's loop spun and memory grew while the cap, counting inflated bytes, never
    tripped."""
    whole = gzip.compress(b'{"code": 200}')
    body = CappedBody("gzip", 1024, "poll")
    body.feed(whole)
    with pytest.raises(WaveSpeedMalformedResponseError, match="data after the end of the compressed body"):
        body.feed(b"\0" * 10)
    raw = CappedBody("gzip", 1024, "poll")
    with pytest.raises(WaveSpeedResponseTooLargeError):
        raw.feed(gzip.compress(b"x")[:5] + b"\0" * 2048)  # sent bytes alone exceed the cap


def test_odd_headers_on_a_good_answer_are_no_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Content-Length of '²' (str.isdigit() says yes, int() says no) and a Retry-After dated in a year of
    twenty digits raised raw ValueError and OverflowError on answers that were otherwise fine; a submit
    then lost its prediction id to "uncertain"."""

    async def completed(request: web.Request) -> web.StreamResponse:
        return web.json_response(hs.prediction("p-odd"), headers={"Retry-After": "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"})

    with HostileServer({"GET /api/v3/predictions/{id}/result": completed, SUBMIT: completed}) as api:
        use(api, monkeypatch)
        hook = WaveSpeedHook(max_attempts=1, **FAST)
        assert hook.get_prediction("p-odd").id == "p-odd"
        assert hook.submit(EDIT, {"images": ["https://example.com/a.png"], "prompt": "p"}).id == "p-odd"
    from airflow_wavespeed.hooks.answers import content_length, parse_retry_after

    assert content_length("\u00b2") is None and content_length("12") == 12 and content_length(None) is None
    assert parse_retry_after("Mon, 01 Jan 99999999999999999999 00:00:00 GMT") is None


@pytest.mark.parametrize("escape", ["\\u{:04x}"], ids=["json-unicode-escapes"])
async def test_a_key_written_with_json_escapes_is_scrubbed_once_decoded(
    monkeypatch: pytest.MonkeyPatch, escape: str
) -> None:
    """Scrubbing the raw text missed a key the server wrote as \\uXXXX escapes: decoding brought it back, into
    error messages, outputs, XCom and the trigger event."""

    def escaped(text: str) -> str:
        return "".join(escape.format(ord(c)) for c in text)

    async def refuse(request: web.Request) -> web.StreamResponse:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        text = '{"code": 401, "message": "invalid key ' + escaped(key) + '", "data": null}'
        return web.Response(text=text, status=401, content_type="application/json")

    async def completed(request: web.Request) -> web.StreamResponse:
        key = escaped(request.headers["Authorization"].removeprefix("Bearer "))
        text = ('{"code": 200, "message": "ok", "data": {"id": "p-esc", "status": "completed", "model": "m ' + key
                + '", "outputs": ["https://cdn.example.com/o.png?sig=' + key + '"]}}')  # fmt: skip
        return web.Response(text=text, content_type="application/json")

    with HostileServer({"GET /api/v3/balance": refuse, "GET /api/v3/predictions/{id}/result": completed}) as api:
        use(api, monkeypatch)
        hook = WaveSpeedHook(max_attempts=1, **FAST)
        with pytest.raises(WaveSpeedError) as refused:
            await asyncio.to_thread(hook.get_balance)
        prediction = await asyncio.to_thread(hook.get_prediction, "p-esc")
        trigger = WaveSpeedPredictionTrigger("p-esc", poll_interval=0.1, end_time=time.time() + 10, hook_params=FAST)
        (event,) = [event.payload async for event in trigger.run()]
    for seen in (str(refused.value), json.dumps(prediction.to_xcom()), str(prediction.outputs), json.dumps(event)):
        assert KEY not in seen and "***" in seen, seen[:300]


def test_output_urls_together_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """500 URLs of 16,000 characters each pass each URL's limit but made a 7.8 MiB trigger event."""
    outputs = [f"https://cdn.example.com/{n}/" + "a" * 16_000 for n in range(500)]
    with HostileServer({"GET /api/v3/predictions/{id}/result": hs.answer(hs.prediction("p-wide", outputs=outputs))}) as api:
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedMalformedResponseError, match="more than 262144 characters in all"):
            WaveSpeedHook(max_attempts=1, **FAST).get_prediction("p-wide")


async def test_a_key_escaped_outside_the_message_is_scrubbed_from_error_excerpts(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no message, an error quotes the body itself: that excerpt came from the raw text, where the
    escaped key survived scrubbing, and went into the trigger's ERROR event (stored unmasked)."""

    async def gone(request: web.Request) -> web.StreamResponse:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        text = '{"k": "' + key[:3] + f"\\u{ord(key[3]):04x}" + key[4:] + '", "code": 404, "message": "", "data": null}'
        return web.Response(text=text, status=404, content_type="application/json")

    with HostileServer({"GET /api/v3/predictions/{id}/result": gone}) as api:
        use(api, monkeypatch)
        trigger = WaveSpeedPredictionTrigger("p-gone", poll_interval=0.1, end_time=time.time() + 10, hook_params=FAST)
        (event,) = [event.payload async for event in trigger.run()]
    assert event["status"] == "error" and "not found" in event["message"], event
    assert KEY not in json.loads(json.dumps(event["message"])) and "***" in event["message"], event["message"]


async def test_an_unsupported_content_encoding_that_echoes_the_key_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        return web.Response(body=b"{}", headers={"Content-Encoding": key, "Content-Type": "application/json"})

    with HostileServer({"GET /api/v3/predictions/{id}/result": echo}) as api:
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedMalformedResponseError, match="unsupported Content-Encoding") as raised:
            await WaveSpeedHook(max_attempts=1, **FAST).aget_prediction("p-echo")
    assert KEY not in str(raised.value) and "***" in str(raised.value)


async def test_a_completed_prediction_with_an_absurd_timing_still_completes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 401-digit inference time made math.isfinite raise OverflowError: the wait ended in an error after
    one poll, failing a prediction that had completed (and was billed)."""
    body = hs.prediction("p-1", outputs=["https://e.com/a.png"], timings={"inference": 10**400})
    with HostileServer({"GET /api/v3/predictions/{id}/result": hs.answer(body)}) as api:
        use(api, monkeypatch)
        trigger = WaveSpeedPredictionTrigger("p-1", poll_interval=0.1, end_time=time.time() + 10, hook_params=FAST)
        (event,) = [event.payload async for event in trigger.run()]
    assert event["status"] == "success" and event["outputs"] == ["https://e.com/a.png"], event


def test_absurd_numbers_in_a_price_or_a_balance_are_unknown_not_raw_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    routes = {
        "POST /api/v3/model/pricing": hs.answer(hs.envelope({"unit_price": 10**400})),
        "GET /api/v3/balance": hs.answer(hs.envelope({"balance": 10**400})),
    }
    with HostileServer(routes) as api:
        use(api, monkeypatch)
        hook = WaveSpeedHook(max_attempts=1, **FAST)
        assert hook.get_price(EDIT, {"prompt": "p"}) is None, "unknown, never free"
        with pytest.raises(WaveSpeedMalformedResponseError, match="no numeric 'balance'"):
            hook.get_balance()


async def test_an_answer_of_countless_tiny_values_is_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding costs follow the number of values, not the bytes: 8 MiB of ``[]`` held the triggerer's
    shared loop for seconds per poll (and hundreds of MiB). Such an answer is malformed, undecoded."""
    from airflow_wavespeed.prediction import MAX_JSON_VALUES

    crowded = hs.prediction("p-crowd", status="processing", progress=[[]] * 1_500_000)
    with HostileServer({"GET /api/v3/predictions/{id}/result": hs.answer(crowded)}) as api:
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedMalformedResponseError, match=f"more than {MAX_JSON_VALUES} JSON values"):
            await WaveSpeedHook(max_attempts=1, **FAST).aget_prediction("p-crowd")


def test_a_prediction_at_every_limit_is_far_below_the_value_bound() -> None:
    """The value bound never refuses a real answer: one at every other limit holds a few thousand."""
    from airflow_wavespeed.prediction import (
        MAX_JSON_VALUES,
        MAX_OUTPUTS,
        MAX_URLS,
        Prediction,
        parse_envelope,
    )

    outputs = [f"https://cdn.example.com/w_100,h_100,c_fill/{n}.png" for n in range(MAX_OUTPUTS)]
    body = hs.prediction(
        "p-full", outputs=outputs, has_nsfw_contents=[False] * MAX_OUTPUTS,
        urls={f"u{n}": "https://e.com/x" for n in range(MAX_URLS)}, timings={"inference": 1234},
    )  # fmt: skip
    text = json.dumps(body)
    assert text.count(",") + text.count("[") + text.count("{") < MAX_JSON_VALUES / 20
    data, message = parse_envelope(200, text, context="poll")
    assert len(Prediction.from_data(data, message=message).outputs) == MAX_OUTPUTS


def test_a_deflate_body_that_arrives_a_byte_at_a_time_inflates() -> None:
    """Whether "deflate" has its zlib header is read from the first two bytes: a first read of one byte
    (a slow link) took the body for raw deflate and refused it."""
    whole = zlib.compress(b'{"code": 200, "data": {}}')
    body = CappedBody("deflate", 1024, "poll")
    for byte in whole:
        body.feed(bytes([byte]))
    assert bytes(body.data) == b'{"code": 200, "data": {}}'


# ---------------------------------------------------------------- 5 and 6. never abandon a stored prediction


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_a_stored_prediction_that_answers_404_is_never_replaced_by_a_new_submit(
    wavespeed_conn: Emulator, emulator_image_url: str, deferrable: bool
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

    wavespeed_conn.config.processing_polls = 1000
    store = DictStateStore()
    first = edit(images=[emulator_image_url], deferrable=deferrable, timeout=1.5, poll_interval=0.1)
    with pytest.raises((TaskDeferred, WaveSpeedTimeoutError)):
        first.execute(make_context(store=store))
    prediction_id = store.values[STATE_STORE_KEY]["id"]
    assert wavespeed_conn.state.delete_prediction(prediction_id)  # every poll of it now answers 404
    for try_number in (2, 3):  # retries=2: neither may submit
        retry = edit(images=[emulator_image_url], deferrable=deferrable, timeout=1.5, poll_interval=0.1)
        with pytest.raises(WaveSpeedResumeError) as raised:
            retry.execute(make_context(store=store, try_number=try_number))
        assert isinstance(raised.value, AirflowFailException), "fails without using the task's retries"
        message = str(raised.value)
        assert prediction_id in message and "not proof that nothing was billed" in message
        assert f"state-store/{STATE_STORE_KEY}" in message
    assert wavespeed_conn.submit_count() == 1


def test_a_failed_state_store_write_fails_the_task_without_retries(
    wavespeed_conn: Emulator, emulator_image_url: str
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    class BrokenWrites(DictStateStore):
        def set(self, key: str, value: Any, *, retention: Any = None) -> None:
            raise ConnectionError("api-server unreachable")

    with pytest.raises(WaveSpeedResumeError) as raised:
        edit(images=[emulator_image_url], deferrable=True).execute(make_context(store=BrokenWrites()))
    assert isinstance(raised.value, AirflowFailException)
    (prediction,) = wavespeed_conn.predictions.values()
    assert prediction.id in str(raised.value) and "WaveSpeedPredictionSensor" in str(raised.value)
    assert wavespeed_conn.submit_count() == 1


def test_an_unreadable_state_store_submits_nothing(wavespeed_conn: Emulator, emulator_image_url: str) -> None:
    class BrokenReads(DictStateStore):
        def get(self, key: str, default: Any = None) -> Any:
            raise ConnectionError("api-server unreachable")

    with pytest.raises(WaveSpeedError, match="nothing was submitted"):  # a retry: it must read the store
        edit(images=[emulator_image_url]).execute(make_context(store=BrokenReads(), try_number=2))
    assert wavespeed_conn.submit_count(include_rejected=True) == 0


# ---------------------------------------------------------------- 7. the key in a server's own words


def test_a_key_echoed_in_an_error_answer_never_reaches_the_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    with HostileServer({SUBMIT: hs.echo_authorization(401), "GET /api/v3/predictions/{id}/result": hs.echo_authorization(400)}) as api:
        use(api, monkeypatch)
        hook = WaveSpeedHook(**FAST)
        with pytest.raises(WaveSpeedAuthError) as refused:
            hook.submit(EDIT, {"images": ["https://e.com/a.png"], "prompt": "p"})
        with pytest.raises(WaveSpeedError) as rejected:
            hook.get_prediction("p1")
    for error in (refused.value, rejected.value):
        text = f"{error} {error!r} {vars(error)}"
        assert KEY not in text and "invalid credentials: Bearer ***" in str(error)


async def test_a_key_echoed_by_a_failed_prediction_never_reaches_the_trigger_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def failed(request: web.Request) -> web.StreamResponse:
        echo = request.headers["Authorization"]
        body = hs.prediction("p-echo", status="failed", error=f"upstream refused {echo}", outputs=[f"https://cdn.example/{KEY}.png"])
        return web.json_response(body)

    async def refused(request: web.Request) -> web.StreamResponse:
        return web.json_response({"code": 401, "message": f"bad key {KEY}"}, status=401)

    with HostileServer({"GET /api/v3/predictions/p-echo/result": failed, "GET /api/v3/predictions/p-401/result": refused}) as api:
        use(api, monkeypatch)
        events = []
        for prediction_id in ("p-echo", "p-401"):
            trigger = WaveSpeedPredictionTrigger(prediction_id, poll_interval=0.05, end_time=time.time() + 10, hook_params=FAST)
            events += [event.payload async for event in trigger.run()]
    assert [event["status"] for event in events] == ["failed", "error"]
    stored = json.dumps(events)  # what task_instance.next_kwargs would hold, unmasked
    assert KEY not in stored and "upstream refused Bearer ***" in stored


# ---------------------------------------------------------------- 8. local faults are local


@pytest.mark.parametrize(
    ("extra_inputs", "message"),
    [({"seed": object()}, "extra_inputs must hold JSON values only"), ({"strength": float("nan")}, "no NaN")],
    ids=["object", "nan"],
)
def test_inputs_that_are_not_json_are_input_errors_before_any_request(
    wavespeed_conn: Emulator, extra_inputs: dict[str, Any], message: str
) -> None:
    with pytest.raises(WaveSpeedInputError, match=message):
        edit(extra_inputs=extra_inputs)
    with pytest.raises(WaveSpeedInputError, match="inputs must hold JSON values only"):
        WaveSpeedHook().submit(EDIT, {"images": ["https://e.com/a.png"], "prompt": "p", **extra_inputs})
    assert wavespeed_conn.requests == []


@pytest.mark.parametrize("key", ["sk-key-\u00e9\u00e8-" + "x" * 20, "sk-key\r\nX-Injected: 1", "sk-\u4e2d\u6587-key-xxxxxxxx"])
def test_a_malformed_key_is_a_connection_error_before_any_request(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(emulator.base_url, key))
    with pytest.raises(WaveSpeedConnectionConfigError, match="API key with spaces, line breaks") as raised:
        WaveSpeedHook().submit(EDIT, {"images": ["https://e.com/a.png"], "prompt": "p"})
    assert not isinstance(raised.value, WaveSpeedSubmitUncertainError)
    assert emulator.requests == []


# ---------------------------------------------------------------- 9. ids the API returns are checked


def test_an_id_the_api_returns_is_validated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with HostileServer({SUBMIT: hs.answer(hs.prediction("x" * 300, outputs=[]))}) as api:
        use(api, monkeypatch)
        with pytest.raises(WaveSpeedSubmitUncertainError, match="is not one WaveSpeed gives"):
            edit(output_uri=str(tmp_path)).execute(make_context())
        assert api.hits[SUBMIT] == 1


def test_a_base64_image_that_is_not_an_image_is_refused(tmp_path: Path) -> None:
    from airflow_wavespeed.utils.storage import store_outputs
    from tests.emulator_fixtures import loopback_download

    text = base64.b64encode(b"#!/bin/sh\n" * 20).decode()
    with pytest.raises(WaveSpeedOutputRefusedError, match="of prediction p1 is not an image"):
        store_outputs([text], str(tmp_path), download=loopback_download(), names={"prediction_id": "p1", "n": 0})
    assert not any(tmp_path.iterdir())
