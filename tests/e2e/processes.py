"""Subprocesses in their own session, stopped as a whole group; bounded waits that fail with log tails."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

T = TypeVar("T")

#: Seconds a process group gets between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 10.0


class Budget:
    """The module's overall time limit: every wait is cut short when it runs out."""

    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + seconds

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def bound(self, timeout: float) -> float:
        """``timeout``, or less when the module's budget ends sooner."""
        return min(timeout, self.remaining())


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file (or a note that it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"[{path} does not exist]"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One command started in a new session, its stdout and stderr in files."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.stdout_path = log_dir / f"{name}.out"
        self.stderr_path = log_dir / f"{name}.err"
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self._descendants: dict[int, psutil.Process] = {}

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_paths(self) -> list[Path]:
        return [self.stdout_path, self.stderr_path]

    def log_text(self) -> str:
        """stdout and stderr so far."""
        return "\n".join(path.read_text(errors="replace") for path in self.log_paths() if path.exists())

    def describe(self, lines: int = 40) -> str:
        """Exit status and the tails of both output files, for failure messages."""
        state = "running" if self.running() else f"exited with {self.popen.returncode}"
        return (
            f"--- {self.name} (pid {self.pid}, {state}) stdout tail:\n{tail(self.stdout_path, lines)}\n"
            f"--- {self.name} stderr tail:\n{tail(self.stderr_path, lines)}"
        )

    def _remember_descendants(self) -> None:
        """Children that may have left the process group (so killpg would miss them)."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children(recursive=True):
                self._descendants.setdefault(child.pid, child)

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)
        for child in list(self._descendants.values()):
            with contextlib.suppress(psutil.Error):
                if child.is_running():
                    child.send_signal(signum)

    def _group_alive(self) -> bool:
        """Any live (non-zombie) member of the group, or a remembered descendant that left it."""
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                member = process.pid in self._descendants or os.getpgid(process.pid) == self.pid
                if member and process.status() != psutil.STATUS_ZOMBIE:
                    return True
        return False

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash, as far as the process can tell)."""
        self._remember_descendants()
        self._signal_group(signal.SIGKILL)
        self._reap(STOP_GRACE_SECONDS)

    def terminate(self) -> None:
        """SIGTERM the group (without waiting); :meth:`finish` waits and SIGKILLs leftovers."""
        if self.running() or self._group_alive():
            self._remember_descendants()
            self._signal_group(signal.SIGTERM)

    def finish(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Wait up to ``grace`` seconds for the group to exit, then SIGKILL whatever is left."""
        if not self._reap(grace):
            self._signal_group(signal.SIGKILL)
            self._reap(grace)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after ``grace`` seconds."""
        self.terminate()
        self.finish(grace)

    def _reap(self, timeout: float) -> bool:
        """Wait until the leader exited and the group is gone; True if it happened in time."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=0.1)
            if not self.running() and not self._group_alive():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def stop_all(processes: Iterable[ManagedProcess], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every group at once, then give them ``grace`` seconds together before SIGKILL."""
    processes = list(processes)
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.finish(max(0.5, deadline - time.monotonic()))


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    budget: Budget,
    processes: Iterable[ManagedProcess] = (),
    interval: float = 0.5,
    extra: Callable[[], str] | None = None,
) -> T:
    """Call ``check`` until it answers something truthy; fail with log tails after ``timeout``.

    Exceptions from ``check`` count as "not yet" (a server still starting) and the last one is reported;
    an AssertionError fails at once.
    """
    processes = list(processes)
    limit = budget.bound(timeout)
    deadline = time.monotonic() + limit
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
        except AssertionError:
            raise
        except Exception as error:  # a server still starting, a 404 before an XCom exists, ...
            last_error = error
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            break
        for process in processes:
            if not process.running():
                pytest.fail(f"{process.name} died while waiting for {what}\n{process.describe()}")
        time.sleep(interval)
    details = [f"timed out after {limit:.0f} s waiting for {what}"]
    if last_error is not None:
        details.append(f"last error: {last_error!r}")
    if extra is not None:
        with contextlib.suppress(Exception):
            details.append(extra())
    details.extend(process.describe() for process in processes)
    pytest.fail("\n".join(details))
