"""Lineage (issue 13): inputs and stored outputs reach Airflow's hook-lineage collector and OpenLineage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.utils import lineage
from airflow_wavespeed.utils.lineage import dataset_name, location_uri
from tests.s3_fixtures import put_png
from tests.task_context import make_context

pytest_plugins = ["tests.s3_fixtures"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("location", "uri", "dataset"),
    [
        ("s3://b/in/a.png", "s3://b/in/a.png", ("s3://b", "in/a.png")),
        ("/data/in/a.png", "file:///data/in/a.png", ("file", "/data/in/a.png")),
        ("file:///data/a.png", "file:///data/a.png", ("file", "/data/a.png")),
        ("https://u:p@cdn.example:8443/o/a.png?sig=secret", "https://cdn.example:8443/o/a.png", ("https://cdn.example:8443", "/o/a.png")),
    ],
)
def test_locations_follow_the_openlineage_naming_spec(location: str, uri: str, dataset: tuple[str, str]) -> None:
    assert location_uri(location) == uri
    assert dataset_name(uri) == dataset


def test_the_hook_lineage_collector_gets_inputs_and_stored_outputs(
    wavespeed_conn: Emulator, emulator_image_url: str, sample_png_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.common.compat.lineage import hook as compat_hook
    from airflow.providers.common.compat.sdk import HookLineageCollector  # airflow.sdk.lineage on 3.2+

    from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator

    collector = HookLineageCollector()
    monkeypatch.setattr(compat_hook, "get_hook_lineage_collector", lambda: collector)
    monkeypatch.setattr(lineage, "hook_lineage_read", lambda: True)  # as when OpenLineage is enabled
    edit = WaveSpeedImageEditOperator(
        task_id="edit", images=[emulator_image_url, str(sample_png_path)], prompt="p", deferrable=False,
        output_uri=str(tmp_path / "out"),
    )  # fmt: skip
    (stored,) = edit.execute(make_context())
    collected = collector.collected_assets
    assert [a.asset.uri for a in collected.inputs] == [emulator_image_url, sample_png_path.resolve().as_uri()]
    assert [a.asset.uri for a in collected.outputs] == [Path(stored).as_uri()]
    facets = edit.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in facets.outputs] == [("file", stored)]


def test_without_a_reader_no_collector_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's no-op collector still imports every provider's asset handlers: not built when unread."""
    from airflow.providers.common.compat.lineage import hook as compat_hook

    assert lineage.hook_lineage_read() is False  # the test configuration: OpenLineage has no transport
    built: list[bool] = []
    monkeypatch.setattr(compat_hook, "get_hook_lineage_collector", lambda: built.append(True))
    lineage.report_to_airflow(object(), inputs=["s3://b/in.png"], outputs=["s3://b/out.png"])
    assert built == []


def test_an_edit_dag_emits_its_datasets_to_openlineage(
    airflow_db: None,
    wavespeed_conn: Emulator,
    emulator_image_url: str,
    aws_conn: str,
    s3: Any,
    bucket: str,
    sample_png: bytes,
    tmp_path: Path,
) -> None:
    """The OpenLineage provider's file transport, in a real dag.test() run (its own process, so the
    provider reads the transport from a clean configuration)."""
    s3_input = put_png(s3, bucket, "inputs/photo.png", sample_png)
    events = tmp_path / "openlineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "wavespeed-tests",
        "WAVESPEED_LINEAGE_IMAGES": f"{s3_input},{emulator_image_url}",
        "WAVESPEED_LINEAGE_OUTPUT": f"s3://{bucket}/published",
    }
    script = (
        "try:\n"
        "    from airflow.dag_processing.dagbag import DagBag\n"
        "except ImportError:  # Airflow < 3.2\n"
        "    from airflow.models.dagbag import DagBag\n"
        f"run = DagBag({str(ROOT / 'tests' / 'dags')!r}).get_dag('wavespeed_lineage').test()\n"
        "print('STATE', run.state)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert "STATE success" in result.stdout, result.stdout[-2000:] + result.stderr[-3000:]
    complete = [
        event for event in map(json.loads, events.read_text().splitlines())
        if event.get("eventType") == "COMPLETE" and event["job"]["name"].endswith(".edit")
    ]  # fmt: skip
    assert complete, events.read_text()[-2000:]
    event = complete[-1]
    inputs = {(d["namespace"], d["name"]) for d in event["inputs"]}
    outputs = {(d["namespace"], d["name"]) for d in event["outputs"]}
    url_input = (wavespeed_conn.base_url, "/" + emulator_image_url.split("/", 3)[3])
    assert inputs == {(f"s3://{bucket}", "inputs/photo.png"), url_input}
    assert len(outputs) == 1 and next(iter(outputs))[0] == f"s3://{bucket}" and next(iter(outputs))[1].startswith("published/")
