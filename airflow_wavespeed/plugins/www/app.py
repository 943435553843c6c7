"""The FastAPI app behind the WaveSpeed views, mounted by the api-server under ``/wavespeed``.

Airflow does not authenticate a plugin's app for it: every route here depends on Airflow's own
``requires_access_dag`` (a DAG's pages) or ``requires_authenticated`` (the runs list, the stylesheet),
which resolve the user from a bearer token or the UI's ``_token`` session cookie (3.1 and 3.3 alike) and
ask the configured auth manager; others get 401 or 403 from Airflow's code, not ours. No route fetches or
redirects to a URL an answer names, and the API key is never read here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from airflow_wavespeed.plugins.wavespeed_plugin import URL_PREFIX
from airflow_wavespeed.plugins.www import render
from airflow_wavespeed.plugins.www.outputs import (
    INLINE,
    Shown,
    content_type,
    local_output,
    media_of,
    show_outputs,
)
from airflow_wavespeed.plugins.www.records import TaskRecord, recent_runs, run_tasks, task_instance

STYLE = Path(__file__).with_name("style.css")
#: The CSP of every answer that names no media origins (errors, the stylesheet, the runs list).
STRICT_CSP = "default-src 'none'; style-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
#: What every answer carries besides its CSP.
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def csp(origins: set[str]) -> str:
    """The page's policy: no script at all; media only from this server and the outputs' own origins."""
    sources = " ".join(["'self'", *sorted(origins)])
    return (
        f"default-src 'none'; img-src {sources}; media-src {sources}; style-src 'self'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
    )


def html(body: str, title: str, shown: list[Shown] = ()) -> HTMLResponse:  # type: ignore[assignment]
    origins = {origin for item in shown if (origin := item.origin)}
    headers = {**HEADERS, "Content-Security-Policy": csp(origins)}
    return HTMLResponse(render.page(title, body, prefix=URL_PREFIX), headers=headers)


def parse_map_index(value: str) -> int:
    """``{MAP_INDEX}`` is left as it is by the UI for an unmapped task: that is index -1."""
    try:
        return int(value)
    except ValueError:
        return -1


class Presigner:
    """Presigned GETs for ``s3://`` URIs, made here with the AWS connection the task recorded in its
    ``prediction`` XCom (``aws_conn_id``), else ``[wavespeed] ui_aws_conn_id`` (default ``aws_default``:
    a task that recorded none, such as ``WaveSpeedToS3Operator``). One S3 client per connection and page,
    made on the first S3 output, so a gallery of 200 objects reads each connection once."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}

    def using(self, conn_id: str | None) -> Callable[[str], str]:
        """Presigning with ``conn_id`` (None: the configured default)."""
        return lambda uri: self(uri, conn_id)

    def __call__(self, uri: str, conn_id: str | None = None) -> str:
        from airflow_wavespeed.plugins.www.outputs import PRESIGN_SECONDS

        if not conn_id:
            from airflow.providers.common.compat.sdk import conf

            conn_id = conf.get("wavespeed", "ui_aws_conn_id", fallback="aws_default")
        if conn_id not in self._clients:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            self._clients[conn_id] = S3Hook(aws_conn_id=conn_id).get_conn()
        bucket, _, key = uri[len("s3://") :].partition("/")
        url = self._clients[conn_id].generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGN_SECONDS
        )
        if not url:
            raise RuntimeError(f"no presigned URL for {uri}")
        return str(url)


def _task_presign(record: TaskRecord, presign: Presigner) -> Callable[[str], str]:
    """Presigning with the AWS connection the task itself used, when it recorded one."""
    conn_id = record.prediction.get("aws_conn_id")
    return presign.using(conn_id if isinstance(conn_id, str) else None)


def shown_outputs(dag_id: str, run_id: str, record: TaskRecord, presign: Presigner) -> list[Shown]:
    base = f"{URL_PREFIX}/file/{quote(dag_id, safe='')}/{quote(run_id, safe='')}/{quote(record.task_id, safe='')}/{record.map_index}"
    return show_outputs(
        record.outputs,
        record.prediction,
        local_url=lambda n: f"{base}/{n}",
        presign=_task_presign(record, presign),
        hostname=record.hostname,
    )


def shown_inputs(record: TaskRecord, presign: Presigner) -> list[Shown]:
    """Input images as thumbnails when the browser can load them (URLs; S3 through a presigned URL)."""
    fields = record.rendered_fields or {}
    sign = _task_presign(record, presign)
    images = fields.get("images")
    if images is None and isinstance(fields.get("inputs"), dict):
        images = fields["inputs"].get("images") or fields["inputs"].get("image")
    if isinstance(images, str):
        images = [images]
    shown = []
    for image in images if isinstance(images, list) else []:
        location = str(image)
        if location.startswith(("https://", "http://")):
            shown.append(Shown("image", location, location))
        elif location.startswith("s3://"):
            try:
                shown.append(Shown("image", sign(location), location))
            except Exception as error:
                shown.append(Shown("missing", None, location, f"could not sign a link: {type(error).__name__}"))
        else:
            shown.append(Shown("missing", None, location, "a local input (uploaded by the task)"))
    return shown


def create_app() -> FastAPI:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import get_user, requires_access_dag, requires_authenticated
    from airflow.utils.session import create_session

    app = FastAPI(title="WaveSpeed views", docs_url=None, redoc_url=None, openapi_url=None)
    read_task = [Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))]

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", STRICT_CSP)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/static/style.css", dependencies=[Depends(requires_authenticated())])
    def style() -> Response:
        return Response(STYLE.read_text(), media_type="text/css")

    @app.get("/ti/{dag_id}/{run_id}/{task_id}/{map_index}", dependencies=read_task)
    def task_tab(dag_id: str, run_id: str, task_id: str, map_index: str) -> HTMLResponse:
        with create_session() as session:
            record = task_instance(session, dag_id, run_id, task_id, parse_map_index(map_index))
        if record is None:
            raise HTTPException(404, "No such task instance")
        if not record.is_wavespeed:
            return html(render.not_wavespeed(task_id), "Not a WaveSpeed task")
        presign = Presigner()
        outputs, inputs = shown_outputs(dag_id, run_id, record, presign), shown_inputs(record, presign)
        return html(render.task_tab(record, outputs, inputs, run_id=run_id), f"WaveSpeed: {task_id}", outputs + inputs)

    @app.get("/run/{dag_id}/{run_id}", dependencies=read_task)
    def run_gallery(dag_id: str, run_id: str, show: str = "all") -> HTMLResponse:
        if show not in render.FILTERS:
            raise HTTPException(400, f"show must be one of {', '.join(render.FILTERS)}")
        with create_session() as session:
            records = run_tasks(session, dag_id, run_id)
        cells: list[tuple[TaskRecord, Shown | None]] = []
        presign = Presigner()
        for record in records:
            items = shown_outputs(dag_id, run_id, record, presign)
            if not items:
                if render.passes(show, record, None):
                    cells.append((record, None))
                continue
            cells.extend((record, item) for item in items if render.passes(show, record, item))
        base = f"{URL_PREFIX}/run/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"
        body = render.gallery(dag_id, run_id, cells, chosen=show, base=base)
        return html(body, f"WaveSpeed gallery: {run_id}", [item for _, item in cells if item is not None])

    @app.get("/runs")
    def runs(user: Any = Depends(get_user)) -> HTMLResponse:  # noqa: B008 (FastAPI's own idiom)
        from airflow.api_fastapi.app import get_auth_manager

        with create_session() as session:
            dag_ids = get_auth_manager().get_authorized_dag_ids(user=user, method="GET", session=session)
            found = recent_runs(session, set(dag_ids))
        return html(render.runs_list(found, prefix=URL_PREFIX), "WaveSpeed runs")

    @app.get("/file/{dag_id}/{run_id}/{task_id}/{map_index}/{n}", dependencies=read_task)
    def output_file(dag_id: str, run_id: str, task_id: str, map_index: str, n: int) -> Response:
        """A local output by its position in the task's XCom: no path is taken from the request."""
        with create_session() as session:
            record = task_instance(session, dag_id, run_id, task_id, parse_map_index(map_index))
        path = local_output(record.outputs, n) if record is not None and record.is_wavespeed else None
        if path is None:
            raise HTTPException(404, "No such output on this machine")
        kind = media_of(path)
        headers = {**HEADERS, "Content-Security-Policy": "default-src 'none'; sandbox"}
        if kind not in INLINE or content_type(path) == "application/octet-stream":
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(Path(path).name)}"
            return FileResponse(path, media_type="application/octet-stream", headers=headers)
        return FileResponse(path, media_type=content_type(path), headers=headers)

    return app
