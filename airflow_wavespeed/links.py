"""The "WaveSpeed prediction" extra link on operator and sensor tasks.

The link is pushed to XCom as soon as the prediction id is known (before the task defers), so it
works while the task is waiting in the triggerer.
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
        return XCom.get_value(ti_key=ti_key, key=self.xcom_key) or ""

    @classmethod
    def persist(cls, context: Any, url: str) -> None:
        context["ti"].xcom_push(key=cls().xcom_key, value=url)
