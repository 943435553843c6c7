"""The emulator's control routes (unauthenticated, not logged) and its keyless prediction web page."""

from __future__ import annotations

import html

from aiohttp import web

from airflow_wavespeed.emulator import catalog
from airflow_wavespeed.emulator.common import STATE_KEY, BadRequest, error, json_object


def register(router: web.UrlDispatcher) -> None:
    """Add the control routes and the prediction page."""
    router.add_get("/_emulator/requests", _control_requests)
    router.add_get("/_emulator/stats", _control_stats)
    router.add_get("/_emulator/config", _control_config)
    router.add_post("/_emulator/config", _control_config)
    router.add_post("/_emulator/reset", _control_reset)
    router.add_get("/_emulator/predictions", _control_predictions)
    router.add_get("/predictions/{id}", _prediction_page)


async def _control_requests(request: web.Request) -> web.StreamResponse:
    return web.json_response([entry.to_dict() for entry in request.app[STATE_KEY].requests])


async def _control_stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE_KEY].stats())


async def _control_config(request: web.Request) -> web.StreamResponse:
    """GET answers the config; POST applies a JSON object of field changes first (all or nothing)."""
    state = request.app[STATE_KEY]
    if request.method == "POST":
        try:
            changes = await json_object(request)
            state.config.update(changes)
        except (BadRequest, ValueError) as exc:
            return error(400, str(exc))
        if "seed" in changes:
            state.reseed()
    return web.json_response(state.config.to_dict())


async def _control_reset(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.reset()
    return web.json_response({"reset": True, "config": state.config.to_dict()})


async def _prediction_page(request: web.Request) -> web.StreamResponse:
    """GET /predictions/{id}: a keyless, read-only web page of one prediction, what the task's extra link
    opens against the emulator (the real API's result URL needs the key; WaveSpeed's site has a page)."""
    prediction = request.app[STATE_KEY].get_prediction(request.match_info["id"])
    if prediction is None:
        return web.Response(status=404, text="No such prediction on this emulator.", content_type="text/plain")
    e = html.escape

    kind = catalog.media_of(prediction.kind)

    def figures(urls: list[str], kind: str = "image") -> str:
        shown = [url for url in urls if url.startswith(("http://", "https://"))]
        if not shown:
            return "<p>none</p>" if not urls else "<p>(base64 outputs: not shown)</p>"
        return "".join(_figure(e(url), kind) for url in shown)

    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>Prediction {e(prediction.id)}</title></head>
<body style="font-family:sans-serif;max-width:960px;margin:24px auto">
<h1>Prediction <code>{e(prediction.id)}</code></h1>
<p>Status: <b>{e(prediction.status)}</b>{f" ({e(prediction.error)})" if prediction.error else ""} · model {e(prediction.model)}
· created {e(prediction.created_at)} · served by the WaveSpeed emulator</p>
<h2>Prompt</h2><p>{e(prediction.prompt)}</p>
<h2>Inputs</h2>{figures(prediction.image_urls)}
<h2>Outputs</h2>{figures(prediction.outputs, kind) if prediction.output_text is None else f"<pre>{e(prediction.output_text)}</pre>"}
</body></html>"""
    return web.Response(text=body, content_type="text/html")


async def _control_predictions(request: web.Request) -> web.StreamResponse:
    """A summary of every prediction (id, model, status, polls, error), for benchmarks."""
    summaries = [
        {"id": p.id, "model": p.model, "status": p.status, "polls": p.polls, "error": p.error, "prompt": p.prompt}
        for p in request.app[STATE_KEY].predictions.values()
    ]
    return web.json_response(summaries)


def _figure(url: str, kind: str) -> str:
    """One output on the page, as the browser shows its media (``url`` is escaped already)."""
    style = 'style="max-width:45%;margin:4px"'
    if kind == "video":
        return f'<video src="{url}" controls muted playsinline {style}></video>'
    if kind == "audio":
        return f'<audio src="{url}" controls></audio>'
    if kind == "image":
        return f'<a href="{url}"><img src="{url}" alt="" {style}></a>'
    return f'<a href="{url}">{url}</a>'
