"""`make demo`: run the example DAG `wavespeed_image_edit` through Airflow and save the edited image.

Offline by default: a throwaway AIRFLOW_HOME on SQLite and the bundled WaveSpeed emulator on loopback.
With WAVESPEED_API_KEY set, the same DAG runs against the real API (billed, about $0.06 an edit).
Outputs land in ./demo-output; the script prints their paths and where the task's time went.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = ROOT / "demo-output"
DEMO_KEY = "demo-emulator-key"


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
    os.environ.update(
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "example_dags"),
        AIRFLOW__LOGGING__LOGGING_LEVEL=os.environ.get("DEMO_LOG_LEVEL", "WARNING"),
        WAVESPEED_POLL_INTERVAL="1",
    )
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
        return run_dag(target)
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
    db.initdb() if hasattr(db, "initdb") else db.resetdb()
    bag = DagBag(str(ROOT / "example_dags"))
    if bag.import_errors:
        print(bag.import_errors, file=sys.stderr)
        return 1
    OUTPUT_DIR.mkdir(exist_ok=True)
    started = time.monotonic()
    dag_run = bag.get_dag("wavespeed_image_edit").test(run_conf={"output_dir": str(OUTPUT_DIR)})
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
    print(
        f"The task held a worker slot for {timings.get('worker_seconds', 0):.2f} s and waited "
        f"{timings.get('trigger_seconds', 0):.2f} s in the triggerer, holding no slot."
    )
    return 0


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
