"""Wait cost: CPU and memory per wait of WaveSpeedPredictionTrigger, side by side with a bare aiohttp
polling loop (the floor) and the HTTP provider's triggers, all waiting on the same emulator.

The emulator runs in its own process (its CPU is not counted). CPU per wait is measured for every
contender in ONE event loop of this process; memory per wait in a fresh child process per contender
(peak RSS growth, then tracemalloc peak), because RSS in a process that already ran another contender
depends on what the allocator kept from it. Then 10,000 of our triggers finish in one fresh process.

    .venv/bin/python bench/wait_cost.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import sys
import time
import tracemalloc
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from _common import (
    BENCH_KEY,
    HTTP_CONN_ID,
    EmulatorProcess,
    GcTimer,
    PeakRss,
    Watchdog,
    airflow_env,
    child_command,
    cpu_seconds,
    create_predictions,
    machine_note,
    output_to_file,
    run_child_json,
    table,
    temp_airflow_home,
    verdict,
)

SCRIPT = Path(__file__).resolve()
READY_ENDPOINT = "_bench/predictions/{id}/ready"
RESULT_ENDPOINT = "api/v3/predictions/{id}/result"
WARMUP_WAITS = 20
TARGET_CPU_VS_FLOOR = 1.3
TARGET_CPU_VS_HTTP = 0.2
TARGET_MEM_VS_FLOOR = 1.3


@dataclass(frozen=True)
class Sizes:
    """How big a run is: waits per contender, waits of the scale run, latency and poll interval."""

    waits: int
    scale_waits: int
    processing_polls: int
    interval: float
    budget: float


FULL = Sizes(waits=1000, scale_waits=10_000, processing_polls=5, interval=1.0, budget=1500.0)
QUICK = Sizes(waits=40, scale_waits=300, processing_polls=2, interval=0.25, budget=300.0)


# ------------------------------------------------------------------------------------------ contenders


class Contender(Protocol):
    """Something that waits for predictions: set up once, then ``wait_all`` returns the successes."""

    name: str

    async def __aenter__(self) -> Contender: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def wait_all(self, ids: list[str]) -> int: ...


class Floor:
    """A bare aiohttp loop: one shared session, GET + json parse every ``interval`` until completed."""

    name = "floor"

    def __init__(self, base_url: str, interval: float) -> None:
        self.base_url = base_url
        self.interval = interval
        self.headers = {"Authorization": f"Bearer {BENCH_KEY}"}

    async def __aenter__(self) -> Floor:
        import aiohttp

        from airflow_wavespeed.hooks.event_loop import POOL_LIMIT

        # The same pool settings as WaveSpeedHook's shared session (read from it, so they stay equal).
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_LIMIT, keepalive_timeout=30)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def _one(self, prediction_id: str) -> bool:
        return await poll_until_completed(
            self.session, self.base_url, self.headers, prediction_id, self.interval
        )

    async def wait_all(self, ids: list[str]) -> int:
        return sum(await asyncio.gather(*(self._one(prediction_id) for prediction_id in ids)))


async def poll_until_completed(
    session: Any, base_url: str, headers: dict[str, str], prediction_id: str, interval: float
) -> bool:
    """The floor's wait: GET + JSON parse every ``interval`` until completed. Only a bool outlives the
    response: an answer held across the sleep would outlive the young collections on every poll."""
    url = f"{base_url}/api/v3/predictions/{prediction_id}/result"
    while True:
        async with session.get(url, headers=headers) as response:
            data = json.loads(await response.read())["data"]
            finished = data["status"] == "completed"
            if finished:
                return bool(data["outputs"])
            del data
        await asyncio.sleep(interval)


class Ours:
    """N WaveSpeedPredictionTrigger instances, each ``run()`` driven to its single event.

    The contender holds a lease on the loop's session from enter to exit, as the floor holds its session:
    in a triggerer other triggers keep the pool open, and without the lease the last trigger of each timed
    batch closed the pool (a thousand connections) inside the timed window, which the floor's runs never pay.
    """

    name = "ours"

    def __init__(self, base_url: str, interval: float) -> None:
        self.interval = interval
        self.first_failure: Any = None

    async def __aenter__(self) -> Ours:
        from airflow_wavespeed.hooks.event_loop import LoopResources

        self._lease = LoopResources.current().lease()
        await self._lease.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._lease.__aexit__(None, None, None)  # the last lease out: closes the session

    async def _one(self, trigger: Any) -> bool:
        events = [event async for event in trigger.run()]
        payload = events[0].payload if len(events) == 1 else None
        ok = isinstance(payload, dict) and payload["status"] == "success" and bool(payload["outputs"])
        if not ok and self.first_failure is None:
            self.first_failure = payload if events else "no event"
        return ok

    async def wait_all(self, ids: list[str]) -> int:
        from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger

        end_time = time.time() + 600
        triggers = [
            # fixed: the same polls as the floor's loop (the emulator completes on a count of polls anyway)
            WaveSpeedPredictionTrigger(
                prediction_id, poll_interval=self.interval, end_time=end_time, poll_schedule="fixed"
            )
            for prediction_id in ids
        ]
        return sum(await asyncio.gather(*(self._one(trigger) for trigger in triggers)))


class HttpSensor:
    """HttpSensorTrigger: polls until the answer is not a 404, then yields ``TriggerEvent(True)``.

    It cannot look at the body, so by default it waits on the bench route that answers 404 until the
    prediction is terminal (same number of polls as the others); ``literal=True`` waits on the real
    result URL, where the first ``processing`` answer (HTTP 200) already ends the wait.
    """

    def __init__(self, base_url: str, interval: float, literal: bool = False) -> None:
        self.interval = interval
        self.endpoint = RESULT_ENDPOINT if literal else READY_ENDPOINT
        self.name = "http-sensor-literal" if literal else "http-sensor"

    async def __aenter__(self) -> HttpSensor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def _one(self, trigger: Any) -> bool:
        events = [event async for event in trigger.run()]
        return len(events) == 1 and events[0].payload is True

    async def wait_all(self, ids: list[str]) -> int:
        from airflow.providers.http.triggers.http import HttpSensorTrigger

        triggers = [
            HttpSensorTrigger(
                endpoint=self.endpoint.format(id=prediction_id),
                http_conn_id=HTTP_CONN_ID,
                method="GET",
                poke_interval=self.interval,
            )
            for prediction_id in ids
        ]
        return sum(await asyncio.gather(*(self._one(trigger) for trigger in triggers)))


class HttpEvent:
    """HttpEventTrigger with an async response check ``data.status == "completed"`` on the result URL."""

    name = "http-event"

    def __init__(self, base_url: str, interval: float) -> None:
        self.interval = interval

    async def __aenter__(self) -> HttpEvent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def _one(self, trigger: Any) -> bool:
        events = [event async for event in trigger.run()]
        return len(events) == 1 and events[0].payload.get("status") == "success"

    async def wait_all(self, ids: list[str]) -> int:
        from airflow.providers.http.triggers.http import HttpEventTrigger

        triggers = [
            HttpEventTrigger(
                response_check_path="_http_checks.prediction_completed",
                http_conn_id=HTTP_CONN_ID,
                method="GET",
                endpoint=RESULT_ENDPOINT.format(id=prediction_id),
                poll_interval=self.interval,
            )
            for prediction_id in ids
        ]
        return sum(await asyncio.gather(*(self._one(trigger) for trigger in triggers)))


CONTENDERS: dict[str, Callable[[str, float], Contender]] = {
    "floor": Floor,
    "ours": Ours,
    "http-sensor": HttpSensor,
    "http-event": HttpEvent,
    "http-sensor-literal": lambda base_url, interval: HttpSensor(base_url, interval, literal=True),
}
#: The order of the CPU runs in the shared loop: the three contenders the targets compare run twice, min kept.
CPU_ORDER = (
    "floor", "ours", "http-sensor", "http-event", "http-sensor-literal", "http-sensor", "ours", "floor"
)
MEMORY_CONTENDERS_FULL = ("floor", "ours", "http-sensor", "http-event")
MEMORY_CONTENDERS_QUICK = ("floor", "ours")
#: Fresh-process memory runs of the two contenders a memory target compares (median kept; RSS is noisy).
MEMORY_REPEATS = 3


def make(name: str, base_url: str, interval: float) -> Contender:
    contender: Contender = CONTENDERS[name](base_url, interval)
    return contender


# ------------------------------------------------------------------------------------------ CPU pass


@dataclass
class CpuRun:
    """One measured run of one contender in the shared loop."""

    name: str
    waits: int
    ok: int
    cpu: float
    wall: float
    polls: int
    log_lines: int
    emulator_busy: float
    gc_seconds: float
    full_gcs: int

    @property
    def cpu_ms_per_wait(self) -> float:
        return self.cpu / self.waits * 1000

    @property
    def polls_per_wait(self) -> float:
        return self.polls / self.waits

    @property
    def cpu_us_per_poll(self) -> float:
        return self.cpu / max(1, self.polls) * 1e6


async def fresh_predictions(emu: EmulatorProcess, count: int, warmup: int) -> tuple[list[str], list[str]]:
    """Reset the emulator; ``warmup`` one-poll predictions and ``count`` with the configured latency."""
    emu.reset()
    emu.configure(processing_polls=0)
    warm = await create_predictions(emu.base_url, warmup)
    emu.configure(processing_polls=emu.default_polls)
    ids = await create_predictions(emu.base_url, count)
    emu.wait_idle()
    return warm, ids


async def cpu_run(emu: EmulatorProcess, name: str, sizes: Sizes) -> CpuRun:
    """Warm the contender up, then measure it waiting on ``sizes.waits`` fresh predictions."""
    warm, ids = await fresh_predictions(emu, sizes.waits, WARMUP_WAITS)
    async with make(name, emu.base_url, sizes.interval) as contender:
        await contender.wait_all(warm)
        gc.collect()
        polls_before, emulator_before = emu.stats()["polls"], emu.cpu_seconds()
        with output_to_file() as log_lines, GcTimer() as gc_timer:
            cpu_before, wall_before = cpu_seconds(), time.perf_counter()
            ok = await asyncio.wait_for(contender.wait_all(ids), timeout=120 + 30 * sizes.processing_polls)
            cpu, wall = cpu_seconds() - cpu_before, time.perf_counter() - wall_before
            lines = log_lines()
        emulator_busy = (emu.cpu_seconds() - emulator_before) / wall
        polls = emu.stats()["polls"] - polls_before
    if ok != len(ids):
        detail = getattr(contender, "first_failure", None)
        raise RuntimeError(f"{name}: only {ok} of {len(ids)} waits succeeded (first failure: {detail})")
    return CpuRun(
        name,
        len(ids),
        ok,
        cpu,
        wall,
        polls,
        lines,
        emulator_busy,
        gc_timer.seconds,
        gc_timer.full_collections,
    )


async def cpu_pass(emu: EmulatorProcess, sizes: Sizes) -> list[CpuRun]:
    # Import every contender's machinery first, so no run pays for the imports.
    import aiohttp  # noqa: F401
    from airflow.providers.http.triggers.http import HttpEventTrigger, HttpSensorTrigger  # noqa: F401

    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook  # noqa: F401
    from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger  # noqa: F401

    runs = []
    for name in CPU_ORDER:
        run = await cpu_run(emu, name, sizes)
        print(
            f"  cpu run {name:<20} {run.cpu_ms_per_wait:7.3f} ms/wait  {run.polls_per_wait:4.1f} polls/wait  "
            f"wall {run.wall:5.1f} s  emulator busy {run.emulator_busy:4.0%}",
            flush=True,
        )
        runs.append(run)
    return runs


# ------------------------------------------------------------------------------------------ children


async def _memory_child(
    name: str, ids: dict[str, list[str]], base_url: str, interval: float
) -> dict[str, Any]:
    import aiohttp  # noqa: F401

    async with make(name, base_url, interval) as contender:
        await contender.wait_all(ids["warm"])
        gc.collect()
        with PeakRss() as rss:
            ok_rss = await contender.wait_all(ids["rss"])
        gc.collect()
        tracemalloc.start()
        traced_before = tracemalloc.get_traced_memory()[0]
        ok_trace = await contender.wait_all(ids["trace"])
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {
        "name": name,
        "waits": len(ids["rss"]),
        "ok": min(ok_rss, ok_trace) == len(ids["rss"]),
        "rss_growth": rss.growth,
        "rss_start": rss.start_rss,
        "traced_peak": traced_peak - traced_before,
    }


async def _scale_child(
    ids: dict[str, list[str]], base_url: str, interval: float, emulator_pid: int
) -> dict[str, Any]:
    import psutil

    emulator = psutil.Process(emulator_pid)

    def emulator_cpu() -> float:
        times = emulator.cpu_times()
        return float(times.user + times.system)

    def polls() -> int:
        with urllib.request.urlopen(f"{base_url}/_emulator/stats", timeout=30) as response:
            return int(json.loads(response.read())["polls"])

    async with Ours(base_url, interval) as ours:
        await ours.wait_all(ids["warm"])
        gc.collect()
        polls_before = polls()
        with PeakRss() as rss, GcTimer() as gc_timer:
            emulator_before = emulator_cpu()
            cpu_before, wall_before = cpu_seconds(), time.perf_counter()
            ok = await ours.wait_all(ids["scale"])
            cpu, wall = cpu_seconds() - cpu_before, time.perf_counter() - wall_before
            emulator_used = emulator_cpu() - emulator_before
    return {
        "waits": len(ids["scale"]),
        "ok": ok,
        "first_failure": str(ours.first_failure),
        "wall": wall,
        "cpu": cpu,
        "rss_start": rss.start_rss,
        "rss_peak": rss.peak,
        "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "emulator_cpu": emulator_used,
        "gc_seconds": gc_timer.seconds,
        "full_gcs": gc_timer.full_collections,
        "polls": polls() - polls_before,
    }


def child_main(args: argparse.Namespace) -> int:
    ids = json.loads(Path(args.ids).read_text())
    if args.child == "memory":
        result = asyncio.run(_memory_child(args.contender, ids, args.base_url, args.interval))
    else:
        result = asyncio.run(_scale_child(ids, args.base_url, args.interval, args.emulator_pid))
    print(json.dumps(result), flush=True)
    return 0


def memory_run(
    emu: EmulatorProcess, name: str, sizes: Sizes, workdir: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Fresh predictions, then a fresh child process measures one contender's memory per wait."""
    emu.reset()
    emu.configure(processing_polls=0)
    warm = asyncio.run(create_predictions(emu.base_url, WARMUP_WAITS))
    emu.configure(processing_polls=emu.default_polls)
    rss_ids = asyncio.run(create_predictions(emu.base_url, sizes.waits))
    trace_ids = asyncio.run(create_predictions(emu.base_url, sizes.waits))
    emu.wait_idle()
    ids_file = workdir / f"ids-{name}.json"
    ids_file.write_text(json.dumps({"warm": warm, "rss": rss_ids, "trace": trace_ids}))
    command = child_command(
        SCRIPT, "--child", "memory", "--contender", name, "--ids", str(ids_file),
        "--base-url", emu.base_url, "--interval", str(sizes.interval),
    )  # fmt: skip
    result = run_child_json(command, env, timeout=300 + 60 * sizes.processing_polls)
    if not result["ok"]:
        raise RuntimeError(f"memory child {name}: not every wait succeeded")
    print(
        f"  memory {name:<20} RSS {result['rss_growth'] / result['waits'] / 1024:7.2f} KiB/wait  "
        f"tracemalloc {result['traced_peak'] / result['waits'] / 1024:7.2f} KiB/wait",
        flush=True,
    )
    return result


def median_memory(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median RSS growth and the median tracemalloc peak of repeated fresh-process runs."""
    return {
        "waits": runs[0]["waits"],
        "rss_growth": statistics.median(run["rss_growth"] for run in runs),
        "traced_peak": statistics.median(run["traced_peak"] for run in runs),
        "rss_samples": [run["rss_growth"] / run["waits"] / 1024 for run in runs],
    }


def scale_run(emu: EmulatorProcess, sizes: Sizes, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """``sizes.scale_waits`` of our triggers in one fresh process."""
    emu.reset()
    emu.configure(processing_polls=0)
    warm = asyncio.run(create_predictions(emu.base_url, WARMUP_WAITS))
    emu.configure(processing_polls=emu.default_polls)
    started = time.perf_counter()
    scale_ids = asyncio.run(create_predictions(emu.base_url, sizes.scale_waits, concurrency=64))
    emu.wait_idle(limit=300)
    print(f"  created {len(scale_ids)} predictions in {time.perf_counter() - started:.1f} s", flush=True)
    ids_file = workdir / "ids-scale.json"
    ids_file.write_text(json.dumps({"warm": warm, "scale": scale_ids}))
    assert emu.process is not None
    command = child_command(
        SCRIPT, "--child", "scale", "--ids", str(ids_file), "--base-url", emu.base_url,
        "--interval", str(sizes.interval), "--emulator-pid", str(emu.process.pid),
    )  # fmt: skip
    return run_child_json(command, env, timeout=600)


# ------------------------------------------------------------------------------------------ report


def report(
    runs: list[CpuRun], memory: dict[str, dict[str, Any]], scale: dict[str, Any], sizes: Sizes
) -> tuple[bool, dict[str, Any]]:
    """Print the side-by-side tables and the target verdicts; True when every target passes, and the
    figures as JSON-ready data (``--record``)."""
    best: dict[str, CpuRun] = {}
    for run in runs:
        if run.name not in best or run.cpu < best[run.name].cpu:
            best[run.name] = run
    floor, ours, http = best["floor"], best["ours"], best["http-sensor"]

    def kib(name: str, key: str) -> float | None:
        if name not in memory:
            return None
        return float(memory[name][key]) / float(memory[name]["waits"]) / 1024

    def fmt(value: float | None, spec: str = ".2f") -> str:
        return "-" if value is None else format(value, spec)

    def ratio(value: float | None, base: float | None) -> str:
        return "-" if value is None or not base else f"{value / base:.2f}x"

    rows = []
    for name in CONTENDERS:
        run = best[name]
        rss, traced = kib(name, "rss_growth"), kib(name, "traced_peak")
        rows.append(
            [
                name,
                f"{run.cpu_ms_per_wait:.3f}",
                fmt(rss),
                fmt(traced),
                ratio(run.cpu, floor.cpu),
                ratio(run.cpu, http.cpu),
                ratio(rss, kib("floor", "rss_growth")),
                ratio(traced, kib("floor", "traced_peak")),
            ]
        )
    headers = [
        "contender", "CPU ms/wait", "KiB/wait (RSS)", "KiB/wait (tracemalloc)",
        "CPU vs floor", "CPU vs http-sensor", "RSS vs floor", "tracemalloc vs floor",
    ]  # fmt: skip
    print(
        f"\nWait cost: {sizes.waits} waits per contender, {sizes.processing_polls} processing polls, "
        f"poll interval {sizes.interval} s (CPU: min of the runs in one event loop; memory: fresh process)"
    )
    print(table(headers, rows))
    detail_rows = [
        [r.name, f"{r.polls_per_wait:.1f}", f"{r.cpu_us_per_poll:.0f}", f"{r.cpu_ms_per_wait:.3f}",
         f"{r.gc_seconds / r.waits * 1000:.3f}", r.full_gcs, f"{r.wall:.1f}", f"{r.log_lines / r.waits:.1f}",
         f"{r.emulator_busy:.0%}"]
        for r in runs
    ]  # fmt: skip
    print("\nEvery CPU run, in order (GC = time inside the cyclic garbage collector, part of the CPU):")
    print(table(["run", "polls/wait", "CPU µs/poll", "CPU ms/wait", "GC ms/wait", "full GCs", "wall s",
                 "log lines/wait", "emulator busy"], detail_rows))  # fmt: skip

    print("\nRSS KiB/wait of each fresh-process memory run (median used above):")
    for name, result in memory.items():
        print(f"  {name:<12} " + ", ".join(f"{value:.2f}" for value in result["rss_samples"]))

    cpu_vs_floor = ours.cpu / floor.cpu
    cpu_vs_http = ours.cpu / http.cpu
    rss_vs_floor = (kib("ours", "rss_growth") or 0) / (kib("floor", "rss_growth") or 1)
    traced_vs_floor = (kib("ours", "traced_peak") or 0) / (kib("floor", "traced_peak") or 1)
    targets = [
        ["ours CPU/wait vs floor", f"{cpu_vs_floor:.2f}x", f"<= {TARGET_CPU_VS_FLOOR}x",
         verdict(cpu_vs_floor, TARGET_CPU_VS_FLOOR)],
        ["ours CPU/wait vs http-sensor", f"{cpu_vs_http:.2f}x", f"<= {TARGET_CPU_VS_HTTP}x",
         verdict(cpu_vs_http, TARGET_CPU_VS_HTTP)],
        ["ours memory/wait vs floor (RSS)", f"{rss_vs_floor:.2f}x", f"<= {TARGET_MEM_VS_FLOOR}x",
         verdict(rss_vs_floor, TARGET_MEM_VS_FLOOR)],
        ["(info) ours memory/wait vs floor (tracemalloc)", f"{traced_vs_floor:.2f}x",
         f"<= {TARGET_MEM_VS_FLOOR}x", verdict(traced_vs_floor, TARGET_MEM_VS_FLOOR)],
    ]  # fmt: skip
    print()
    print(table(["target", "measured", "limit", "verdict"], targets))

    waits = scale["waits"]
    ideal = sizes.processing_polls * sizes.interval
    print(f"\nScale: {waits} of our triggers in one fresh process")
    print(table(
        ["waits", "successes", "wall s", "ideal wall s", "CPU s", "CPU ms/wait", "GC s", "full GCs",
         "polls/wait", "peak RSS MiB", "RSS growth KiB/wait", "emulator CPU busy"],
        [[waits, scale["ok"], f"{scale['wall']:.1f}", f"~{ideal:.1f}", f"{scale['cpu']:.1f}",
          f"{scale['cpu'] / waits * 1000:.3f}", f"{scale['gc_seconds']:.1f}", scale["full_gcs"],
          f"{scale['polls'] / waits:.1f}",
          f"{max(scale['rss_peak'], scale['ru_maxrss']) / 2**20:.0f}",
          f"{(scale['rss_peak'] - scale['rss_start']) / waits / 1024:.2f}",
          f"{scale['emulator_cpu'] / scale['wall']:.0%}"]],
    ))  # fmt: skip
    client_busy = scale["cpu"] / scale["wall"]
    emulator_busy = scale["emulator_cpu"] / scale["wall"]
    bottleneck = (
        "the emulator (one process, one core)" if emulator_busy > client_busy else "this client process"
    )
    print(f"  client CPU busy {client_busy:.0%}, emulator CPU busy {emulator_busy:.0%}: "
          f"the busier side, {bottleneck}, sets the wall time")  # fmt: skip
    if scale["ok"] != waits:
        print(f"  NOT every trigger succeeded; first failure: {scale['first_failure']}")
    print(f"\nMachine: {machine_note()}")
    figures = {
        "machine": machine_note(),
        "sizes": asdict(sizes),
        "cpu_ms_per_wait": {name: run.cpu_ms_per_wait for name, run in best.items()},
        "rss_kib_per_wait": {name: kib(name, "rss_growth") for name in memory},
        "targets": {row[0]: {"measured": row[1], "limit": row[2], "verdict": row[3]} for row in targets},
        "scale": scale,
    }
    return all(row[3] == "PASS" for row in targets[:3]) and scale["ok"] == waits, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small smoke-test sizes")
    parser.add_argument("--record", metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument("--child", choices=("memory", "scale"), help=argparse.SUPPRESS)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--emulator-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with Watchdog(900, f"wait_cost child {args.child}"):
            return child_main(args)

    sizes = QUICK if args.quick else FULL
    flags = ["--processing-polls", str(sizes.processing_polls), "--scale", "0.0625"]
    with (
        Watchdog(sizes.budget, "wait_cost"),
        temp_airflow_home() as home,
        EmulatorProcess(flags=flags, bench_routes=True) as emu,
    ):
        env = airflow_env(home, emu.base_url, emu.port)
        os.environ.update(env)
        child_env = {**os.environ, **env}
        print(f"wait_cost: emulator at {emu.base_url} (pid {emu.process.pid if emu.process else '?'}); "
              f"{'quick' if args.quick else 'full'} sizes {sizes}", flush=True)  # fmt: skip
        runs = asyncio.run(cpu_pass(emu, sizes))
        names = MEMORY_CONTENDERS_QUICK if args.quick else MEMORY_CONTENDERS_FULL
        repeats = {
            name: 1 if args.quick or name not in ("floor", "ours") else MEMORY_REPEATS for name in names
        }
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for round_number in range(max(repeats.values())):
            for name in names:
                if round_number < repeats[name]:
                    samples[name].append(memory_run(emu, name, sizes, home, child_env))
        memory = {name: median_memory(runs) for name, runs in samples.items()}
        scale = scale_run(emu, sizes, home, child_env)
        passed, figures = report(runs, memory, scale, sizes)
    if args.record:
        # What CI keeps of a --quick run: the figures, never a verdict that fails the build (noise).
        Path(args.record).parent.mkdir(parents=True, exist_ok=True)
        Path(args.record).write_text(json.dumps({**figures, "passed": passed}, indent=2, default=str))
        print(f"wait_cost: figures written to {args.record}")
    print("\nwait_cost:", "all targets PASS" if passed else "a target was MISSED (see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
