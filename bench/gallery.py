"""The run gallery on a 200-output batch: time per page and SQL statements per page, side by side with
Airflow's own list of the same run's task instances (``GET /api/v2/dags/{dag}/dagRuns/{run}/taskInstances``),
the call the run's grid makes, on the same database in the same process.

Both pages are served by Airflow's own api-server app (``airflow.api_fastapi.app.create_app``, the plugin
mounted as the api-server mounts it), called through FastAPI's test client with a real JWT, so
authentication, the auth manager's DAG check and the middleware are in both figures. The runs are made
by ``dag.test()``: a mapped ``WaveSpeedRunModelOperator`` of 20 and of 200 predictions on the emulator,
one image output each. Figures are medians; what matters is the ratio and that the statement count stays
the same from 20 to 200 outputs (reads per run, not per task instance).

    .venv/bin/python bench/gallery.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from _common import (
    EmulatorProcess,
    Watchdog,
    airflow_env,
    child_command,
    machine_note,
    run_child_json,
    table,
    temp_airflow_home,
    verdict,
)

SCRIPT = Path(__file__).resolve()
SIZES = (20, 200)
#: The gallery may take at most this many times Airflow's own task-instance list of the run.
RATIO_LIMIT = 2.0
DAG_FILE = textwrap.dedent(
    """
    from datetime import datetime
    from airflow.sdk import DAG
    from airflow_wavespeed.operators.run_model import WaveSpeedRunModelOperator

    for size in {sizes}:
        with DAG(f"gallery_{{size}}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
            WaveSpeedRunModelOperator.partial(
                task_id="generate", model="wavespeed-ai/flux-dev", deferrable=False, poll_interval=0.02,
                check_catalog=False,
            ).expand(inputs=[{{"prompt": f"picture {{n}}", "seed": n}} for n in range(size)])
    """
)


def child(repeats: int) -> dict[str, Any]:
    """In a fresh interpreter whose environment names the Airflow home: make the runs, time the pages."""
    from airflow.utils import db

    db.resetdb()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not bag.import_errors, bag.import_errors
    runs = {}
    for size in SIZES:
        dag_run = bag.get_dag(f"gallery_{size}").test()
        assert dag_run.state == "success", f"gallery_{size} ended {dag_run.state}"
        runs[size] = dag_run.run_id

    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.settings import engine
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    client = TestClient(create_app())
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    headers = {"Authorization": f"Bearer {token}"}
    statements = [0]
    event.listen(engine, "before_cursor_execute", lambda *args: statements.__setitem__(0, statements[0] + 1))

    def measure(url: str, check: Any) -> dict[str, float]:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        check(response)
        seconds, counts = [], []
        for _ in range(repeats):
            statements[0] = 0
            started = time.perf_counter()
            client.get(url, headers=headers)
            seconds.append(time.perf_counter() - started)
            counts.append(statements[0])
        return {"ms": statistics.median(seconds) * 1000, "statements": statistics.median(counts)}

    figures = {}
    for size, run_id in runs.items():
        dag_id = f"gallery_{size}"

        def gallery_ok(response: Any, size: int = size) -> None:
            assert response.text.count("loading='lazy'") == size, "one lazy thumbnail per output"

        def list_ok(response: Any, size: int = size) -> None:
            assert response.json()["total_entries"] == size

        figures[size] = {
            "gallery": measure(f"/wavespeed/run/{dag_id}/{run_id}", gallery_ok),
            "airflow": measure(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit={size}", list_ok),
        }
    return {"figures": figures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    repeats = 7 if args.quick else 25
    flags = ["--processing-seconds", "0", "--processing-polls", "0"]
    with Watchdog(900, "gallery"), EmulatorProcess(flags=flags) as emulator, temp_airflow_home() as home:
        dags = home / "dags"
        dags.mkdir()
        (dags / "gallery_dags.py").write_text(DAG_FILE.format(sizes=SIZES))
        env = {
            **os.environ,
            **airflow_env(home, emulator.base_url, emulator.port),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__API_AUTH__JWT_SECRET": "bench-gallery-jwt-secret-0123456789abcdef",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        }
        result = run_child_json(child_command(SCRIPT, "--child", str(repeats)), env, timeout=800)
    rows = []
    for size in SIZES:
        ours, theirs = result["figures"][str(size)]["gallery"], result["figures"][str(size)]["airflow"]
        ratio = ours["ms"] / theirs["ms"]
        rows.append(
            [size, f"{ours['ms']:.1f}", f"{theirs['ms']:.1f}", f"{ratio:.2f}x", int(ours["statements"]), int(theirs["statements"])]
        )
    big = result["figures"][str(SIZES[-1])]
    small = result["figures"][str(SIZES[0])]
    ratio = big["gallery"]["ms"] / big["airflow"]["ms"]
    print(f"Run gallery vs Airflow's task-instance list of the same run ({machine_note()}; medians of {repeats})")
    print(
        table(
            ["outputs", "gallery ms", "Airflow TI list ms", "ratio", "gallery SQL", "Airflow SQL"], rows
        )
    )
    same_statements = big["gallery"]["statements"] == small["gallery"]["statements"]
    passed = verdict(ratio, RATIO_LIMIT) == "PASS" and same_statements
    print(
        f"gallery: {ratio:.2f}x Airflow's list at {SIZES[-1]} outputs (limit {RATIO_LIMIT:g}x); SQL statements "
        f"{int(small['gallery']['statements'])} at {SIZES[0]} and {int(big['gallery']['statements'])} at "
        f"{SIZES[-1]} outputs (the same: reads per run): {'PASS' if passed else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
