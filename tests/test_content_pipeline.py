"""The content pipeline example end to end: product photo → GPT Image 2 edit → image-to-video (a
``@task.wavespeed`` task) → a voice-over → S3, through dag.test() on the emulator and moto; the clip and
the voice-over in the bucket decode with FFmpeg (PyAV)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from airflow_wavespeed.emulator import Emulator
from tests.s3_fixtures import load_example_dags
from tests.test_example_dags import xcom

pytest_plugins = ["tests.s3_fixtures"]
CONTENT_DAG = Path(__file__).resolve().parents[1] / "example_dags" / "wavespeed_content_pipeline.py"


@pytest.fixture(autouse=True)
def fresh_catalog() -> None:
    from airflow_wavespeed.catalog.lookup import forget_catalogs

    forget_catalogs()


def test_content_pipeline_stores_a_playable_clip_and_voice_over_in_s3(
    airflow_db: None, wavespeed_conn: Emulator, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import av

    monkeypatch.delenv("WAVESPEED_CONTENT_OUTPUT", raising=False)
    # Real output URLs often have no extension and a wrong Content-Type: the bytes decide.
    wavespeed_conn.config.output_url_extensions = False
    wavespeed_conn.config.output_content_type = "application/octet-stream"
    dags = load_example_dags(monkeypatch, bucket, CONTENT_DAG)

    run = dags["wavespeed_content_pipeline"].test(run_conf={"script": "Meet the new classic.", "duration": 8})

    assert run.state == "success"
    by_model = {p.model: p for p in wavespeed_conn.predictions.values()}
    assert sorted(by_model) == ["minimax/speech-02-hd", "openai/gpt-image-2/edit", "wavespeed-ai/wan-2.2/i2v-480p"]
    assert all(p.status == "completed" for p in by_model.values())
    (edited,) = xcom(run, "edit_photo")
    assert by_model["wavespeed-ai/wan-2.2/i2v-480p"].image_urls == [edited]  # the edited image is animated
    assert by_model["wavespeed-ai/wan-2.2/i2v-480p"].params["duration"] == 8
    assert by_model["minimax/speech-02-hd"].params["text"] == "Meet the new classic."

    (clip_uri,) = xcom(run, "animate")
    (voice_uri,) = xcom(run, "voice_over")
    assert clip_uri.startswith(f"s3://{bucket}/content/clips/") and clip_uri.endswith(".mp4")
    assert voice_uri.startswith(f"s3://{bucket}/content/voice-overs/") and voice_uri.endswith(".mp3")
    clip = s3.get_object(Bucket=bucket, Key=clip_uri.split("/", 3)[3])
    voice = s3.get_object(Bucket=bucket, Key=voice_uri.split("/", 3)[3])
    assert (clip["ContentType"], voice["ContentType"]) == ("video/mp4", "audio/mpeg")
    with av.open(io.BytesIO(clip["Body"].read())) as container:
        frames = list(container.decode(video=0))
    assert len(frames) >= 8 and frames[0].width > 0
    with av.open(io.BytesIO(voice["Body"].read())) as container:
        assert sum(frame.samples for frame in container.decode(audio=0)) > 0
    assert xcom(run, "animate", "prediction")["media"] == "video"
    assert xcom(run, "voice_over", "prediction")["stored"][0]["content_type"] == "audio/mpeg"
