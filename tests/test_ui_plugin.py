"""The UI plugin without a browser: what it imports, how it registers, how it judges and escapes outputs.

The browser test against a real api-server is tests/e2e/test_ui_plugin.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_wavespeed.plugins.www.outputs import Shown, show_outputs
from airflow_wavespeed.plugins.www.records import TaskRecord
from airflow_wavespeed.plugins.www.render import media, passes, task_tab

pytest_plugins = ["tests.s3_fixtures"]

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
FRESH = {"created_at": "2026-12-03T12:00:00Z", "has_nsfw_contents": [False, True]}


def _run(code: str, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_operators_trigger_and_plugin_module_import_no_fastapi(tmp_path: Path) -> None:
    """A DAG parse, a worker and the triggerer never build the app; loading the plugin does not either."""
    out = _run(
        "import sys\n"
        "import airflow_wavespeed.operators.run_model, airflow_wavespeed.operators.image_edit\n"
        "import airflow_wavespeed.sensors.prediction, airflow_wavespeed.triggers.prediction\n"
        "import airflow_wavespeed.transfers.wavespeed_to_s3, airflow_wavespeed.operators.review\n"
        "assert 'airflow_wavespeed.plugins.wavespeed_plugin' not in sys.modules\n"
        "import airflow_wavespeed.plugins.wavespeed_plugin as p\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')"
        " or m.startswith('airflow_wavespeed.plugins.www')))\n",
        tmp_path,
    )
    assert out.strip() == "[]"


def test_airflow_lists_the_plugin_with_its_views(tmp_path: Path) -> None:
    """What ``pip install`` gives: the entry point Airflow always loads, and provider info "plugins"."""
    from airflow_wavespeed import get_provider_info

    assert get_provider_info()["plugins"] == [
        {"name": "wavespeed", "plugin-class": "airflow_wavespeed.plugins.wavespeed_plugin.WaveSpeedPlugin"}
    ]
    out = _run(
        "import json\nfrom airflow import plugins_manager\n"
        "print(json.dumps(plugins_manager.get_plugin_info(), default=str))\n",
        tmp_path,
    )
    plugin = next(p for p in json.loads(out.strip().splitlines()[-1]) if p["name"] == "wavespeed")
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/wavespeed"]
    assert {v["destination"] for v in plugin["external_views"]} == {"task_instance", "dag_run", "nav"}


def _shown(outputs: list[object], prediction: dict[str, object], *, presign=None) -> list[Shown]:  # type: ignore[no-untyped-def]
    def refuse(uri: str) -> str:
        raise RuntimeError("no credentials")

    return show_outputs(
        outputs,
        prediction,
        local_url=lambda n: f"/wavespeed/file/d/r/t/-1/{n}",
        presign=presign or refuse,
        hostname="worker-7",
        now=NOW,
    )


@pytest.mark.parametrize(
    ("output", "prediction", "kind", "note"),
    [
        ("https://cdn.example/a.png", FRESH, "image", "will be deleted on 2026-12-10"),
        ("https://cdn.example/clip.mp4?sig=1", FRESH, "video", ""),
        ("https://cdn.example/speech.mp3", FRESH, "audio", ""),
        ("https://cdn.example/model.glb", FRESH, "download", ""),
        ("https://cdn.example/no-extension", FRESH, "download", ""),
        ("https://cdn.example/no-extension", {**FRESH, "media": "video"}, "video", ""),
        ("https://cdn.example/a.png", {"created_at": "2026-11-01T00:00:00Z"}, "missing", "were deleted"),
        ("s3://bucket/key.png", FRESH, "missing", "could not sign a link: RuntimeError"),
        ("/nowhere/out.png", FRESH, "missing", "stored on worker-7 at this path"),
        ("javascript:alert(1)", FRESH, "text", ""),
        ("A text model's answer", FRESH, "text", ""),
        ("ftp://host/a.png", FRESH, "missing", "not a location"),
    ],
    ids=[
        "image", "video", "audio", "3d", "unknown", "declared-media", "expired", "s3-unsigned",
        "other-machine", "script-url", "text", "other-scheme",
    ],  # fmt: skip
)
def test_each_output_is_shown_as_what_it_is(output: str, prediction: dict[str, object], kind: str, note: str) -> None:
    (item,) = _shown([output], prediction)
    assert item.kind == kind
    assert note in item.note
    if kind in ("text", "missing"):
        assert item.src is None  # never put into src or href


def test_stored_outputs_presigned_local_and_flags(tmp_path: Path) -> None:
    local = tmp_path / "out.webm"
    local.write_bytes(b"\x1aE\xdf\xa3")
    stored = [{"uri": "s3://b/k", "media": "image", "content_type": "image/png", "bytes": 3}]
    items = _shown(
        ["s3://b/k", str(local)], {**FRESH, "stored": stored}, presign=lambda uri: "https://s3.example/b/k?X-Amz=1"
    )
    assert [(i.kind, i.src) for i in items] == [
        ("image", "https://s3.example/b/k?X-Amz=1"),
        ("video", "/wavespeed/file/d/r/t/-1/1"),
    ]
    assert [i.flagged for i in items] == [False, True]
    assert items[0].origin == "https://s3.example" and items[1].origin is None


def test_s3_outputs_get_a_presigned_url_the_browser_can_load(s3: Any, bucket: str, sample_png: bytes) -> None:
    """Through moto's server over HTTP: the URL made with ``aws_default`` serves the object, once per page."""
    import requests

    from airflow_wavespeed.plugins.www.app import Presigner

    s3.put_object(Bucket=bucket, Key="out/0.png", Body=sample_png, ContentType="image/png")
    presign = Presigner()
    items = _shown([f"s3://{bucket}/out/0.png", f"s3://{bucket}/out/0.png"], FRESH, presign=presign)
    assert [item.kind for item in items] == ["image", "image"]
    assert items[0].src is not None and "Signature" in items[0].src
    response = requests.get(items[0].src, timeout=10)
    assert response.status_code == 200 and response.content == sample_png
    unsigned = requests.get(items[0].src.split("?")[0], timeout=10)
    assert unsigned.status_code == 403  # the object is not public: only the signed URL reads it


def test_only_local_media_files_are_served(tmp_path: Path) -> None:
    from airflow_wavespeed.plugins.www.outputs import local_output

    (tmp_path / "out.png").write_bytes(b"png")
    (tmp_path / "airflow.cfg").write_text("[api] secret_key = x")
    outputs = [str(tmp_path / "out.png"), str(tmp_path / "airflow.cfg"), "relative.png", str(tmp_path / "gone.png")]
    assert [local_output(outputs, n) for n in range(5)] == [outputs[0], None, None, None, None]
    assert [item.kind for item in _shown(outputs, FRESH)] == ["image", "missing", "text", "missing"]


def test_an_output_cannot_bend_the_pages_policy() -> None:
    from airflow_wavespeed.plugins.www.app import csp

    hostile = Shown("image", "https://a;script-src 'unsafe-inline' b/x.png", "x")
    odd = Shown("image", "https://user@cdn.example/x.png", "x")
    fine = Shown("image", "http://[::1]:8080/x.png", "x")
    assert hostile.origin is None and odd.origin is None and fine.origin == "http://[::1]:8080"
    policy = csp({item.origin for item in (hostile, odd, fine) if item.origin})
    assert "script-src" not in policy and policy.count(";") == 6


def test_markup_in_outputs_and_inputs_is_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    (text,) = _shown([hostile], FRESH)
    assert "<script>" not in media(text) and "&lt;script&gt;" in media(text)
    image = Shown("image", "https://cdn.example/a.png?'onerror='x", "'><img src=x>")
    assert "<img src=x>" not in media(image) and "&#x27;onerror=&#x27;x" in media(image)
    record = TaskRecord("t<b>", -1, "success", "WaveSpeedRunModelOperator", 1, None, None, None)
    record.xcoms = {"prediction": {"model": hostile, "error": hostile}, "_link_WaveSpeedPredictionLink": "javascript:x"}
    record.rendered_fields = {"prompt": hostile, "inputs": {"x": hostile}}
    page = task_tab(record, [text], [], run_id="r")
    assert "<script>" not in page and "t&lt;b&gt;" in page
    assert "javascript:" not in page  # a link that is not http(s) is not made a link


def test_only_text_in_a_return_value_is_an_output() -> None:
    """The budget operator's return value (its batch's keyword arguments) is not a gallery of outputs."""
    budget = TaskRecord("check_budget", -1, "success", "WaveSpeedBudgetOperator", 1, None, None, None)
    budget.xcoms = {"return_value": [{"inputs": {"prompt": "a"}, "max_cost_usd": 0.5}]}
    assert budget.outputs == [] and not passes("all", budget, None)
    edit = TaskRecord("edit", 0, "success", "WaveSpeedImageEditOperator", 1, None, None, None)
    edit.xcoms = {"return_value": ["https://x/a.png", "s3://b/k.png"], "prediction_id": "p"}
    assert edit.outputs == ["https://x/a.png", "s3://b/k.png"]


def test_gallery_filters() -> None:
    record = TaskRecord("t", 0, "failed", "WaveSpeedImageEditOperator", 1, None, None, None)
    done = TaskRecord("t", 1, "success", "WaveSpeedImageEditOperator", 1, None, None, None)
    flagged = Shown("image", "https://x/a.png", "a", flagged=True)
    assert passes("flagged", done, flagged) and not passes("flagged", done, Shown("image", "https://x/b.png", "b"))
    assert passes("failed", record, None) and not passes("failed", done, flagged)
    assert passes("pending", TaskRecord("t", 2, "deferred", "W", 1, None, None, None), None)
    assert not passes("all", done, None)  # succeeded without outputs: nothing to show


def test_s3_links_are_signed_with_the_connection_the_task_recorded(
    s3: Any, bucket: str, sample_png: bytes, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task's own ``aws_conn_id`` (in its prediction XCom) signs its links; ``aws_default`` is not used."""
    import requests

    from airflow_wavespeed.plugins.www.app import Presigner, shown_outputs
    from tests.s3_fixtures import aws_connection_json

    monkeypatch.setenv("AIRFLOW_CONN_TASK_AWS", aws_connection_json(moto_endpoint))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_json("http://127.0.0.1:9"))  # nothing listens
    s3.put_object(Bucket=bucket, Key="out/0.png", Body=sample_png, ContentType="image/png")
    record = TaskRecord(
        task_id="edit", map_index=-1, state="success", operator="WaveSpeedImageEditOperator", try_number=1,
        hostname="worker-1", start_date=NOW, end_date=NOW,
        xcoms={"return_value": [f"s3://{bucket}/out/0.png"], "prediction": {**FRESH, "aws_conn_id": "task_aws"}},
    )  # fmt: skip
    (item,) = shown_outputs("dag", "run", record, Presigner())
    assert item.src is not None and item.src.startswith(moto_endpoint)
    assert requests.get(item.src, timeout=10).content == sample_png
