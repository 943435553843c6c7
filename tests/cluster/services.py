"""PostgreSQL and Redis from Debian's packages, each a process on loopback and a free port, for the cluster.

PostgreSQL refuses to run as root (CI runs as root), so ``initdb`` and ``postgres`` run as the ``postgres``
system user through ``runuser``, in a temporary directory that user owns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.e2e.processes import Budget, ManagedProcess, free_port, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PostgresServer:
    """A throwaway PostgreSQL 15 cluster: trust auth on 127.0.0.1, fsync off, the database ``airflow``."""

    def __init__(self, log_dir: Path, budget: Budget) -> None:
        self.port = free_port()
        # Its own temp dir: pytest's are private to root, and the postgres user must reach its files.
        self.root = Path(tempfile.mkdtemp(prefix="wavespeed-postgres-"))
        self.data = self.root / "pgdata"
        self.sockets = self.root / "pgsock"
        self.sockets.mkdir()
        as_postgres = self._as_postgres()
        if as_postgres:
            for folder in (self.root, self.sockets):
                shutil.chown(folder, "postgres", "postgres")
        subprocess.run(
            [*as_postgres, str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        argv = [
            *as_postgres, str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-k", str(self.sockets), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=400",
        ]  # fmt: skip
        self.process = ManagedProcess("postgres", argv, _clean_env(), log_dir)
        wait_for(
            lambda: self.psql("SELECT 1").strip() == "1",
            timeout=60,
            what="PostgreSQL to accept connections",
            budget=budget,
            processes=[self.process],
            interval=0.3,
        )
        self.psql("CREATE DATABASE airflow")

    @staticmethod
    def _as_postgres() -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-tAc", sql],
            capture_output=True,
            text=True,
            timeout=60,
            env=_clean_env(),
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip())
        return result.stdout

    def dump(self, target: Path) -> Path:
        """``pg_dump`` of the metadata database, for the secret scan."""
        subprocess.run(
            ["pg_dump", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-f", str(target), "airflow"],
            check=True,
            timeout=300,
            env=_clean_env(),
        )
        return target

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """``redis-server`` on 127.0.0.1, no persistence: the Celery broker."""

    def __init__(self, log_dir: Path, budget: Budget) -> None:
        self.port = free_port()
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = ManagedProcess("redis", argv, _clean_env(), log_dir)
        wait_for(
            lambda: self.cli("PING").strip() == "PONG",
            timeout=30,
            what="Redis to answer PING",
            budget=budget,
            processes=[self.process],
            interval=0.2,
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        result = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args], capture_output=True, timeout=30)
        return result.stdout.decode(errors="replace")

    def dump_text(self) -> str:
        """Every key and its value, as text, for the secret scan."""
        lines = []
        for key in filter(None, self.cli("--scan").splitlines()):
            kind = self.cli("TYPE", key).strip()
            command = {
                "string": ["GET", key],
                "list": ["LRANGE", key, "0", "-1"],
                "hash": ["HGETALL", key],
                "set": ["SMEMBERS", key],
                "zset": ["ZRANGE", key, "0", "-1", "WITHSCORES"],
            }
            lines += [key, self.cli(*command.get(kind, ["DUMP", key]))]
        return "\n".join(lines)

    def stop(self) -> None:
        self.process.stop()


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.upper().startswith(("AIRFLOW", "PG"))}
