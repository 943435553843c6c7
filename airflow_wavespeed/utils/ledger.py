"""Which prediction a task instance submitted, kept across its tries so a retry never bills twice.

Airflow 3.3 gives each task instance a small key-value store that outlives a try
(``context["task_state_store"]``). The operator records the prediction id there before it waits, with a
digest of what it submitted; a retry with the same inputs resumes that prediction instead of
submitting a new one. On Airflow 3.1 and 3.2 there is no such store and the ledger records nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Protocol

#: The task state store key holding ``{"id": <prediction id>, "submission": <digest>}``.
STATE_STORE_KEY = "wavespeed_prediction_id"

log = logging.getLogger(__name__)


class TaskStateStore(Protocol):
    """The part of Airflow's ``task_state_store`` the ledger uses."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any, *, retention: Any = None) -> None: ...

    def delete(self, key: str) -> None: ...


def submission_digest(submitted: dict[str, Any]) -> str:
    """A digest of what a task submits, as the user wrote it (rendered, before uploads).

    Key order is the DAG's own, the same on every try; sorting would fail on mixed key types.
    """
    text = json.dumps(submitted, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class PredictionLedger:
    """The prediction id one task instance submitted, for its later tries.

    :param store: the task's ``task_state_store``, or None where Airflow has none (3.1, 3.2).
    :param submission: the digest of what this try would submit; a record made for other inputs
        (a task cleared after its prompt was fixed) is not resumed.
    """

    def __init__(self, store: TaskStateStore | None, submission: str) -> None:
        self.store = store
        self.submission = submission

    def recorded(self) -> str | None:
        """The prediction id an earlier try submitted with the same inputs, if any."""
        if self.store is None:
            return None
        try:
            value = self.store.get(STATE_STORE_KEY)
        except Exception as error:  # a store that cannot answer must not stop the task
            log.warning("task_state_store unavailable, a retry would submit again: %s", error)
            return None
        if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
            return None
        if value.get("submission") != self.submission:
            log.warning(
                "Prediction %s from an earlier try was submitted with other inputs; submitting the new ones",
                value["id"],
            )
            return None
        return str(value["id"])

    def record(self, prediction_id: str) -> None:
        if self.store is None:
            return
        try:
            self.store.set(STATE_STORE_KEY, {"id": prediction_id, "submission": self.submission})
        except Exception as error:
            log.warning("Could not record prediction %s for retries: %s", prediction_id, error)

    def forget(self) -> None:
        """After success: a later, deliberate re-run of the task submits afresh."""
        if self.store is None:
            return
        try:
            self.store.delete(STATE_STORE_KEY)
        except Exception as error:
            log.debug("Could not clear task_state_store: %s", error)
