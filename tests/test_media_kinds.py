"""Every kind of media in and out (issue 20), through the real path: models run on the emulator, outputs
stored to a local directory and to S3 (moto), then decoded with real decoders; the catalog check refuses
what the model does not take before anything is submitted."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_wavespeed.emulator import Emulator
from airflow_wavespeed.exceptions import WaveSpeedInputError, WaveSpeedOutputRefusedError
from airflow_wavespeed.media.types import sniff
from tests.s3_fixtures import put_png
from tests.task_context import make_context

pytest_plugins = ["tests.s3_fixtures"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_catalog() -> None:
    """Each test reads the (reset) emulator's catalog anew."""
    from airflow_wavespeed.catalog.lookup import forget_catalogs

    forget_catalogs()


def decode_video(data: bytes) -> tuple[int, tuple[int, int]]:
    """Frames decoded with FFmpeg (PyAV) and the picture size."""
    import av

    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(video=0))
    return len(frames), (frames[0].width, frames[0].height)


def decode_audio_samples(data: bytes) -> int:
    import av

    with av.open(io.BytesIO(data)) as container:
        return sum(frame.samples for frame in container.decode(audio=0))


def read_glb(data: bytes) -> dict[str, Any]:
    """A GLB's header checked and its JSON chunk parsed."""
    magic, version, length = struct.unpack("<4sII", data[:12])
    assert (magic, version, length) == (b"glTF", 2, len(data))
    chunk_length, chunk_type = struct.unpack("<I4s", data[12:20])
    assert chunk_type == b"JSON"
    document: dict[str, Any] = json.loads(data[20 : 20 + chunk_length])
    return document


def run_media_dag(env: dict[str, str]) -> dict[str, Any]:
    """dag.test() of tests/dags/wavespeed_media_kinds.py in its own process (the DAG reads its destinations
    from the environment when parsed); answers each task's return value and prediction XCom."""
    script = (
        "import json\n"
        "try:\n"
        "    from airflow.dag_processing.dagbag import DagBag\n"
        "except ImportError:  # Airflow < 3.2\n"
        "    from airflow.models.dagbag import DagBag\n"
        "from airflow.models.xcom import XComModel\n"
        "from airflow.utils.session import create_session\n"
        f"run = DagBag({str(ROOT / 'tests' / 'dags')!r}).get_dag('wavespeed_media_kinds').test()\n"
        "found = {}\n"
        "with create_session() as session:\n"
        "    for row in session.query(XComModel).filter_by(dag_id=run.dag_id, run_id=run.run_id):\n"
        "        value = row.value\n"
        "        try:\n"
        "            value = json.loads(value) if isinstance(value, str) else value\n"
        "        except ValueError:  # a plain string is stored as it is\n"
        "            pass\n"
        "        found.setdefault(row.task_id, {})[row.key] = value\n"
        "print('RESULT', json.dumps({'state': str(run.state), 'xcoms': found}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    answer: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    assert answer["state"].endswith("success"), result.stdout[-3000:] + result.stderr[-3000:]
    return answer["xcoms"]


def test_every_kind_is_stored_by_its_bytes_and_decodes(
    airflow_db: None,
    wavespeed_conn: Emulator, s3: Any, bucket: str, sample_png: bytes, tmp_path: Path
) -> None:
    from tests.conftest import connection_json

    put_png(s3, bucket, "inputs/photo.png", sample_png)
    # Real output URLs often have no extension and a wrong Content-Type: the bytes decide.
    wavespeed_conn.config.output_url_extensions = False
    wavespeed_conn.config.output_content_type = "application/octet-stream"
    out = tmp_path / "out"
    xcoms = run_media_dag(
        {
            "AIRFLOW_CONN_WAVESPEED_DEFAULT": connection_json(wavespeed_conn.base_url),
            "WAVESPEED_MEDIA_OUT": str(out),
            "WAVESPEED_MEDIA_S3": f"s3://{bucket}",
        }
    )

    (clip,) = xcoms["text_to_video"]["return_value"]
    assert clip.endswith(".mp4") and Path(clip).parent == out
    frames, size = decode_video(Path(clip).read_bytes())
    assert frames >= 8 and size[0] > 0
    metadata = xcoms["text_to_video"]["prediction"]
    assert metadata["media"] == "video"
    assert metadata["stored"] == [{"uri": clip, "media": "video", "content_type": "video/mp4", "bytes": Path(clip).stat().st_size}]

    (uri,) = xcoms["image_to_video"]["return_value"]
    assert uri.startswith(f"s3://{bucket}/clips/") and uri.endswith(".mp4")
    key = uri.removeprefix(f"s3://{bucket}/")
    stored = s3.get_object(Bucket=bucket, Key=key)
    assert stored["ContentType"] == "video/mp4", "a browser plays it straight from the bucket"
    assert decode_video(stored["Body"].read())[0] >= 8
    sample = (ROOT / "example_dags" / "data" / "sample_input.png").read_bytes()
    assert [u for u in wavespeed_conn.uploads.values() if u.data == sample], "the local image went up through the upload"

    (speech,) = xcoms["speech"]["return_value"]
    assert speech.endswith(".mp3") and decode_audio_samples(Path(speech).read_bytes()) > 1000

    (model,) = xcoms["image_to_3d"]["return_value"]
    document = read_glb(Path(model).read_bytes())
    assert model.endswith(".glb") and document["asset"]["version"] == "2.0" and document["meshes"]

    (caption,) = xcoms["llm"]["return_value"]
    assert isinstance(caption, str) and not caption.startswith("http") and caption.strip()
    assert xcoms["llm"]["prediction"]["media"] == "text"
    assert wavespeed_conn.submit_count() == 5


@pytest.mark.parametrize("marker", ["[html-output]", "[svg-output]"])
def test_markup_output_fails_the_task_and_nothing_is_written(wavespeed_conn: Emulator, tmp_path: Path, marker: str) -> None:
    from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

    out = tmp_path / "out"
    task = WaveSpeedRunModelOperator(
        task_id="t", model="wavespeed-ai/flux-dev", inputs={"prompt": f"a page {marker}"}, output_uri=str(out),
        deferrable=False, poll_interval=0.1,
    )  # fmt: skip
    with pytest.raises(WaveSpeedOutputRefusedError) as raised:
        task.execute(make_context())
    (prediction_id,) = wavespeed_conn.predictions
    assert prediction_id in str(raised.value)
    assert ("SVG" if "svg" in marker else "HTML") in str(raised.value)
    assert not out.exists() or not any(out.rglob("*")), "nothing of it was stored"


def test_a_typo_in_an_input_is_refused_naming_the_closest_with_zero_submits(wavespeed_conn: Emulator) -> None:
    from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

    task = WaveSpeedRunModelOperator(
        task_id="t", model="wavespeed-ai/wan-2.2/t2v-480p", inputs={"promt": "a lighthouse", "duration": 7},
        deferrable=False,
    )  # fmt: skip
    with pytest.raises(WaveSpeedInputError) as raised:
        task.execute(make_context())
    message = str(raised.value)
    assert "wavespeed-ai/wan-2.2/t2v-480p" in message
    assert "inputs['promt'] is not an input" in message and "did you mean 'prompt'" in message
    assert "inputs['duration']: 7 is not one of [5, 8]" in message
    assert "'prompt' is a required property" in message
    assert wavespeed_conn.submit_count(include_rejected=True) == 0
    assert [r.path for r in wavespeed_conn.requests] == ["/api/v3/models"], "only the free catalog read"


def test_an_unknown_model_is_refused_with_the_closest_names(wavespeed_conn: Emulator) -> None:
    from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

    task = WaveSpeedRunModelOperator(task_id="t", model="wavespeed-ai/wan-2.2/t2v-48p", inputs={"prompt": "p"}, deferrable=False)
    with pytest.raises(WaveSpeedInputError, match=r"not in WaveSpeed's model catalog \(closest: wavespeed-ai/wan-2\.2/t2v-480p"):
        task.execute(make_context())
    assert wavespeed_conn.submit_count(include_rejected=True) == 0


def test_check_catalog_false_submits_a_model_the_catalog_does_not_list(wavespeed_conn: Emulator, tmp_path: Path) -> None:
    from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

    task = WaveSpeedRunModelOperator(
        task_id="t", model="acme/private-t2v", inputs={"prompt": "p"}, check_catalog=False, deferrable=False,
        poll_interval=0.1, output_uri=str(tmp_path),
    )  # fmt: skip
    context = make_context()
    (clip,) = task.execute(context)
    assert clip.endswith(".mp4") and decode_video(Path(clip).read_bytes())[0] > 0
    assert "/api/v3/models" not in [r.path for r in wavespeed_conn.requests]
    assert context["ti"].xcoms["prediction"]["media"] == "video", "the name says what it makes"


def test_a_catalog_that_cannot_be_read_skips_the_check(wavespeed_conn: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_wavespeed.hooks.catalog import CatalogCalls
    from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

    def unreadable(self: Any) -> Any:
        from airflow_wavespeed.exceptions import WaveSpeedNotFoundError

        raise WaveSpeedNotFoundError("read the model catalog: not found (HTTP 404)", http_status=404)

    monkeypatch.setattr(CatalogCalls, "get_models", unreadable)
    task = WaveSpeedRunModelOperator(task_id="t", model="wavespeed-ai/flux-dev", inputs={"prompt": "p"}, deferrable=False, poll_interval=0.1)
    (output,) = task.execute(make_context())
    assert output.startswith(wavespeed_conn.base_url) and wavespeed_conn.submit_count() == 1


def test_media_inputs_of_every_kind_from_a_path_and_bytes(wavespeed_conn: Emulator, tmp_path: Path, sample_png: bytes) -> None:
    """A lip-sync model's audio as bytes, its image as a local path: both typed and uploaded; the result is
    a video with the audio's track."""
    from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

    speech = WaveSpeedRunModelOperator(
        task_id="s", model="minimax/speech-02-hd", inputs={"text": "Hello there.", "voice_id": "Calm_Woman"},
        output_uri=str(tmp_path / "speech"), deferrable=False, poll_interval=0.1,
    )  # fmt: skip
    (audio_path,) = speech.execute(make_context())
    image = tmp_path / "face.png"
    image.write_bytes(sample_png)
    talk = WaveSpeedRunModelOperator(
        task_id="t", model="wavespeed-ai/infinitetalk",
        inputs={"image": str(image), "audio": Path(audio_path).read_bytes(), "prompt": "a calm speaker"},
        output_uri=str(tmp_path / "talk"), deferrable=False, poll_interval=0.1,
    )  # fmt: skip
    (clip,) = talk.execute(make_context())
    import av

    with av.open(clip) as container:
        assert container.streams.video and container.streams.audio
    kinds = sorted(sniff(upload.data[:1024]).media for upload in wavespeed_conn.uploads.values())  # type: ignore[union-attr]
    assert kinds == ["audio", "image"]


def test_a_media_input_of_the_wrong_kind_is_refused_before_any_request(wavespeed_conn: Emulator, tmp_path: Path) -> None:
    from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

    notes = tmp_path / "clip.mp4"
    notes.write_text("not a video at all")
    task = WaveSpeedRunModelOperator(
        task_id="t", model="wavespeed-ai/video-upscaler", inputs={"video": f"file://{notes}"}, deferrable=False
    )
    with pytest.raises(WaveSpeedInputError, match=r"inputs\['video'\]: .*clip\.mp4' is not an image WaveSpeed accepts, nor a video, audio or 3D file.*look like text"):
        task.execute(make_context())
    assert wavespeed_conn.requests == []


@pytest.mark.parametrize(
    ("endpoints", "expected"),
    [
        (["price", "pricing"], 0.15),  # the newer endpoint answers: its discounted price
        (["pricing"], 0.15),  # /model/price answers 404: the older endpoint's unit_price
        (["price"], 0.15),
        ([], None),  # neither: unknown, never free
    ],
)
def test_the_price_quote_reads_both_endpoints(wavespeed_conn: Emulator, endpoints: list[str], expected: float | None) -> None:
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook

    wavespeed_conn.config.price_endpoints = endpoints
    price = WaveSpeedHook().get_price("wavespeed-ai/wan-2.2/t2v-480p", {"prompt": "p", "duration": 5})
    assert price == expected
    asked = [r.path for r in wavespeed_conn.requests]
    assert asked[0] == "/api/v3/model/price" and ("/api/v3/model/pricing" in asked) == ("price" not in endpoints)


@pytest.mark.parametrize(
    ("head", "media", "ext"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video", "mp4"),
        (b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A mp42isom\x00\x00\x00\x00", "audio", "m4a"),
        (b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04B\xf3\x81\x08B\x82\x84webm", "video", "webm"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(20), "audio", "mp3"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(20), "audio", "wav"),
        (b"fLaC\x00\x00\x00\x22" + bytes(20), "audio", "flac"),
        (b"glTF\x02\x00\x00\x00\x40\x00\x00\x00", "3d", "glb"),
        (b'{"asset": {"version": "2.0"}, "meshes": []}', "3d", "gltf"),
        (b"ply\nformat binary_little_endian 1.0\n", "3d", "ply"),
        (b"\x89PNG\r\n\x1a\n" + bytes(8), "image", "png"),
        ("Une légende, en français.".encode(), "text", "txt"),
    ],
)
def test_media_types_are_told_by_their_bytes(head: bytes, media: str, ext: str) -> None:
    found = sniff(head)
    assert found is not None and (found.media, found.ext) == (media, ext)


@pytest.mark.parametrize(
    ("head", "looks"),
    [
        (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script/></svg>', "SVG"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(30), "zip"),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(56), "executable"),
        (b"%PDF-1.7\n", "pdf"),
    ],
)
def test_markup_archives_and_executables_are_refused(head: bytes, looks: str) -> None:
    from airflow_wavespeed.media.types import refusal

    problem = refusal(head)
    assert problem is not None and looks in problem
