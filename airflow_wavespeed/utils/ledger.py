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

from airflow_wavespeed.exceptions import WaveSpeedError, WaveSpeedResumeError

#: The task state store key holding ``{"id": <prediction id>, "submission": <digest>, "tries": [...]}``;
#: ``tries`` lists which prediction each try used: ``{"try": 1, "id": ..., "how": "submitted"}``.
STATE_STORE_KEY = "wavespeed_prediction_id"
#: How a user starts a task over on purpose, named in every error that refuses to submit again.
START_OVER = (
    f"To start over deliberately, delete the task state store key {STATE_STORE_KEY!r} of this task "
    "instance (Airflow UI: the task instance's State Store; REST: DELETE /api/v2/dags/{dag_id}/dagRuns/"
    f"{{run_id}}/taskInstances/{{task_id}}/state-store/{STATE_STORE_KEY}) and clear the task."
)

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
    :param first_try: the task instance's first try (``try_number == 1``): no earlier try can have
        recorded anything, so the store is not read (a read that would answer "not found" costs a call
        to Airflow's API on every edit).
    """

    def __init__(
        self, store: TaskStateStore | None, submission: str, *, first_try: bool = False, try_number: int = 0
    ) -> None:
        self.store = store
        self.submission = submission
        self.first_try = first_try
        self.try_number = try_number
        #: Which prediction each earlier try used, as :meth:`recorded` read it (for the WaveSpeed tab).
        self.tries: list[dict[str, Any]] = []

    def recorded(self) -> str | None:
        """The prediction id an earlier try submitted with the same inputs, if any.

        A store that cannot be read fails the try before anything is submitted: an earlier try may
        have billed a prediction this one cannot see. The next try reads again.
        """
        if self.store is None or self.first_try:
            return None
        try:
            value = self.store.get(STATE_STORE_KEY)
        except Exception as error:
            raise WaveSpeedError(
                f"Cannot read the task state store ({error}), so it is unknown whether an earlier try of "
                "this task already submitted a prediction; nothing was submitted. A retry reads it again."
            ) from error
        if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
            return None
        self.tries = _tries(value.get("tries"))
        if value.get("submission") != self.submission:
            log.warning(
                "Prediction %s from an earlier try was submitted with other inputs; submitting the new ones",
                value["id"],
            )
            return None
        return str(value["id"])

    def record(self, prediction_id: str) -> None:
        """Keep the id for later tries. If that fails, the task fails without retries (naming the id):
        a retry that cannot see the id would submit, and bill, a second prediction."""
        if self.store is None:
            return
        try:
            self.store.set(STATE_STORE_KEY, self._value(prediction_id, "submitted"))
        except Exception as error:
            raise WaveSpeedResumeError(
                prediction_id,
                f"Prediction {prediction_id} was submitted, but recording it in the task state store failed "
                f"({error}), so a retry could not resume it and would submit again. The task fails without "
                f"retries; wait for the prediction with WaveSpeedPredictionSensor(prediction_id="
                f"{prediction_id!r}), or clear the task to submit a new one.",
            ) from error

    def note_resumed(self, prediction_id: str) -> None:
        """Add this try to the record of tries (it resumed ``prediction_id``). Best-effort: the id a retry
        needs is already recorded, so a failure only leaves this try out of the WaveSpeed tab's list."""
        if self.store is None:
            return
        try:
            self.store.set(STATE_STORE_KEY, self._value(prediction_id, "resumed"))
        except Exception as error:
            log.warning("Could not note in task_state_store that this try resumed %s: %s", prediction_id, error)

    def _value(self, prediction_id: str, how: str) -> dict[str, Any]:
        self.tries = [*self.tries, {"try": self.try_number, "id": prediction_id, "how": how}][-MAX_TRIES_KEPT:]
        return {"id": prediction_id, "submission": self.submission, "tries": self.tries}

    @staticmethod
    def lost(prediction_id: str, error: BaseException) -> WaveSpeedResumeError:
        """The error for a recorded prediction WaveSpeed says it does not know (a 404)."""
        return WaveSpeedResumeError(
            prediction_id,
            f"Prediction {prediction_id}, submitted by an earlier try of this task, is not found on WaveSpeed "
            f"({error}). A 404 is not proof that nothing was billed, so this task does not submit again and "
            f"fails without retries. {START_OVER}",
        )

    def forget(self) -> None:
        """After success: a later, deliberate re-run of the task submits afresh.

        Nothing to do where Airflow clears the store itself on success (``[state_store] clear_on_success``):
        that saves a call to its API per edit.
        """
        if self.store is None or _cleared_on_success():
            return
        try:
            self.store.delete(STATE_STORE_KEY)
        except Exception as error:
            log.debug("Could not clear task_state_store: %s", error)


#: How many tries the record keeps (the newest): enough for any retries setting people use.
MAX_TRIES_KEPT = 50


def _tries(value: Any) -> list[dict[str, Any]]:
    """The ``tries`` an earlier try recorded, with anything malformed left out."""
    if not isinstance(value, list):
        return []
    return [
        {"try": int(entry["try"]), "id": str(entry["id"]), "how": str(entry.get("how", "submitted"))}
        for entry in value
        if isinstance(entry, dict) and isinstance(entry.get("try"), int) and isinstance(entry.get("id"), str)
    ]


def _cleared_on_success() -> bool:
    from airflow.providers.common.compat.sdk import conf

    return bool(conf.getboolean("state_store", "clear_on_success", fallback=False))
