"""Registers the WaveSpeed views with Airflow: nothing else happens at import.

Airflow's plugins manager imports this module in every process that loads plugins (the scheduler, the
dag-processor, workers, the triggerer), so it imports nothing beyond what loading a plugin already
loaded: the FastAPI app is built by :class:`LazyApp` on the api-server's first request to it, and the
views are plain HTML pages served by that app (no JavaScript, so no build step and a strict CSP).

Airflow 3.1 to 3.3 show a ``task_instance`` view on every task instance: limiting it to some operators
(``applies_to``) came in 3.4 (apache/airflow#69148). The page answers "not a WaveSpeed task" in one line
for the others, from one indexed row read.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowPlugin

#: Where the app is mounted in the api-server; every href below starts with it.
URL_PREFIX = "/wavespeed"


class LazyApp:
    """An ASGI app that imports and builds the real FastAPI app on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from airflow_wavespeed.plugins.www.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class WaveSpeedPlugin(AirflowPlugin):
    """The WaveSpeed tab, run gallery and runs list (``airflow plugins`` lists it as ``wavespeed``)."""

    name = "wavespeed"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "WaveSpeed"}]
    external_views = [
        {
            "name": "WaveSpeed",
            "href": URL_PREFIX + "/ti/{DAG_ID}/{RUN_ID}/{TASK_ID}/{MAP_INDEX}",
            "destination": "task_instance",
            "url_route": "wavespeed-task",
        },
        {
            "name": "WaveSpeed gallery",
            "href": URL_PREFIX + "/run/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "wavespeed-gallery",
        },
        {
            "name": "WaveSpeed runs",
            "href": URL_PREFIX + "/runs",
            "destination": "nav",
            "category": "browse",
            "url_route": "wavespeed-runs",
        },
    ]
