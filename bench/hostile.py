"""A hostile API, before and after the hardening of issue 10, side by side in one run.

1. **Starvation.** 300 healthy triggers polling every second beside 150 whose polls hang, all on one
   event loop (a triggerer), for 30 s. The server (its own process) records every healthy poll; the
   figures are the healthy triggers' gaps between polls. Target: the current code keeps every healthy
   trigger polling at no worse than twice its interval.
2. **Memory under an over-size answer.** A fresh process fetches a prediction whose answer is a 1.5 GiB
   body, or a gzip bomb that expands to 1.5 GiB, with the sync (worker) and the async (triggerer) hook.
   Figures: peak RSS growth over the call and how many requests the server got. Target: the current
   code stays within the answer cap (``max_response_bytes``, 8 MiB) plus 24 MiB, and asks once.

"Before" is the provider at commit ``dd74cad`` (main before this work), taken out of git with
``git archive`` into a temporary folder and put first on ``sys.path`` in its child processes; "after"
is the checkout. Both run against the same server in the same run.

    .venv/bin/python bench/hostile.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    BENCH_KEY,
    REPO,
    PeakRss,
    Watchdog,
    child_command,
    extract_provider,
    machine_note,
    register,
    run_child_json,
    stop_process,
    table,
    temp_airflow_home,
    verdict,
)

BEFORE_COMMIT = "dd74cad"
MiB = 1024 * 1024
CAP = 8 * MiB
MEMORY_SLACK = 24 * MiB
FULL = {"healthy": 300, "hung": 150, "interval": 1.0, "seconds": 30.0, "big": 1536 * MiB}
QUICK = {"healthy": 40, "hung": 110, "interval": 0.5, "seconds": 6.0, "big": 64 * MiB}


# ---------------------------------------------------------------- children (one per measurement)


def child_starvation(args: argparse.Namespace) -> dict[str, Any]:
    import airflow_wavespeed
    from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger

    end = time.time() + args.seconds
    began = time.monotonic()  # CLOCK_MONOTONIC: the server process reads the same clock

    async def drain(trigger: Any) -> str:
        async for event in trigger.run():
            return str(event.payload["status"])
        return "none"

    async def run() -> dict[str, Any]:
        hung = [WaveSpeedPredictionTrigger(f"hung-{n}", poll_interval=args.interval, end_time=end) for n in range(args.hung)]
        healthy = [WaveSpeedPredictionTrigger(f"ok-{n}", poll_interval=args.interval, end_time=end) for n in range(args.healthy)]
        tasks = {asyncio.ensure_future(drain(t)): name for t, name in [(t, "hung") for t in hung] + [(t, "ok") for t in healthy]}
        done, pending = await asyncio.wait(tasks, timeout=args.seconds + 10)
        statuses: dict[str, dict[str, int]] = {"hung": {}, "ok": {}}
        for task in done:
            kind = statuses[tasks[task]]
            status = task.result() if not task.exception() else f"crash:{type(task.exception()).__name__}"
            kind[status] = kind.get(status, 0) + 1
        for task in pending:
            statuses[tasks[task]]["still waiting 10 s after the deadline"] = statuses[tasks[task]].get("still waiting 10 s after the deadline", 0) + 1
            task.cancel()
        return statuses

    statuses = asyncio.run(run())
    return {"code": airflow_wavespeed.__file__, "statuses": statuses, "began": began}


def child_memory(args: argparse.Namespace) -> dict[str, Any]:
    import airflow_wavespeed
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook

    hook = WaveSpeedHook(retry_min_wait=0.05, retry_max_wait=0.1)
    warm = hook.get_prediction("warm-up")  # imports, the pool and the connection read, outside the measure
    assert warm.id == "warm-up"
    started = time.monotonic()
    with PeakRss(interval=0.005) as rss:
        try:
            if args.mode == "async":

                async def poll() -> Any:
                    await hook.aget_prediction("warm-up")  # aiohttp and the loop's session, outside the measure
                    rss.start_rss = rss.peak = rss.rss()
                    return await hook.aget_prediction(args.case)

                asyncio.run(poll())
            else:
                hook.get_prediction(args.case)
            outcome = "no error"
        except Exception as error:  # the figures are the point: note what it raised
            outcome = type(error).__name__
    return {
        "code": airflow_wavespeed.__file__,
        "growth_mib": rss.growth / MiB,
        "seconds": time.monotonic() - started,
        "outcome": outcome,
    }


# ---------------------------------------------------------------- the run


def server_stats(base_url: str) -> dict[str, Any]:
    import requests

    stats: dict[str, Any] = requests.get(f"{base_url}/_stats", timeout=30).json()
    return stats


def gaps_of(stats: dict[str, Any], healthy: int, seconds: float, interval: float, began: float) -> dict[str, Any]:
    """Per healthy trigger, the gaps between its polls over the window its wait could poll in: from the
    first healthy poll of all (start-up and the first connection read are not starvation) to one interval
    before the deadline. A trigger that stops polling, or never starts, counts the gap to the window's end."""
    gaps: list[float] = []
    counts: list[int] = []
    end = began + seconds - interval
    first = [t for times in stats["polls"].values() for t in times if t >= began]
    began = min(first, default=began)
    for n in range(healthy):
        polls = [t for t in sorted(stats["polls"].get(f"ok-{n}", [])) if began <= t <= end]
        times = [began, *polls, end]
        counts.append(len(polls))
        gaps += [b - a for a, b in zip(times, times[1:], strict=False)]
    return {
        "polls": statistics.median(counts),
        "median": statistics.median(gaps),
        "p95": statistics.quantiles(gaps, n=20)[-1],
        "max": max(gaps),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", choices=("starvation", "memory"))
    parser.add_argument("--code")
    parser.add_argument("--mode")
    parser.add_argument("--case")
    parser.add_argument("--healthy", type=int)
    parser.add_argument("--hung", type=int)
    parser.add_argument("--interval", type=float)
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, args.code)
        result = child_starvation(args) if args.child == "starvation" else child_memory(args)
        print(json.dumps(result), flush=True)
        return 0

    sizes = QUICK if args.quick else FULL
    with Watchdog(1500, "hostile"), tempfile.TemporaryDirectory(prefix="wavespeed-before-") as before_dir:
        extract_provider(BEFORE_COMMIT, Path(before_dir))
        codes = {"before": before_dir, "after": str(REPO)}
        port_file = Path(before_dir) / "port"
        server = register(
            subprocess.Popen(
                [sys.executable, str(BENCH_DIR / "_hostile_api.py"), str(port_file), "--big-bytes", str(sizes["big"])],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        try:
            deadline = time.monotonic() + 120
            while not port_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            base_url = f"http://127.0.0.1:{port_file.read_text()}"
            print(machine_note(), flush=True)
            with temp_airflow_home() as home:
                env = {
                    **_env(home),
                    "AIRFLOW_CONN_WAVESPEED_DEFAULT": json.dumps({"conn_type": "wavespeed", "password": BENCH_KEY, "host": base_url}),
                }
                starvation = run_starvation(codes, sizes, env, base_url)
                memory = run_memory(codes, env, base_url)
        finally:
            stop_process(server)
    return report(sizes, starvation, memory)


def _env(home: Path) -> dict[str, str]:
    import os

    return {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}


def run_starvation(codes: dict[str, str], sizes: dict[str, Any], env: dict[str, str], base_url: str) -> dict[str, Any]:
    import requests

    results = {}
    for name, code in codes.items():
        requests.post(f"{base_url}/_reset", timeout=30)
        command = child_command(
            Path(__file__), "--child", "starvation", "--code", code, "--healthy", str(sizes["healthy"]),
            "--hung", str(sizes["hung"]), "--interval", str(sizes["interval"]), "--seconds", str(sizes["seconds"]),
        )  # fmt: skip
        print(f"starvation: {name} ...", flush=True)
        child = run_child_json(command, env, timeout=sizes["seconds"] + 120)
        gaps = gaps_of(server_stats(base_url), sizes["healthy"], sizes["seconds"], sizes["interval"], child["began"])
        results[name] = {**gaps, **child}
    return results


def run_memory(codes: dict[str, str], env: dict[str, str], base_url: str) -> dict[str, Any]:
    import requests

    results = {}
    for case in ("huge", "bomb"):
        for mode in ("sync", "async"):
            for name, code in codes.items():
                requests.post(f"{base_url}/_reset", timeout=30)
                print(f"memory: {case} {mode} {name} ...", flush=True)
                command = child_command(Path(__file__), "--child", "memory", "--code", code, "--mode", mode, "--case", case)
                child = run_child_json(command, env, timeout=900)
                child["requests"] = server_stats(base_url)["hits"].get(case, 0)
                results[(case, mode, name)] = child
    return results


def report(sizes: dict[str, Any], starvation: dict[str, Any], memory: dict[str, Any]) -> int:
    interval = sizes["interval"]
    print(
        f"\nStarvation: {sizes['healthy']} healthy triggers polling every {interval:g} s beside {sizes['hung']} "
        f"hung ones, one event loop, {sizes['seconds']:g} s (gaps in seconds, from the server's log)"
    )
    rows = []
    for name, result in starvation.items():
        rows.append([
            name, result["polls"], f"{result['median']:.2f}", f"{result['p95']:.2f}", f"{result['max']:.2f}",
            json.dumps(result["statuses"]["ok"]), json.dumps(result["statuses"]["hung"]),
        ])  # fmt: skip
    print(table(["code", "polls/healthy (median)", "gap median", "gap p95", "gap max", "healthy events", "hung events"], rows))

    print(f"\nMemory under an over-size answer ({sizes['big'] // MiB} MiB body, or a gzip bomb expanding to it)")
    rows = []
    for (case, mode, name), result in memory.items():
        rows.append([case, mode, name, f"{result['growth_mib']:.1f}", result["requests"], f"{result['seconds']:.1f}", result["outcome"]])
    print(table(["answer", "client", "code", "peak RSS growth MiB", "requests", "seconds", "raised"], rows))

    after_gap = starvation["after"]["max"]
    after_memory = max(result["growth_mib"] for (_, _, name), result in memory.items() if name == "after")
    after_requests = max(result["requests"] for (_, _, name), result in memory.items() if name == "after")
    targets = [
        ["healthy poll gap, after (max)", f"{after_gap:.2f} s", f"<= {2 * interval:g} s", verdict(after_gap, 2 * interval)],
        ["peak RSS growth, after (max)", f"{after_memory:.1f} MiB", f"<= {(CAP + MEMORY_SLACK) // MiB} MiB", verdict(after_memory, (CAP + MEMORY_SLACK) / MiB)],
        ["requests per over-size answer, after", after_requests, "<= 1", verdict(after_requests, 1)],
    ]  # fmt: skip
    print()
    print(table(["target", "measured", "limit", "verdict"], targets))
    passed = all(row[-1] == "PASS" for row in targets)
    print(f"\nhostile: {'all targets PASS' if passed else 'a target was MISSED (see above)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
