"""Airflow in its production shape on one machine: PostgreSQL, CeleryExecutor on Redis, two triggerers and
two Celery workers, each component its own process (group) on loopback, stopped by its PID at the end.

Every component that serves logs runs with ``--skip-serve-logs``: Airflow's log servers bind every interface
on fixed ports, which would collide with any other Airflow on the machine and leave loopback.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cluster.services import PostgresServer, RedisServer
from tests.e2e.cluster import AirflowCluster
from tests.e2e.processes import Budget, ManagedProcess

CLUSTER_DAGS = Path(__file__).resolve().parent / "dags"
#: Component name -> ``airflow`` arguments.
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer-1": ["triggerer", "--skip-serve-logs"],
    "triggerer-2": ["triggerer", "--skip-serve-logs"],
    # w1 also serves the "doomed" queue, which the worker-loss DAG uses: killing w1 kills those tasks.
    "worker-1": ["celery", "worker", "--celery-hostname", "w1@%h", "--skip-serve-logs", "-q", "default,doomed"],
    "worker-2": ["celery", "worker", "--celery-hostname", "w2@%h", "--skip-serve-logs", "-q", "default"],
}
WORKER_CONCURRENCY = 8


class CeleryCluster(AirflowCluster):
    """:class:`AirflowCluster` on PostgreSQL and Celery, with two triggerers and two workers."""

    def __init__(
        self,
        root: Path,
        connection: dict[str, str],
        budget: Budget,
        *,
        postgres: PostgresServer,
        redis: RedisServer,
        extra_env: dict[str, str] | None = None,
        dags_folder: Path = CLUSTER_DAGS,
    ) -> None:
        self.postgres, self.redis, self.dags_folder = postgres, redis, dags_folder
        super().__init__(root, connection, budget, extra_env=extra_env)

    def _environment(self, connection: dict[str, str]) -> dict[str, str]:
        env = super()._environment(connection)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode cached, as a production image ships it
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__PARALLELISM": "64",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url,
                "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.postgres.url.replace("+psycopg2", ""),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
                # A killed worker's tasks are found by their missing heartbeats (the default is 300 s).
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                # A SIGKILLed triggerer's triggers go to the other once its heartbeat is this old.
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            }
        )
        return env

    def start(self, component: str) -> ManagedProcess:
        generation = sum(1 for process in self.started if process.name.split("#")[0] == component)
        name = component if generation == 0 else f"{component}#{generation + 1}"
        process = ManagedProcess(name, self.airflow_argv(*COMPONENTS[component]), self.env, self.log_dir)
        self.components[component] = process
        self.started.append(process)
        return process

    def start_all(self) -> None:
        """Every component; the triggerers one after the other, so each one's job id is known."""
        from tests.e2e.processes import wait_for

        self.triggerer_jobs: dict[str, str] = {}
        for component in COMPONENTS:
            known = set(self._triggerer_job_ids()) if component.startswith("triggerer") else set()
            process = self.start(component)
            if component.startswith("triggerer"):
                self.triggerer_jobs[component] = wait_for(
                    lambda known=known: next(iter(set(self._triggerer_job_ids()) - known), None),
                    timeout=90,
                    what=f"{component} to register its job",
                    budget=self.budget,
                    processes=[process],
                )

    def _triggerer_job_ids(self) -> list[str]:
        return [row[0] for row in self.sql("SELECT id FROM job WHERE job_type = 'TriggererJob'")]

    def sql(self, query: str) -> list[list[str]]:
        """Rows of a read-only query on the metadata database, as text."""
        out = self.postgres.psql(query, database="airflow")
        return [line.split("|") for line in out.splitlines() if line]

    def trigger_assignments(self) -> dict[str, str]:
        """Running triggers: prediction id -> the job id of the triggerer that holds it."""
        rows = self.sql("SELECT kwargs, coalesce(triggerer_id::text, '') FROM trigger")
        assigned = {}
        for kwargs, triggerer in rows:
            decoded = self.decrypt(kwargs)
            prediction_id = json.loads(decoded).get("prediction_id") if decoded.startswith("{") else None
            if prediction_id and triggerer:
                assigned[str(prediction_id)] = triggerer
        return assigned

    def decrypt(self, stored: str) -> str:
        from cryptography.fernet import Fernet

        if stored.startswith("{"):
            return stored
        return Fernet(self.fernet_key.encode()).decrypt(stored.encode()).decode()

