"""Worker time: seconds a deferrable GPT Image 2 edit holds a worker slot, side by side with a
PythonOperator-style task calling the official ``wavespeed`` SDK (``Client.run``), on the same
emulator latency (the model "takes" ``--processing-seconds``).

Without a scheduler, ours is measured as the worker would see it: ``execute()`` until it raises
``TaskDeferred`` (the slot is released then), plus ``execute_complete(event)`` after the trigger
fired. Each of those runs in its own fresh interpreter, as on a real worker, so lazy imports count;
the trigger runs in this process (no worker slot). The SDK's whole ``Client(...).run()`` is timed in a
fresh interpreter too. Interpreter start and DAG import are not in either figure: they are measured
separately and shown as an estimate (ours pays them twice, the SDK task once).

    .venv/bin/python bench/worker_time.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    BENCH_KEY,
    EmulatorProcess,
    Watchdog,
    airflow_env,
    child_command,
    machine_note,
    run_child_json,
    table,
    temp_airflow_home,
)

SCRIPT = Path(__file__).resolve()
EDIT_MODEL = "openai/gpt-image-2/edit"
PROMPT = "Turn the sky into a watercolour sunset"
POLL_INTERVAL = 1.0


class StubTI:
    """The little of a task instance the operator touches without output storage: XCom pushes."""

    dag_id = "bench"
    run_id = "manual__bench"
    task_id = "edit"
    map_index = -1
    try_number = 1

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def _operator(image_url: str) -> Any:
    from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator

    return WaveSpeedImageEditOperator(
        task_id="edit",
        images=[image_url],
        prompt=PROMPT,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=600,
    )


# ------------------------------------------------------------------------------------------ children


def child_submit(image_url: str) -> dict[str, Any]:
    """Worker, first half: execute() until TaskDeferred. The operator module is already imported (the
    DAG file imports it), so the clock covers only the task's own code, lazy imports included."""
    from airflow.sdk.exceptions import TaskDeferred

    import airflow_wavespeed.operators.image_edit  # noqa: F401

    operator = _operator(image_url)
    context = {"ti": StubTI()}
    started = time.perf_counter()
    try:
        operator.execute(context)
    except TaskDeferred as deferred:
        seconds = time.perf_counter() - started
        classpath, kwargs = deferred.trigger.serialize()
        return {
            "seconds": seconds,
            "classpath": classpath,
            "trigger": kwargs,
            "kwargs": deferred.kwargs or {},
        }
    raise RuntimeError("execute() returned without deferring")


def child_complete(image_url: str, event: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Worker, second half: a fresh process resumes the task with the trigger's event."""
    import airflow_wavespeed.operators.image_edit  # noqa: F401

    operator = _operator(image_url)
    ti = StubTI()
    started = time.perf_counter()
    outputs = operator.execute_complete({"ti": ti}, event, **kwargs)
    seconds = time.perf_counter() - started
    timings = (ti.xcoms.get("prediction") or {}).get("task_timings", {})
    return {"seconds": seconds, "outputs": outputs, "operator_timings": timings}


def child_sdk(image_url: str, base_url: str) -> dict[str, Any]:
    """The PythonOperator alternative: the official SDK submits and polls in the worker."""
    from wavespeed import Client

    started = time.perf_counter()
    result = Client(api_key=BENCH_KEY, base_url=base_url).run(
        EDIT_MODEL, {"images": [image_url], "prompt": PROMPT}, poll_interval=POLL_INTERVAL
    )
    return {"seconds": time.perf_counter() - started, "outputs": result["outputs"]}


def child_ready() -> dict[str, Any]:
    """What a fresh worker process pays before task code runs (minus the interpreter itself)."""
    started = time.perf_counter()
    import airflow.sdk  # noqa: F401

    import airflow_wavespeed.operators.image_edit  # noqa: F401

    return {"seconds": time.perf_counter() - started}


# ------------------------------------------------------------------------------------------ parent


def upload_input(base_url: str) -> str:
    """One small PNG uploaded to the emulator (untimed); its URL is the edit's input."""
    import requests

    from airflow_wavespeed.emulator.images import render_sample_input

    response = requests.post(
        f"{base_url}/api/v3/media/upload/binary",
        headers={"Authorization": f"Bearer {BENCH_KEY}"},
        files={"file": ("input.png", render_sample_input(64, 64), "image/png")},
        timeout=30,
    )
    response.raise_for_status()
    url: str = response.json()["data"]["download_url"]
    return url


async def run_trigger(classpath: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Rebuild the trigger from its serialized form, as the triggerer does, and wait for its event."""
    module, name = classpath.rsplit(".", 1)
    trigger = getattr(importlib.import_module(module), name)(**kwargs)
    started = time.perf_counter()
    events = [event async for event in trigger.run()]
    payload: dict[str, Any] = events[0].payload
    return payload, time.perf_counter() - started


def ours_once(image_url: str, env: dict[str, str]) -> dict[str, float]:
    submitted = run_child_json(child_command(SCRIPT, "--child", "submit", "--image", image_url), env, 300)
    payload, trigger_seconds = asyncio.run(run_trigger(submitted["classpath"], submitted["trigger"]))
    if payload["status"] != "success":
        raise RuntimeError(f"the trigger ended with {payload}")
    completed = run_child_json(
        child_command(
            SCRIPT, "--child", "complete", "--image", image_url,
            "--event", json.dumps(payload), "--kwargs", json.dumps(submitted["kwargs"]),
        ),
        env, 300,
    )  # fmt: skip
    if not completed["outputs"]:
        raise RuntimeError("execute_complete returned no outputs")
    return {
        "submit": submitted["seconds"],
        "complete": completed["seconds"],
        "worker": submitted["seconds"] + completed["seconds"],
        "trigger": trigger_seconds,
        "operator_says": float(completed["operator_timings"].get("operator_seconds", float("nan"))),
    }


def sdk_once(image_url: str, base_url: str, env: dict[str, str]) -> float:
    result = run_child_json(
        child_command(SCRIPT, "--child", "sdk", "--image", image_url, "--base-url", base_url), env, 300
    )
    if not result["outputs"]:
        raise RuntimeError("the SDK returned no outputs")
    return float(result["seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2 s model latency, one repeat")
    parser.add_argument("--child", choices=("submit", "complete", "sdk", "ready"), help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--event", help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with Watchdog(300, f"worker_time child {args.child}"):
            if args.child == "submit":
                result = child_submit(args.image)
            elif args.child == "complete":
                result = child_complete(args.image, json.loads(args.event), json.loads(args.kwargs))
            elif args.child == "sdk":
                result = child_sdk(args.image, args.base_url)
            else:
                result = child_ready()
            print(json.dumps(result, default=str), flush=True)
        return 0

    latency, repeats = (2.0, 1) if args.quick else (20.0, 3)
    flags = ["--processing-seconds", str(latency), "--scale", "0.0625"]
    with (
        Watchdog(300 if args.quick else 900, "worker_time"),
        temp_airflow_home() as home,
        EmulatorProcess(flags=flags) as emu,
    ):
        env = airflow_env(home, emu.base_url, emu.port)
        os.environ.update(env)
        child_env = {**os.environ, **env}
        image_url = upload_input(emu.base_url)
        ours: list[dict[str, float]] = []
        sdk: list[float] = []
        for repeat in range(repeats):  # alternate which goes first
            for which in ("ours", "sdk") if repeat % 2 == 0 else ("sdk", "ours"):
                if which == "ours":
                    ours.append(ours_once(image_url, child_env))
                else:
                    sdk.append(sdk_once(image_url, emu.base_url, child_env))
            print(
                f"  repeat {repeat + 1}/{repeats}: ours {ours[-1]['worker']:.3f} s, sdk {sdk[-1]:.2f} s",
                flush=True,
            )
        ready = statistics.median(
            run_child_json(child_command(SCRIPT, "--child", "ready"), child_env, 120)["seconds"]
            for _ in range(3)
        )

    def median(key: str) -> float:
        return statistics.median(run[key] for run in ours)

    sdk_seconds = statistics.median(sdk)
    worker = median("worker")
    print(f"\nWorker time: one GPT Image 2 edit, model latency {latency:.0f} s, poll interval {POLL_INTERVAL} s; "
          f"median of {repeats}, each worker step in a fresh interpreter")  # fmt: skip
    rows = [
        ["ours (deferrable)", f"{worker:.3f}", f"{median('submit'):.3f} + {median('complete'):.3f}",
         f"{median('trigger'):.2f}", f"{worker + median('trigger'):.2f}", f"{worker / sdk_seconds:.4f}x"],
        ["SDK Client.run in the task", f"{sdk_seconds:.3f}", "whole run()", "-", f"{sdk_seconds:.2f}", "1x"],
    ]  # fmt: skip
    print(
        table(["task", "worker-slot s", "submit + complete s", "triggerer s", "end-to-end s", "vs SDK"], rows)
    )
    with_starts = (worker + 2 * ready) / (sdk_seconds + ready)
    print(
        f"\nNot in the figures above: a fresh worker process importing airflow.sdk and the operator module "
        f"takes {ready:.2f} s here (median of 3). Ours needs two worker processes (submit, then resume), the "
        f"SDK task one: with those counted, ours holds a slot {worker + 2 * ready:.2f} s vs "
        f"{sdk_seconds + ready:.2f} s ({with_starts:.3f}x). Airflow's own defer/resume bookkeeping "
        "(API calls, scheduling the resume) is not measured here."
    )
    print(f"The operator's own task_timings say operator_seconds = {median('operator_says'):.3f} (median).")
    print(f"\nMachine: {machine_note()}")
    print(f"\nworker_time: ours holds a worker slot {worker:.3f} s vs {sdk_seconds:.2f} s for the SDK task "
          f"({worker / sdk_seconds:.4f}x; {with_starts:.3f}x with process starts)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
