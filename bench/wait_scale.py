"""Waiting at scale: 100, 1,000 and 10,000 concurrent waits in one process at a 5 s poll interval, our
trigger side by side with the bare aiohttp loop (the floor), each size run for both, interleaved.

The emulator runs in its own process (its CPU is not counted). Each run is a fresh child process: it
creates nothing, it only waits, and it reports its CPU (``time.process_time``), the time inside the
cyclic garbage collector, its peak RSS growth and how late every poll was. A poll's lateness is how
much longer its ``asyncio.sleep`` took than asked (the child wraps ``asyncio.sleep`` for both contenders
alike): the time the event loop was too busy to wake it. The waits start spread over one poll interval,
as waits arriving at a triggerer over time do (all starting in one instant would measure a burst, not a
triggerer's steady state).

Then the largest size again inside Airflow's own ``TriggerRunner`` (the triggerer's subprocess, which
creates each trigger from its encrypted kwargs and a task instance, runs it in its own task with the log
context bound, and syncs its events every second), the floor as a trigger beside ours; its supervisor
process is replaced by an object that takes the events. ``ours, TriggerRunner, gc.freeze()`` is
information only: what freezing the runner's start-up heap, which Airflow's triggerer does not do, would
change.

    .venv/bin/python bench/wait_scale.py [--quick] [--record PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import (
    EmulatorProcess,
    GcTimer,
    PeakRss,
    Watchdog,
    airflow_env,
    child_command,
    cpu_seconds,
    create_predictions,
    machine_note,
    run_child_json,
    table,
    temp_airflow_home,
    verdict,
)

SCRIPT = Path(__file__).resolve()
_REAL_SLEEP = asyncio.sleep
WARM_WAITS = 20  # run before the timed waits: imports, the session, the connection read
INTERVAL = 5.0
PROCESSING_POLLS = 3  # 4 polls per wait: 15 s of waiting at 5 s
FULL_SIZES = (100, 1_000, 10_000)
QUICK_SIZES = (100, 1_000)
TARGET_CPU_VS_FLOOR = 1.3
TARGET_CORE_SHARE = 0.40
TARGET_LATE_SECONDS = 1.0
TARGET_GC_SHARE = 0.10
TARGET_MEM_VS_FLOOR = 1.3
#: Runs of each contender at the largest size, interleaved; the median of each figure is reported. Near
#: saturation (10,000 waits on 2 cores) one run's CPU ratio swung from 1.05x to 1.36x between two runs.
TOP_REPEATS = 3
BARE = ("floor", "ours")
#: The same waits inside Airflow's TriggerRunner, at the largest size; the last is information only.
RUNNER = ("floor, TriggerRunner", "ours, TriggerRunner", "ours, TriggerRunner, gc.freeze()")


# ------------------------------------------------------------------------------------------ the child


async def _measured(name: str, waits: int, interval: float, run: Callable[[], Awaitable[int]]) -> dict[str, Any]:
    """The figures of ``run()`` (the timed waits; it returns their successes): CPU, wall, GC, peak RSS, and
    how late every poll's sleep woke, for the bare loop and the TriggerRunner alike."""
    lateness: list[float] = []

    async def timed_sleep(delay: float, result: Any = None) -> Any:
        if delay < interval / 2:  # not a poll's wait (aiohttp's and the runner's own short sleeps)
            return await _REAL_SLEEP(delay, result)
        asked = time.monotonic()
        value = await _REAL_SLEEP(delay, result)
        lateness.append(time.monotonic() - asked - delay)
        return value

    asyncio.sleep = timed_sleep  # type: ignore[assignment]
    try:
        # RSS sampled every 0.25 s: the sampler's own CPU stays out of the small runs' figures.
        with PeakRss(interval=0.25) as rss, GcTimer() as gc_timer:
            cpu_before, wall_before = cpu_seconds(), time.perf_counter()
            ok = await run()
            cpu, wall = cpu_seconds() - cpu_before, time.perf_counter() - wall_before
    finally:
        asyncio.sleep = _REAL_SLEEP  # type: ignore[assignment]
    return _figures(name, waits, ok, cpu, wall, gc_timer, rss, lateness)


async def _child(name: str, ids: list[str], base_url: str, interval: float) -> dict[str, Any]:
    import aiohttp  # noqa: F401
    import wait_cost

    from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger  # noqa: F401

    async def spread(contender: Any, prediction_id: str, offset: float) -> int:
        await _REAL_SLEEP(offset)
        return int(await contender.wait_all([prediction_id]))

    rng = random.Random(7)
    warm, rest = ids[:WARM_WAITS], ids[WARM_WAITS:]
    offsets = [rng.uniform(0, interval) for _ in rest]
    async with wait_cost.make(name, base_url, interval) as contender:
        await contender.wait_all(warm)
        gc.collect()

        async def run() -> int:
            return sum(await asyncio.gather(*(spread(contender, i, o) for i, o in zip(rest, offsets, strict=True))))

        return await _measured(name, len(rest), interval, run)


class _Supervisor:
    """Stands in for the triggerer's supervisor process on the other end of the runner's socket: it takes
    the runner's state changes (events, failures) and sends no new triggers back."""

    def __init__(self, runner: Any, expected: int) -> None:
        self.runner, self.expected = runner, expected
        self.events = self.failures = 0
        self._reader_task = asyncio.get_running_loop().create_future()  # the runner checks it is alive

    async def asend(self, message: Any) -> None:
        self.events += len(message.events or ())
        self.failures += len(message.failures or ())
        if self.events + self.failures >= self.expected:
            self.runner.stop = True
            if self.runner._stop_event is not None:
                self.runner._stop_event.set()


def _workloads(name: str, ids: list[str], base_url: str, interval: float, first: int) -> list[Any]:
    """One ``RunTrigger`` per prediction, with its kwargs encrypted and a task instance, as the triggerer's
    supervisor builds them from the trigger table."""
    import uuid

    from airflow.executors.workloads.task import TaskInstanceDTO
    from airflow.executors.workloads.trigger import RunTrigger
    from airflow.models.trigger import Trigger

    from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger

    end_time = time.time() + 600
    version = uuid.uuid4()
    built = []
    for number, prediction_id in enumerate(ids, start=first):
        if name.startswith("floor"):
            classpath = "_floor_trigger.FloorTrigger"
            kwargs: dict[str, Any] = {
                "prediction_id": prediction_id,
                "base_url": base_url,
                "interval": interval,
            }
        else:
            classpath, kwargs = WaveSpeedPredictionTrigger(
                prediction_id, poll_interval=interval, end_time=end_time, poll_schedule="fixed"
            ).serialize()
        ti = TaskInstanceDTO(
            id=uuid.uuid4(), task_id="wait", dag_id="bench_wait_scale", run_id="bench", try_number=1,
            dag_version_id=version, map_index=number, pool_slots=1, priority_weight=1,
        )  # fmt: skip
        built.append(
            RunTrigger(id=number, classpath=classpath, encrypted_kwargs=Trigger.encrypt_kwargs(kwargs), ti=ti)
        )
    return built


async def _run_in_runner(runner: Any, workloads: list[Any], offsets: list[float] | None = None) -> int:
    """Hand ``workloads`` to a real ``TriggerRunner`` (each at its offset from now) and run its loop until every
    trigger has sent its event; the successes."""
    supervisor = _Supervisor(runner, len(workloads))

    async def init_comms() -> None:
        runner.comms_decoder = supervisor

    runner.init_comms, runner.asend = init_comms, supervisor.asend
    runner.stop = False

    async def feed() -> None:
        started = time.monotonic()
        for workload, offset in sorted(
            zip(workloads, offsets or [0.0] * len(workloads), strict=True), key=lambda pair: pair[1]
        ):
            if (late := offset - (time.monotonic() - started)) > 0:
                await _REAL_SLEEP(late)  # not a poll: never counted as one
            runner.to_create.append(workload)

    feeder = asyncio.ensure_future(feed())
    await runner.arun()
    await feeder
    return supervisor.events - supervisor.failures


async def _runner_child(name: str, ids: list[str], base_url: str, interval: float) -> dict[str, Any]:
    """The same waits inside Airflow's own ``TriggerRunner`` (the triggerer's subprocess): its trigger
    creation, per-trigger task, log binding and greenback portal, its 1 s loop. ``ours, gc.freeze()`` (info)
    freezes what the runner holds at start, which Airflow's triggerer does not do."""
    import _floor_trigger  # noqa: F401
    import aiohttp  # noqa: F401
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger  # noqa: F401

    runner = TriggerRunner()
    warm, rest = ids[:WARM_WAITS], ids[WARM_WAITS:]
    await _run_in_runner(runner, _workloads(name, warm, base_url, interval, first=1))
    workloads = _workloads(name, rest, base_url, interval, first=1 + len(warm))
    rng = random.Random(7)
    offsets = [rng.uniform(0, interval) for _ in rest]
    gc.collect()
    if name.endswith("gc.freeze()"):
        gc.freeze()
    return await _measured(name, len(rest), interval, lambda: _run_in_runner(runner, workloads, offsets))


def _figures(
    name: str,
    waits: int,
    ok: int,
    cpu: float,
    wall: float,
    gc_timer: GcTimer,
    rss: PeakRss,
    lateness: list[float],
) -> dict[str, Any]:
    lateness.sort()
    return {
        "name": name,
        "waits": waits,
        "ok": ok,
        "cpu": cpu,
        "wall": wall,
        "gc_seconds": gc_timer.seconds,
        "full_gcs": gc_timer.full_collections,
        "rss_growth": rss.growth,
        "polls_timed": len(lateness),
        "late_p50": statistics.median(lateness) if lateness else 0.0,
        "late_p99": lateness[int(len(lateness) * 0.99)] if lateness else 0.0,
        "late_max": lateness[-1] if lateness else 0.0,
    }


# ------------------------------------------------------------------------------------------ the parent


def one_run(
    emu: EmulatorProcess, name: str, waits: int, workdir: Path, env: dict[str, str]
) -> dict[str, Any]:
    emu.reset()
    emu.configure(processing_polls=0)
    warm = asyncio.run(create_predictions(emu.base_url, WARM_WAITS))
    emu.configure(processing_polls=PROCESSING_POLLS)
    ids = asyncio.run(create_predictions(emu.base_url, waits, concurrency=64))
    emu.wait_idle(limit=300)
    ids_file = workdir / f"scale-{name.replace(' ', '_')}-{waits}.json"
    ids_file.write_text(json.dumps(warm + ids))
    command = child_command(
        SCRIPT,
        "--child",
        name,
        "--ids",
        str(ids_file),
        "--base-url",
        emu.base_url,
        "--interval",
        str(INTERVAL),
    )
    result = run_child_json(command, env, timeout=600)
    result["busy"] = result["cpu"] / result["wall"]
    print(
        f"  {name:<33} {waits:>6} waits: {result['ok']} ok, CPU {result['cpu']:.2f} s "
        f"({result['cpu'] / waits * 1000:.3f} ms/wait, {result['busy']:.0%} of a core), GC "
        f"{result['gc_seconds'] / max(result['cpu'], 1e-9):.0%}, late p50 {result['late_p50'] * 1000:.0f} ms "
        f"p99 {result['late_p99'] * 1000:.0f} ms, RSS {result['rss_growth'] / waits / 1024:.2f} KiB/wait",
        flush=True,
    )
    return result


def median_run(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One contender's repeated runs as one: the median of each figure, the fewest successes, and the CPU
    seconds of every run (``cpu_samples``) to show the spread."""
    numbers = [key for key, value in samples[0].items() if isinstance(value, (int, float)) and key != "ok"]
    merged = {**samples[0], **{key: statistics.median(run[key] for run in samples) for key in numbers}}
    return {**merged, "ok": min(run["ok"] for run in samples), "cpu_samples": [run["cpu"] for run in samples]}


def _targets(
    results: dict[tuple[str, int], dict[str, Any]], floor_name: str, ours_name: str, top: int
) -> list[list[Any]]:
    floor, ours = results[(floor_name, top)], results[(ours_name, top)]
    where = "in a TriggerRunner" if "TriggerRunner" in ours_name else "in a bare loop"
    targets = [
        [f"ours CPU vs floor at {top}, {where}", ours["cpu"] / floor["cpu"], TARGET_CPU_VS_FLOOR],
        [f"ours share of one core at {top}, {where}", ours["busy"], TARGET_CORE_SHARE],
        [f"ours latest poll (p99, s) at {top}, {where}", ours["late_p99"], TARGET_LATE_SECONDS],
        [f"ours time in GC / CPU at {top}, {where}", ours["gc_seconds"] / ours["cpu"], TARGET_GC_SHARE],
        [
            f"ours RSS/wait vs floor at {top}, {where}",
            ours["rss_growth"] / max(floor["rss_growth"], 1),
            TARGET_MEM_VS_FLOOR,
        ],
    ]
    return [[name, f"{value:.2f}", f"<= {limit}", verdict(value, limit)] for name, value, limit in targets]


def report(
    results: dict[tuple[str, int], dict[str, Any]], sizes: tuple[int, ...]
) -> tuple[bool, list[list[Any]]]:
    rows = []
    for (name, waits), r in results.items():
        rows.append([
            name, waits, r["ok"], f"{r['wall']:.1f}", f"{r['cpu']:.2f}", f"{r['cpu'] / waits * 1000:.3f}",
            f"{r['busy']:.1%}", f"{r['gc_seconds'] / max(r['cpu'], 1e-9):.1%}", r["full_gcs"],
            f"{r['late_p50'] * 1000:.0f}", f"{r['late_p99'] * 1000:.0f}", f"{r['late_max'] * 1000:.0f}",
            f"{r['rss_growth'] / waits / 1024:.2f}",
        ])  # fmt: skip
    print(f"\nWaiting at scale: poll interval {INTERVAL} s, {PROCESSING_POLLS + 1} polls per wait")
    print(table(["contender", "waits", "ok", "wall s", "CPU s", "CPU ms/wait", "of one core", "GC share",
                 "full GCs", "late p50 ms", "late p99 ms", "late max ms", "RSS KiB/wait"], rows))  # fmt: skip
    top = max(sizes)
    verdicts = _targets(results, *BARE, top) + _targets(results, *RUNNER[:2], top)
    print()
    print(table(["target", "measured", "limit", "verdict"], verdicts))
    per_wait = {name: [results[(name, w)]["cpu"] / w * 1000 for w in sizes] for name in BARE}
    print("\nCPU ms per wait by size (flat = linear growth): " + "; ".join(
        f"{name} " + " / ".join(f"{v:.3f}" for v in values) for name, values in per_wait.items()))  # fmt: skip
    print(f"CPU s of each run at {top} (median used above): " + "; ".join(
        f"{name} " + ", ".join(f"{cpu:.2f}" for cpu in results[(name, top)]["cpu_samples"])
        for name in BARE + RUNNER if (name, top) in results))  # fmt: skip
    print(f"Machine: {machine_note()}")
    ok = all(results[key]["ok"] == key[1] for key in results)
    return ok and all(row[3] == "PASS" for row in verdicts), verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 waits only")
    parser.add_argument("--record", metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument("--child", choices=BARE + RUNNER, help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with Watchdog(600, f"wait_scale child {args.child}"):
            ids = json.loads(Path(args.ids).read_text())
            child = _runner_child if "TriggerRunner" in args.child else _child
            print(json.dumps(asyncio.run(child(args.child, ids, args.base_url, args.interval))), flush=True)
        return 0

    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    with (
        Watchdog(3000, "wait_scale"),
        temp_airflow_home() as home,
        EmulatorProcess(flags=["--processing-polls", str(PROCESSING_POLLS), "--scale", "0.0625"]) as emu,
    ):
        env = airflow_env(home, emu.base_url, emu.port)
        os.environ.update(env)
        child_env = {**os.environ, **env}
        print(f"wait_scale: emulator at {emu.base_url}; sizes {sizes}", flush=True)
        top = max(sizes)
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        plan = [(name, waits) for waits in sizes for _ in range(TOP_REPEATS if waits == top else 1) for name in BARE]
        plan += [(name, top) for _ in range(TOP_REPEATS) for name in RUNNER[:2]] + [(RUNNER[2], top)]
        for name, waits in plan:  # interleaved: both contenders see the same machine
            runs.setdefault((name, waits), []).append(one_run(emu, name, waits, home, child_env))
        results = {key: median_run(samples) for key, samples in runs.items()}
        passed, verdicts = report(results, sizes)
    if args.record:
        Path(args.record).parent.mkdir(parents=True, exist_ok=True)
        data = {
            "machine": machine_note(),
            "runs": [{**r, "size": k[1]} for k, samples in runs.items() for r in samples],
            "targets": verdicts,
        }
        Path(args.record).write_text(json.dumps(data, indent=2))
    print("\nwait_scale:", "all targets PASS" if passed else "a target was MISSED (see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
