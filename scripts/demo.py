"""`make demo`: run the example DAG `wavespeed_image_edit` through Airflow and save the edited image;
offline, also run `wavespeed_content_pipeline` and save a short clip of its edited photo and a voice-over.

Offline by default: a throwaway AIRFLOW_HOME on SQLite and the bundled WaveSpeed emulator on loopback.
With WAVESPEED_API_KEY set, the same DAG runs against the real API (billed, about $0.06 an edit).
Outputs land in ./demo-output, with a side-by-side picture of the input and the edit; the script
prints their paths and where the task's time went. Airflow's own start-up warnings are silenced (set
DEMO_LOG_LEVEL=INFO to see everything).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = ROOT / "demo-output"
DEMO_KEY = "demo-emulator-key"
SAMPLE_INPUT = ROOT / "example_dags" / "data" / "sample_input.png"
RUN_NAME = "demo"
CONTENT_DIR = OUTPUT_DIR / "content"


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    """The emulator in its own process, with a few seconds of model latency so the wait is visible."""
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_wavespeed.emulator", "--port", "0", "--api-key", DEMO_KEY,
         "--processing-seconds", "4", "--processing-polls", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return process, line.rsplit(" ", 1)[-1].strip()


def main() -> int:
    api_key = os.environ.get("WAVESPEED_API_KEY", "").strip()
    home = tempfile.mkdtemp(prefix="wavespeed-demo-airflow-")
    quiet = os.environ.get("DEMO_LOG_LEVEL", "ERROR") != "INFO"
    os.environ.update(
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "example_dags"),
        AIRFLOW__LOGGING__LOGGING_LEVEL=os.environ.get("DEMO_LOG_LEVEL", "ERROR"),
        # A throwaway key for the throwaway database: Airflow warns about an empty one otherwise.
        AIRFLOW__CORE__FERNET_KEY=_fernet_key(),
        WAVESPEED_POLL_INTERVAL="1",
        WAVESPEED_OUTPUT_DIR=str(OUTPUT_DIR),
        # The content pipeline stores its clip and voice-over here instead of S3 (read when the DAG is parsed).
        WAVESPEED_CONTENT_OUTPUT=str(CONTENT_DIR),
    )
    if quiet:
        # Airflow's own deprecation notices (httpx under starlette, and the like) are not the demo's.
        import warnings

        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*deprecated.*")
    emulator = None
    if api_key:
        os.environ["AIRFLOW_CONN_WAVESPEED_DEFAULT"] = json.dumps({"conn_type": "wavespeed", "password": api_key})
        target = "the WaveSpeed API (billed)"
    else:
        emulator, base_url = start_emulator()
        os.environ["AIRFLOW_CONN_WAVESPEED_DEFAULT"] = json.dumps(
            {"conn_type": "wavespeed", "password": DEMO_KEY, "host": base_url}
        )
        target = f"the bundled emulator at {base_url}"
    try:
        status = run_dag(target)
        if status == 0 and emulator is not None:  # a video run on the real API is billed: offline only
            status = run_content_pipeline(target)
        return status
    finally:
        if emulator is not None:
            emulator.terminate()
            emulator.wait(10)
        shutil.rmtree(home, ignore_errors=True)


def run_dag(target: str) -> int:
    from airflow.utils import db

    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    print(f"Running the DAG wavespeed_image_edit against {target} ...", flush=True)
    print(
        "(dag.test() runs the scheduler's steps and the trigger in this one process; in a deployment the "
        "wait runs in the triggerer and holds no worker slot.)",
        flush=True,
    )
    db.initdb() if hasattr(db, "initdb") else db.resetdb()
    bag = DagBag(str(ROOT / "example_dags"))
    if bag.import_errors:
        print(bag.import_errors, file=sys.stderr)
        return 1
    OUTPUT_DIR.mkdir(exist_ok=True)
    started = time.monotonic()
    dag_run = bag.get_dag("wavespeed_image_edit").test(run_conf={"output_name": RUN_NAME})
    elapsed = time.monotonic() - started
    paths, metadata = xcom(dag_run, "edit_image"), xcom(dag_run, "edit_image", "prediction")
    if dag_run.state != "success" or not paths:
        print(f"The DAG run ended {dag_run.state}; see the log above.", file=sys.stderr)
        return 1
    timings = (metadata or {}).get("task_timings", {})
    print()
    print(f"DAG run {dag_run.run_id}: {dag_run.state} in {elapsed:.1f} s")
    print(f"Prediction {metadata['id']} ({metadata['model']}), {metadata['status']}")
    for path in paths:
        print(f"  edited image: {path}")
    print(f"  before / after: {side_by_side(SAMPLE_INPUT, Path(paths[0]), OUTPUT_DIR / 'before_after.png')}")
    print(
        f"The operator's own code ran {timings.get('operator_seconds', 0):.2f} s on a worker; the wait, "
        f"{timings.get('triggerer_seconds', 0):.2f} s, ran in the trigger (plus Airflow's start-up of each "
        "task process, which its task duration shows)."
    )
    return 0


def run_content_pipeline(target: str) -> int:
    """The content pipeline (edit → image-to-video → voice-over) on the emulator; the clip and the
    voice-over copied to demo-output/clip.mp4 and voice_over.mp3."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    print(f"\nRunning the DAG wavespeed_content_pipeline against {target} ...", flush=True)
    started = time.monotonic()
    dag_run = DagBag(str(ROOT / "example_dags")).get_dag("wavespeed_content_pipeline").test()
    clips, voices = xcom(dag_run, "animate"), xcom(dag_run, "voice_over")
    if dag_run.state != "success" or not clips or not voices:
        print(f"The DAG run ended {dag_run.state}; see the log above.", file=sys.stderr)
        return 1
    clip = Path(shutil.copyfile(str(clips[0]), OUTPUT_DIR / "clip.mp4"))  # type: ignore[index]
    voice = Path(shutil.copyfile(str(voices[0]), OUTPUT_DIR / "voice_over.mp3"))  # type: ignore[index]
    print(f"DAG run {dag_run.run_id}: {dag_run.state} in {time.monotonic() - started:.1f} s")
    print(f"  clip of the edited image: {clip} ({clip.stat().st_size} bytes, H.264 MP4)")
    print(f"  voice-over: {voice} ({voice.stat().st_size} bytes, MP3)")
    return 0


def side_by_side(before: Path, after: Path, target: Path) -> Path:
    """The input and the edit next to each other, the same height, so a newcomer sees what changed."""
    from PIL import Image

    with Image.open(before) as left_image, Image.open(after) as right_image:
        height = max(left_image.height, right_image.height, 256)
        left = left_image.convert("RGB").resize((left_image.width * height // left_image.height, height))
        right = right_image.convert("RGB").resize((right_image.width * height // right_image.height, height))
    gap = 16
    canvas = Image.new("RGB", (left.width + right.width + 3 * gap, height + 2 * gap), "white")
    canvas.paste(left, (gap, gap))
    canvas.paste(right, (left.width + 2 * gap, gap))
    canvas.save(target)
    return target


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def xcom(dag_run: object, task_id: str, key: str = "return_value") -> object:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key, map_index=-1  # type: ignore[attr-defined]
        ).one_or_none()
        value = row.value if row is not None else None
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value


if __name__ == "__main__":
    sys.exit(main())
