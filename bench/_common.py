"""Shared helpers of the benchmarks: the emulator process, an isolated Airflow environment, RSS
sampling, a wall-clock watchdog and side-by-side tables.

Every process a benchmark starts is registered here, so the watchdog (or a normal exit) can stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
BENCH_KEY = "bench-key-0123456789abcdef"
HTTP_CONN_ID = "bench_http"
WAVESPEED_MODEL = "wavespeed-ai/flux-dev"

_CHILDREN: list[subprocess.Popen[Any]] = []
_CHILDREN_LOCK = threading.Lock()


# ------------------------------------------------------------------------------------------ processes


def register(process: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
    """Remember a child so that :func:`stop_children` (and the watchdog) can stop it."""
    with _CHILDREN_LOCK:
        _CHILDREN.append(process)
    return process


def stop_process(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM one child we started, then SIGKILL it if it has not exited within ``grace`` seconds."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(grace)
    with _CHILDREN_LOCK, contextlib.suppress(ValueError):
        _CHILDREN.remove(process)


def stop_children() -> None:
    """Stop every child this process registered (by its own Popen handle, never by name)."""
    with _CHILDREN_LOCK:
        children = list(_CHILDREN)
    for child in children:
        stop_process(child, grace=2.0)


class Watchdog:
    """Bound a script's wall time: past ``seconds`` it stops the registered children and exits 124."""

    def __init__(self, seconds: float, name: str) -> None:
        self.seconds = seconds
        self.name = name
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bench-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        stop_children()

    def _watch(self) -> None:
        if self._done.wait(self.seconds):
            return
        print(f"\n{self.name}: wall-time limit of {self.seconds:.0f} s reached; stopping.", file=sys.stderr)
        stop_children()
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(124)


# ------------------------------------------------------------------------------------------ environment


def airflow_env(home: Path, base_url: str | None = None, port: int | None = None) -> dict[str, str]:
    """Environment variables of an isolated Airflow home, with connections pointing at the emulator."""
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    if base_url is not None and port is not None:
        env["AIRFLOW_CONN_WAVESPEED_DEFAULT"] = json.dumps(
            {"conn_type": "wavespeed", "password": BENCH_KEY, "host": base_url}
        )
        env[f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}"] = json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": port,
                "schema": "http",
                "extra": {"Authorization": f"Bearer {BENCH_KEY}"},
            }
        )
    return env


@contextlib.contextmanager
def temp_airflow_home() -> Iterator[Path]:
    """A throw-away AIRFLOW_HOME, removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="wavespeed-bench-airflow-"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def extract_provider(commit: str, into: Path) -> Path:
    """The ``airflow_wavespeed`` package as it was at ``commit``, extracted under ``into`` (put ``into``
    first on PYTHONPATH to measure that version: the "before" of a before/after)."""
    archive = subprocess.run(["git", "archive", commit, "airflow_wavespeed"], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def machine_note() -> str:
    """One line describing where the figures were taken."""
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{now}; {cpu}, {os.cpu_count()} cores; Linux {platform.release()}; "
        f"Python {platform.python_version()}; shared noisy machine, compare ratios"
    )


# ------------------------------------------------------------------------------------------ emulator


@dataclass
class EmulatorProcess:
    """The WaveSpeed emulator in its own process (its CPU is not the benchmark's).

    ``bench_routes`` starts ``bench/_emulator_plus.py``: the same CLI and app plus one route an
    HttpSensorTrigger can wait on (404 until the prediction is terminal).
    """

    flags: Sequence[str] = ()
    bench_routes: bool = False
    base_url: str = ""
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _log: Path | None = field(default=None, repr=False)

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        fd, log_name = tempfile.mkstemp(prefix="wavespeed-bench-emulator-", suffix=".log")
        os.close(fd)
        self._log = Path(log_name)
        entry = (
            [str(BENCH_DIR / "_emulator_plus.py")]
            if self.bench_routes
            else ["-m", "airflow_wavespeed.emulator"]
        )
        command = [sys.executable, *entry, "--port", "0", "--api-key", BENCH_KEY, *self.flags]
        with self._log.open("wb") as log:
            self.process = register(subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self._log.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("WaveSpeed emulator listening on "):
                    self.base_url = line.rsplit(" ", 1)[1].strip()
                    self.port = int(self.base_url.rsplit(":", 1)[1])
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"the emulator exited with {self.process.returncode}:\n{text}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the emulator did not announce its URL within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        if self._log is not None:
            self._log.unlink(missing_ok=True)

    # -- control endpoints (synchronous: called between measurements only) ------------------------

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        self._call("POST", "/_emulator/reset")

    def configure(self, **changes: Any) -> None:
        self._call("POST", "/_emulator/config", changes)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_emulator/stats")
        return result

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the emulator process has used so far."""
        import psutil

        assert self.process is not None
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def wait_idle(self, limit: float = 120.0, threshold: float = 0.05) -> None:
        """Wait until the emulator's background renders are done (its CPU use drops below 5 %)."""
        deadline = time.monotonic() + limit
        quiet = 0
        while time.monotonic() < deadline and quiet < 2:
            before, started = self.cpu_seconds(), time.monotonic()
            time.sleep(0.25)
            busy = (self.cpu_seconds() - before) / (time.monotonic() - started)
            quiet = quiet + 1 if busy < threshold else 0

    @property
    def default_polls(self) -> int:
        """The ``--processing-polls`` the emulator was started with."""
        flags = list(self.flags)
        if "--processing-polls" in flags:
            return int(flags[flags.index("--processing-polls") + 1])
        return 1


async def create_predictions(base_url: str, count: int, concurrency: int = 32) -> list[str]:
    """Submit ``count`` cheap predictions over plain HTTP (untimed) and return their ids."""
    import aiohttp

    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    url = f"{base_url}/api/v3/{WAVESPEED_MODEL}"
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(number: int) -> str:
            async with semaphore, session.post(url, json={"prompt": f"bench {number}"}, headers=headers) as r:
                body = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"submit failed: HTTP {r.status} {body}")
                prediction_id: str = body["data"]["id"]
                return prediction_id

        return list(await asyncio.gather(*(one(n) for n in range(count))))


# ------------------------------------------------------------------------------------------ measuring


class PeakRss:
    """Sample this process's RSS every ``interval`` seconds in a background thread; keep the peak."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self._process = psutil.Process()
        self.interval = interval
        self.start_rss = self.rss()
        self.peak = self.start_rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-rss", daemon=True)

    def rss(self) -> int:
        return int(self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self.start_rss = self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss())

    @property
    def growth(self) -> int:
        """Peak RSS minus the RSS at entry, in bytes."""
        return self.peak - self.start_rss


class GcTimer:
    """CPU time spent in the cyclic garbage collector (it runs in the thread that allocates, so thread
    CPU time is exact even on a machine that steals time), and the number of full collections."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full_collections = 0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.thread_time()
            return
        self.seconds += time.thread_time() - self._started
        self.full_collections += info["generation"] == 2

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def cpu_seconds() -> float:
    """CPU seconds (user + system, every thread) of this process."""
    return time.process_time()


@contextlib.contextmanager
def output_to_file() -> Iterator[Callable[[], int]]:
    """Send fds 1 and 2 to a temporary file (log lines are still formatted and written: Airflow logs to
    stdout); yields a counter of the lines written so far."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as sink:
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:

            def lines() -> int:
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                sink.seek(0)
                return sum(1 for _ in sink)

            yield lines
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)


# ------------------------------------------------------------------------------------------ reporting


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], markdown: bool = False) -> str:
    """An aligned text table, or a Markdown one."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells[1:]]
    return "\n".join(lines)


def verdict(value: float, limit: float) -> str:
    """PASS when ``value`` is at most ``limit``."""
    return "PASS" if value <= limit else "FAIL"


def child_command(script: Path, *args: str) -> list[str]:
    """The command line that re-runs ``script`` as a child in this interpreter."""
    return [sys.executable, str(script), *args]


def run_child_json(command: Sequence[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run a child that prints one JSON object as its last stdout line; kill it past ``timeout``."""
    process = register(
        subprocess.Popen(
            list(command), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(process)
        raise RuntimeError(f"child {command[1:]} exceeded {timeout:.0f} s") from None
    finally:
        stop_process(process)
    if process.returncode != 0:
        raise RuntimeError(f"child {command[1:]} failed ({process.returncode}):\n{err[-4000:]}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"child {command[1:]} printed no JSON:\n{out[-2000:]}\n{err[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
