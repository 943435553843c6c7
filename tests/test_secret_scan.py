"""Run the example DAGs with a distinctive API key and look for that key everywhere it must not be.

Covered here through dag.test(): everything printed (task and trigger logs), every file Airflow wrote
under AIRFLOW_HOME (the metadata DB holds XCom, rendered template fields and trigger rows), the
serialized trigger kwargs, exception messages, and the reprs of hooks (after they used the key) and
operators. The e2e test repeats the scan on a real scheduler and triggerer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from airflow_wavespeed.emulator import Emulator, EmulatorConfig
from tests.conftest import connection_json, load_dag_bag

# moto_endpoint, aws_conn, s3, bucket for the S3 example
pytest_plugins = ["tests.s3_fixtures"]

EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "example_dags"
SECRET = "ws-live-SCAN-9f8e7d6c5b4a3210"


@contextmanager
def secret_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator that accepts only SECRET, with ``wavespeed_default`` holding that key."""
    with Emulator(api_key=SECRET, config=EmulatorConfig(processing_polls=1, scale=0.0625)) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(emu.base_url, SECRET))
        yield emu


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                continue
    return hits


def test_the_api_key_appears_nowhere(
    airflow_db: None, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from airflow_wavespeed.exceptions import WaveSpeedError
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator
    from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger

    seen: list[str] = []
    with secret_emulator(monkeypatch) as emu:
        bag: Any = load_dag_bag(EXAMPLE_DAGS)
        dag = bag.get_dag("wavespeed_image_edit")
        ok = dag.test(run_conf={"output_name": "secret-scan"})
        failed = dag.test(run_conf={"output_name": "secret-scan", "prompt": "[fail] on purpose"})
        assert (ok.state, failed.state) == ("success", "failed")

        hook = WaveSpeedHook()
        operator = dag.get_task("edit_image")
        seen += [repr(operator), str(vars(operator))]
        seen.append(json.dumps(WaveSpeedPredictionTrigger("p", end_time=1.0).serialize()))
        for call in (lambda: hook.get_prediction("missing"), lambda: hook.submit("a/b", {"prompt": "x"})):
            emu.config.submit_5xx_rate = 1.0
            with pytest.raises(WaveSpeedError) as raised:
                call()
            seen.append(str(raised.value))
        seen += [repr(hook), str(vars(hook))]  # after the hook read the key and sent it
        bad = WaveSpeedImageEditOperator(task_id="t", images=["https://example.com/a.png"], prompt="[fail] x")
        seen.append(repr(bad))

    captured = capfd.readouterr()
    seen += [captured.out, captured.err]
    assert "Emulated failure" in captured.out + captured.err, "the failed run's log was captured and scanned"
    assert not [text[:200] for text in seen if SECRET in text]
    home = Path(os.environ["AIRFLOW_HOME"])
    assert list(home.glob("*.db")), "the metadata DB (XCom, rendered fields, triggers) is among the files scanned"
    assert files_containing(home, SECRET.encode()) == []


def test_the_mapped_and_s3_examples_leak_no_key_either(
    airflow_db: None,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    s3: Any,
    bucket: str,
    sample_png: bytes,
    tmp_path: Path,
) -> None:
    from tests.s3_fixtures import load_example_dags, put_png

    monkeypatch.setenv("WAVESPEED_OUTPUT_DIR", str(tmp_path / "out"))
    with secret_emulator(monkeypatch) as emu:
        batch: Any = load_dag_bag(EXAMPLE_DAGS)
        assert batch.get_dag("wavespeed_batch_edit").test().state == "success"
        pipeline = load_example_dags(monkeypatch, bucket)["wavespeed_s3_pipeline"]
        images = [put_png(s3, bucket, "inputs/photo.png", sample_png)]
        assert pipeline.test(run_conf={"images": images, "prompt": "make it blue"}).state == "success"
        assert emu.submit_count() == 4, "three mapped edits and one S3 edit really ran with the key"

    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err
    assert files_containing(Path(os.environ["AIRFLOW_HOME"]), SECRET.encode()) == []
