"""The emulator CLI with one extra route, for benchmarking ``HttpSensorTrigger`` on an equal wait.

``HttpSensorTrigger`` (apache-airflow-providers-http) fires on the first answer that is not a 404, so
on ``/api/v3/predictions/{id}/result`` it would stop at the first ``processing`` answer. The extra
route ``GET /_bench/predictions/{id}/ready`` runs the emulator's own result handler (same auth, same
poll counting, same lifecycle) and answers 404 while the prediction is not terminal: the sensor then
makes exactly as many polls as the other contenders. Everything else is ``python -m
airflow_wavespeed.emulator`` unchanged, with the same flags.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from aiohttp import web

import airflow_wavespeed.emulator.__main__ as cli
from airflow_wavespeed.emulator import server

READY_ROUTE = "/_bench/predictions/{id}/ready"
_TERMINAL = ("completed", "failed")


async def _ready(request: web.Request) -> web.StreamResponse:
    response: web.StreamResponse = await server._result(request)
    if response.status != 200 or not isinstance(response, web.Response) or response.body is None:
        return response
    body = response.body if isinstance(response.body, bytes) else b""
    status = json.loads(body).get("data", {}).get("status")
    if status in _TERMINAL:
        return response
    return web.json_response({"code": 404, "message": f"not ready ({status})"}, status=404)


_create_app = cli.create_app


def _create_app_plus(*args: Any, **kwargs: Any) -> web.Application:
    app: web.Application = _create_app(*args, **kwargs)
    app.router.add_get(READY_ROUTE, _ready)
    return app


if __name__ == "__main__":
    cli.create_app = _create_app_plus
    sys.exit(cli.main())
