"""The "WaveSpeed prediction" extra link on operator and sensor tasks.

Airflow writes every extra link to XCom when a task's run ends, deferring included, by calling
:meth:`WaveSpeedPredictionLink.get_link` on the worker. The task sets ``prediction_link`` as soon as it
knows the prediction, so that write needs no XCom read and the link works while the task waits in the
triggerer. The API server, which has no running task, reads the stored XCom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

#: WaveSpeed's web page that lists a user's predictions (the API's result URL needs the key).
WEB_PREDICTIONS_URL = "https://wavespeed.ai/predictions"


def prediction_url(base_url: str, prediction_id: str) -> str:
    """Where a person looks at a prediction in a browser: WaveSpeed's web page for the real API, the
    emulator's keyless page (``/predictions/{id}``) for any other base URL. The API's own result URL
    is no link for people: it answers 401 without the key."""
    if base_url.rstrip("/") == "https://api.wavespeed.ai":
        return f"{WEB_PREDICTIONS_URL}?id={prediction_id}"
    return f"{base_url.rstrip('/')}/predictions/{prediction_id}"


class WaveSpeedPredictionLink(BaseOperatorLink):
    """Links a task to the WaveSpeed prediction it submitted or waited on."""

    name = "WaveSpeed prediction"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        known = getattr(operator, "prediction_link", None)  # set by the running task
        if isinstance(known, str) and known:
            return known
        return XCom.get_value(ti_key=ti_key, key=self.xcom_key) or ""


def written_already(task: Any) -> None:
    """A task resumed from the triggerer has no new link: its deferring run wrote it. Without this,
    Airflow would read it back and write it again, two calls to its API for nothing."""
    task.operator_extra_links = ()
