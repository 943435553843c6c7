"""The views' HTML: built on the server, every value escaped, no script.

Outputs appear only as ``img``, ``video``, ``audio`` elements or download links, never as markup; a
text output is escaped text. Each page lists the origins its media come from, for its CSP.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from airflow_wavespeed.plugins.www.outputs import Shown
from airflow_wavespeed.plugins.www.records import RunSummary, TaskRecord

#: The gallery's filters: name -> (label, does a (task, output) pair pass).
FILTERS = ("all", "flagged", "failed", "pending")
_PENDING_STATES = {"scheduled", "queued", "running", "deferred", "up_for_retry", "up_for_reschedule", "none", ""}


def e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, *, prefix: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{e(title)}</title><link rel='stylesheet' href='{e(prefix)}/static/style.css'>"
        f"</head><body>{body}</body></html>"
    )


def not_wavespeed(task_id: str) -> str:
    return f"<p class='none'>{e(task_id)} is not a WaveSpeed task.</p>"


def media(item: Shown, *, thumb: bool = False) -> str:
    """One output: an element the browser loads, a download link, escaped text or why it is missing."""
    css = "flagged" if item.flagged else ""
    flag = "<span class='flag'>NSFW flagged</span>" if item.flagged else ""
    if item.kind == "image" and item.src:
        size = " width='240'" if thumb else ""
        inner = f"<a href='{e(item.src)}' target='_blank' rel='noopener noreferrer'><img src='{e(item.src)}' loading='lazy' decoding='async' alt='{e(item.label)}'{size}></a>"
    elif item.kind == "video" and item.src:
        inner = f"<video controls preload='metadata' src='{e(item.src)}'></video>"
    elif item.kind == "audio" and item.src:
        inner = f"<audio controls preload='metadata' src='{e(item.src)}'></audio>"
    elif item.kind == "download" and item.src:
        inner = f"<a class='download' href='{e(item.src)}' download rel='noopener noreferrer'>download</a>"
    elif item.kind == "text":
        inner = f"<pre class='text'>{e(item.text)}</pre>"
    else:
        inner = "<p class='missing'>not available</p>"
    note = f"<small>{e(item.note)}</small>" if item.note else ""
    return f"<figure class='{css}'>{inner}<figcaption>{flag}<code>{e(item.label)}</code>{note}</figcaption></figure>"


def _when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def _seconds(start: datetime | None, end: datetime | None) -> str:
    return "" if start is None or end is None else f"{(end - start).total_seconds():.1f} s"


def _rows(pairs: Iterable[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in pairs)


def _latest_try_note(record: TaskRecord) -> str:
    """The prediction row's note when a retry resumed what an earlier try submitted."""
    entry = record.prediction_by_try.get(record.try_number)
    if not entry or entry["how"] != "resumed":
        return ""
    submitted = [n for n, other in record.prediction_by_try.items() if other["id"] == entry["id"] and other["how"] == "submitted"]
    by = f", submitted by try {submitted[0]}" if submitted else ""
    return f" <small>resumed by try {record.try_number}{e(by)}</small>"


def _try_prediction(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "<small>not recorded</small>"
    return f"<code>{e(entry['id'])}</code> <small>{e(entry['how'])}</small>"


def task_tab(record: TaskRecord, outputs: list[Shown], inputs: list[Shown], *, run_id: str) -> str:
    """The WaveSpeed tab of one task instance."""
    p = record.prediction
    fields = record.rendered_fields or {}
    link = record.xcoms.get("_link_WaveSpeedPredictionLink")
    prediction_id = p.get("id") or record.xcoms.get("prediction_id")
    id_html = f"<code>{e(prediction_id)}</code>" if prediction_id else "not submitted"
    if isinstance(link, str) and link.startswith(("https://", "http://")):
        id_html += f" <a href='{e(link)}' target='_blank' rel='noopener noreferrer'>open</a>"
    timings = p.get("task_timings") or {}
    flags = p.get("has_nsfw_contents") or []
    dropped = (p.get("num_outputs") or 0) - len(outputs) if record.outputs else 0
    nsfw = f"{sum(bool(f) for f in flags)} of {len(flags)} flagged" if flags else "no flags"
    if dropped > 0:
        nsfw += f"; {dropped} output(s) not handed on (nsfw_policy)"
    summary = _rows(
        [
            ("model", e(p.get("model") or fields.get("model") or "")),
            ("status", e(p.get("status") or "not finished")),
            ("task state", e(record.state)),
            ("prediction", id_html + _latest_try_note(record)),
            ("quote", e(f"{p['cost_usd']:.4f} USD") if isinstance(p.get("cost_usd"), (int, float)) else "not quoted"),
            ("NSFW", e(nsfw)),
            ("inference", e(f"{p['inference_ms']} ms") if p.get("inference_ms") else ""),
            ("operator / triggerer", e(", ".join(f"{k}: {v} s" for k, v in timings.items()))),
            ("task ran", e(f"{_when(record.start_date)} for {_seconds(record.start_date, record.end_date)}")),
            ("error", e(p.get("error") or "")),
        ]
    )
    prompt = fields.get("prompt")
    if prompt is None and isinstance(fields.get("inputs"), dict):
        prompt = fields["inputs"].get("prompt")
    other = {k: v for k, v in fields.items() if k not in ("prompt", "images")}
    inputs_html = f"<p class='prompt'>{e(prompt)}</p>" if prompt else ""
    inputs_html += "".join(media(item, thumb=True) for item in inputs)
    if other:
        inputs_html += f"<pre class='text'>{e(json.dumps(other, indent=2, default=str))}</pre>"
    by_try = record.prediction_by_try
    tries = "".join(
        f"<tr><td>{t.try_number}</td><td>{e(t.state)}</td><td>{_try_prediction(by_try.get(t.try_number))}</td>"
        f"<td>{e(_when(t.start_date))}</td><td>{e(_seconds(t.start_date, t.end_date))}</td><td>{e(t.hostname)}</td></tr>"
        for t in record.tries
    )
    tries_html = (
        "<h2>Earlier tries</h2><p><small>A retry resumes the prediction an earlier try submitted (Airflow 3.3+); "
        "the prediction above is the one the latest try used. Which prediction each try used is known on "
        "Airflow 3.3+ (the task state store); before, Airflow keeps only the latest try's.</small></p>"
        "<table><tr><th>try</th><th>state</th><th>prediction</th>"
        f"<th>started</th><th>took</th><th>host</th></tr>{tries}</table>"
        if tries
        else ""
    )
    if outputs:
        outputs_html = "<div class='grid'>" + "".join(media(item) for item in outputs) + "</div>"
    elif p.get("num_outputs"):
        outputs_html = f"<p class='missing'>{p['num_outputs']} output(s), none handed on by the task</p>"
    else:
        outputs_html = "<p>No outputs yet.</p>"
    label = record.rendered_map_index or (str(record.map_index) if record.map_index >= 0 else "")
    return (
        f"<h1>{e(record.task_id)}{' [' + e(label) + ']' if label else ''}</h1>"
        f"<div class='top'><table class='summary'>{summary}</table><div><h2>Outputs</h2>{outputs_html}</div></div>"
        f"<h2>Inputs</h2><div class='grid'>{inputs_html}</div>{tries_html}"
    )


def passes(name: str, record: TaskRecord, item: Shown | None) -> bool:
    """Whether one output (``None``: a task without outputs) passes the gallery's filter. A task that
    succeeded without outputs (a budget check, a prediction id handed on) has nothing to show."""
    if item is None and record.state == "success":
        return False
    if name == "flagged":
        return item is not None and item.flagged
    if name == "failed":
        return record.state in ("failed", "upstream_failed") or (item is not None and item.kind == "missing")
    if name == "pending":
        return (record.state or "none") in _PENDING_STATES
    return True


def gallery(
    dag_id: str, run_id: str, cells: list[tuple[TaskRecord, Shown | None]], *, chosen: str, base: str
) -> str:
    """Every output of a run, filtered; a task without outputs yet is one cell saying its state."""
    links = " ".join(
        f"<a class='{'on' if name == chosen else ''}' href='{e(base)}?show={name}'>{name}</a>" for name in FILTERS
    )
    shown = []
    for record, item in cells:
        label = record.rendered_map_index or (str(record.map_index) if record.map_index >= 0 else "")
        title = f"<a href='{e(ti_href(base, record))}'>{e(record.task_id)}{' [' + e(label) + ']' if label else ''}</a> {e(record.state)}"
        if item is None:
            shown.append(f"<div class='cell'><p>{title}</p><p class='missing'>no outputs</p></div>")
        else:
            shown.append(f"<div class='cell'><p>{title}</p>{media(item, thumb=True)}</div>")
    body = "".join(shown) or "<p>Nothing matches.</p>"
    return (
        f"<h1>{e(dag_id)} / {e(run_id)}</h1><nav class='filters'>{links} ({len(shown)} shown)</nav>"
        f"<div class='grid'>{body}</div>"
    )


def ti_href(gallery_base: str, record: TaskRecord) -> str:
    """The tab's page of one task instance, from the gallery's own URL (``…/run/{dag}/{run}``)."""
    prefix, _, rest = gallery_base.partition("/run/")
    return f"{prefix}/ti/{rest}/{quote(record.task_id, safe='')}/{record.map_index}"


def runs_list(runs: list[RunSummary], *, prefix: str) -> str:
    rows = "".join(
        f"<tr><td>{e(r.dag_id)}</td><td><a href='{e(prefix)}/run/{quote(r.dag_id, safe='')}/{quote(r.run_id, safe='')}'>"
        f"{e(r.run_id)}</a></td><td>{e(r.state)}</td><td>{e(_when(r.start_date))}</td><td>{r.wavespeed_tasks}</td></tr>"
        for r in runs
    )
    table = (
        f"<table><tr><th>DAG</th><th>run</th><th>state</th><th>started</th><th>WaveSpeed tasks</th></tr>{rows}</table>"
        if rows
        else "<p>No runs with WaveSpeed tasks yet.</p>"
    )
    return f"<h1>Recent runs with WaveSpeed tasks</h1>{table}"
