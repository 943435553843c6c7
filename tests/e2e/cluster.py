"""A real Airflow (scheduler, dag-processor, triggerer, api-server) and the WaveSpeed emulator, as processes."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import sys
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

from tests.e2e.api import AirflowApi
from tests.e2e.processes import Budget, ManagedProcess, free_port, stop_all, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO_ROOT / "example_dags"
#: The Airflow components, each its own process (group).
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
ADMIN_USER = "admin"
_STARTUP_SECONDS = 120.0


class EmulatorProcess:
    """``python -m airflow_wavespeed.emulator`` in its own session, with control-endpoint helpers."""

    def __init__(self, api_key: str, log_dir: Path, budget: Budget, processing_seconds: float) -> None:
        argv = [
            sys.executable, "-m", "airflow_wavespeed.emulator", "--port", "0", "--api-key", api_key,
            "--processing-seconds", str(processing_seconds), "--processing-polls", "0", "--scale", "0.25",
        ]  # fmt: skip
        env = {key: value for key, value in os.environ.items() if not _is_airflow_or_wavespeed(key)}
        env["PYTHONUNBUFFERED"] = "1"
        self.process = ManagedProcess("emulator", argv, env, log_dir)
        try:
            line = wait_for(
                lambda: next((ln for ln in _lines(self.process.stdout_path) if "listening on" in ln), None),
                timeout=30,
                what="the emulator to listen",
                budget=budget,
                processes=[self.process],
                interval=0.1,
            )
        except BaseException:
            self.process.stop()
            raise
        self.base_url = line.rsplit(" ", 1)[-1].strip()
        self._session = requests.Session()
        self._session.trust_env = False

    def stats(self) -> dict[str, Any]:
        body: dict[str, Any] = self._session.get(f"{self.base_url}/_emulator/stats", timeout=10).json()
        return body

    def request_log(self) -> list[dict[str, Any]]:
        """Every non-control request served: method, path, status, prediction_id, time."""
        records: list[dict[str, Any]] = self._session.get(
            f"{self.base_url}/_emulator/requests", timeout=10
        ).json()
        return records

    def configure(self, **changes: Any) -> None:
        response = self._session.post(f"{self.base_url}/_emulator/config", json=changes, timeout=10)
        response.raise_for_status()

    def close(self) -> None:
        self._session.close()
        self.process.stop()


class AirflowCluster:
    """A temporary AIRFLOW_HOME on SQLite with LocalExecutor, every component a separate process group."""

    def __init__(
        self, root: Path, connection: dict[str, str], budget: Budget, extra_env: dict[str, str] | None = None
    ) -> None:
        self.budget = budget
        self.home = root / "airflow-home"
        self.output_dir = root / "outputs"
        self.log_dir = root / "process-logs"
        for folder in (self.home, self.output_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.password = secrets.token_hex(8)
        #: Trigger kwargs are stored encrypted with this key; the test decrypts them to inspect them.
        self.fernet_key = Fernet.generate_key().decode()
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: self.password}))
        self.env = {**self._environment(connection), **(extra_env or {})}
        #: The live process of each component; a restarted one replaces its entry.
        self.components: dict[str, ManagedProcess] = {}
        #: Every process ever started, for log scans and the final stop.
        self.started: list[ManagedProcess] = []
        self.api = AirflowApi(self.api_url, ADMIN_USER, self.password)

    def _environment(self, connection: dict[str, str]) -> dict[str, str]:
        """The whole environment of every Airflow process, built here rather than inherited."""
        env = {key: value for key, value in os.environ.items() if not _is_airflow_or_wavespeed(key)}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                # The UI's "Test" button and POST /connections/test (off by default in Airflow).
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                # DAGs show up within seconds of the dag-processor starting.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                # A task's supervisor notices its process exited within this many seconds (default 5).
                # Shorter narrows Airflow's own race between a trigger firing and the executor reporting
                # the deferred attempt's exit (apache/airflow#66374, #71580).
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                # The log servers default to fixed ports (8793, 8794); another Airflow may hold them.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                # A SIGKILLed triggerer's triggers go to another triggerer once its heartbeat is this old.
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
                "AIRFLOW_CONN_WAVESPEED_DEFAULT": json.dumps(connection),
                "WAVESPEED_OUTPUT_DIR": str(self.output_dir),
                "WAVESPEED_POLL_INTERVAL": "1",
            }
        )
        return env

    def airflow_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "airflow", *args]

    def migrate(self) -> None:
        """``airflow db migrate``, bounded, in its own process group like every other command."""
        process = ManagedProcess("db-migrate", self.airflow_argv("db", "migrate"), self.env, self.log_dir)
        try:
            wait_for(
                lambda: not process.running(),
                timeout=120,
                what="airflow db migrate",
                budget=self.budget,
                interval=0.2,
                extra=process.describe,
            )
        finally:
            process.stop()
        assert process.popen.returncode == 0, f"airflow db migrate failed\n{process.describe()}"

    def start(self, component: str) -> ManagedProcess:
        """Start one component (again): ``airflow <component>``; a restart gets fresh log files."""
        generation = sum(1 for process in self.started if process.name.split("#")[0] == component)
        name = component if generation == 0 else f"{component}#{generation + 1}"
        process = ManagedProcess(name, self.airflow_argv(component), self.env, self.log_dir)
        self.components[component] = process
        self.started.append(process)
        return process

    def start_all(self) -> None:
        for component in COMPONENTS:
            self.start(component)

    def live(self) -> list[ManagedProcess]:
        return list(self.components.values())

    def wait_healthy(self) -> None:
        """The api-server answers, scheduler, triggerer and dag-processor report healthy."""

        def healthy() -> bool:
            body = self.api.health()
            statuses = {name: (part or {}).get("status") for name, part in body.items()}
            return all(status == "healthy" for status in statuses.values())

        wait_for(
            healthy,
            timeout=_STARTUP_SECONDS,
            what="/api/v2/monitor/health to report every component healthy",
            budget=self.budget,
            processes=self.live(),
            extra=lambda: f"last health: {self.api.health()}",
        )

    def wait_dags(self, dag_ids: set[str]) -> None:
        """The dag-processor parsed the example DAGs and the API lists them (no import errors)."""

        def listed() -> bool:
            errors = self.api.import_errors()
            assert not errors, f"import errors in the example DAGs: {errors}"
            return dag_ids <= self.api.dag_ids()

        wait_for(
            listed,
            timeout=_STARTUP_SECONDS,
            what=f"the API to list {sorted(dag_ids)}",
            budget=self.budget,
            processes=self.live(),
            extra=lambda: f"listed: {sorted(self.api.dag_ids())}",
        )

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    def trigger_rows(self) -> list[dict[str, Any]]:
        """The trigger table, read-only, with each row's kwargs decrypted (as the triggerer sees them)."""
        fernet = Fernet(self.fernet_key.encode())
        connection = sqlite3.connect(f"{self.db_path.as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            connection.row_factory = sqlite3.Row
            rows = [dict(row) for row in connection.execute("SELECT * FROM trigger")]
        finally:
            connection.close()
        for row in rows:
            stored = row["kwargs"]
            row["kwargs_stored"] = stored
            row["kwargs"] = stored if stored.startswith("{") else fernet.decrypt(stored.encode()).decode()
        return rows

    def stop_all(self) -> None:
        """Stop every process ever started, newest first; never raises."""
        self.api.close()
        stop_all(reversed(self.started))


def _is_airflow_or_wavespeed(name: str) -> bool:
    """Variables from the test process (tests/conftest.py sets some) that must not leak into the cluster."""
    upper = name.upper()
    return upper.startswith(("AIRFLOW", "_AIRFLOW", "WAVESPEED"))


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
