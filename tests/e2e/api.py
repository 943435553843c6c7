"""A small client for Airflow's public REST API (``/api/v2``) with the simple auth manager's JWT."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import requests

_TIMEOUT = 10.0


class AirflowApi:
    """The calls this test needs, each one HTTP request with a timeout."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._session = requests.Session()
        self._session.trust_env = False  # loopback only: no proxy from the environment
        self._token: str | None = None

    def close(self) -> None:
        self._session.close()

    # -- plumbing ----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health`` (needs no token)."""
        response = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=_TIMEOUT)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def login(self) -> None:
        """Exchange the username and password for a JWT (``POST /auth/token``)."""
        response = self._session.post(f"{self.base_url}/auth/token", json=self._credentials, timeout=_TIMEOUT)
        response.raise_for_status()
        self._token = response.json()["access_token"]

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if self._token is None:
            self.login()
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        response = self._session.request(
            method, f"{self.base_url}/api/v2{path}", headers=headers, timeout=_TIMEOUT, **kwargs
        )
        if response.status_code >= 400:
            raise ApiError(method, path, response.status_code, response.text[:2000])
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params=params).json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request("POST", path, json=body).json()

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self._request("PATCH", path, json=body).json()

    # -- what the test asks ------------------------------------------------------------------------

    def dag_ids(self) -> set[str]:
        """DAGs the API lists (parsed and serialized by the dag-processor)."""
        body = self.get("/dags", limit=100)
        return {dag["dag_id"] for dag in body["dags"]}

    def import_errors(self) -> list[dict[str, Any]]:
        body = self.get("/importErrors", limit=100)
        errors: list[dict[str, Any]] = body["import_errors"]
        return errors

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Create a manual run now; answers its run id."""
        body = self.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        run_id: str = body["dag_run_id"]
        return run_id

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
        return body

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """The run's (unmapped) task instances by task id."""
        body = self.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances", limit=100)
        return {ti["task_id"]: ti for ti in body["task_instances"] if ti.get("map_index", -1) == -1}

    def xcom_keys(self, dag_id: str, run_id: str, task_id: str) -> list[str]:
        """The keys of every XCom the task instance pushed."""
        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries"
        body = self.get(path, limit=100)
        return [entry["key"] for entry in body["xcom_entries"]]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """One XCom value, deserialized to JSON as a client of the API sees it."""
        path = (
            f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
            f"/xcomEntries/{quote(key, safe='')}"
        )
        return self.get(path, deserialize="true")["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The task's log for one try, as the UI shows it (JSON content, flattened to text)."""
        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}"
        body = self.get(path, full_content="true")
        content = body.get("content")
        if isinstance(content, list):
            return "\n".join(json.dumps(entry, default=str) for entry in content)
        return str(content)


def hitl_path(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """A human-in-the-loop task's details (Airflow 3.1+): GET to read the form, PATCH to answer it."""
    return f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/{map_index}/hitlDetails"


class ApiError(Exception):
    """An HTTP error from the API, with the response body (Airflow's error detail) in the message."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} /api/v2{path} -> HTTP {status}: {body}")
        self.status = status
