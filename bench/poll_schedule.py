"""Polls per prediction and added latency of the trigger's poll schedules, for 20 s, 2 min and 6 min jobs.

Two parts. **Computed**: the trigger's own :class:`PollSchedule` stepped through each job at full scale
(``poll_interval=2``), 1,000 jitter draws per case: polls per prediction and how late the completion is
seen (the time from the job's end to the poll that sees it). **Real**: the same jobs run 10 times faster
(``poll_interval=0.2``, ceilings / 10, durations / 10; the schedule is proportional, so polls are the same
and latencies scale by 10) through ``WaveSpeedPredictionTrigger.run()`` against the emulator in its own
process, completing by time (``processing_seconds``); polls counted by the emulator.

    .venv/bin/python bench/poll_schedule.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from typing import Any

from _common import (
    EmulatorProcess,
    Watchdog,
    airflow_env,
    create_predictions,
    machine_note,
    output_to_file,
    table,
    temp_airflow_home,
)

from airflow_wavespeed.triggers.schedule import PACES, PollSchedule

POLL_INTERVAL = 2.0
JOBS = ((20.0, "image"), (120.0, "video"), (360.0, "video"), (120.0, None), (360.0, None))
SPEEDUP = 10.0
PER_GROUP = 5


def step(duration: float, schedule: PollSchedule, rng: random.Random) -> tuple[int, float]:
    """(polls, seconds from the job's end to the poll that sees it)."""
    waited, polls = 0.0, 0
    while True:
        polls += 1
        if waited >= duration:
            return polls, waited - duration
        waited += schedule.delay(waited, rng.random)


def computed() -> list[list[Any]]:
    rows = []
    for duration, media in JOBS:
        for kind in ("fixed", "backoff"):
            rng = random.Random(11)
            schedule = PollSchedule(POLL_INTERVAL, kind, media)
            # Each job's length drawn within 10 % of the nominal: a job does not end on a poll.
            lengths = [duration * rng.uniform(0.9, 1.1) for _ in range(1000)]
            runs = [(*step(length, schedule, rng), length) for length in lengths]
            polls = [p for p, _, _ in runs]
            late = [lateness for _, lateness, _ in runs]
            share = max(lateness / length for _, lateness, length in runs)
            rows.append([
                f"{duration:.0f} s", media or "(unknown)", kind, f"{statistics.mean(polls):.1f}", max(polls),
                f"{statistics.mean(late):.1f}", f"{max(late):.1f}", f"{share:.1%}",
            ])  # fmt: skip
    return rows


async def real_group(emu: EmulatorProcess, duration: float, media: str | None, kind: str) -> list[Any]:
    from airflow_wavespeed.hooks.event_loop import LoopResources
    from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger

    scaled = duration / SPEEDUP
    emu.configure(processing_polls=0, processing_seconds=scaled)
    ids = await create_predictions(emu.base_url, PER_GROUP)
    created = time.monotonic()
    polls_before = emu.stats()["polls"]
    ceiling = PACES.get(media, PACES[None]).ceiling / SPEEDUP

    async def one(prediction_id: str) -> float:
        trigger = WaveSpeedPredictionTrigger(
            prediction_id, poll_interval=POLL_INTERVAL / SPEEDUP, end_time=time.time() + 120,
            poll_schedule=kind, media=media, max_poll_interval=ceiling,
        )  # fmt: skip
        events = [event async for event in trigger.run()]
        assert events[0].payload["status"] == "success", events[0].payload
        return time.monotonic() - created - scaled

    late = await asyncio.gather(*(one(i) for i in ids))
    polls = (emu.stats()["polls"] - polls_before) / PER_GROUP
    await LoopResources.current().close()
    return [
        f"{duration:.0f} s", media or "(unknown)", kind, f"{polls:.1f}",
        f"{statistics.mean(late) * SPEEDUP:.1f}", f"{max(late) * SPEEDUP:.1f}",
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="the computed part only")
    args = parser.parse_args()
    print(f"Computed, poll_interval={POLL_INTERVAL} s, 1,000 jitter draws per case:")
    print(table(["job", "media", "schedule", "polls mean", "polls max", "late mean s", "late max s",
                 "late max / job length"], computed()))  # fmt: skip
    if not args.quick:
        with Watchdog(600, "poll_schedule"), temp_airflow_home() as home, EmulatorProcess() as emu, output_to_file():
            os.environ.update(airflow_env(home, emu.base_url, emu.port))
            asyncio.run(real_group(emu, 20.0, "image", "fixed"))  # warm-up: imports and the first connection
            rows = [
                asyncio.run(real_group(emu, duration, media, kind))
                for duration, media in JOBS[:3]
                for kind in ("fixed", "backoff")
            ]
        print(f"\nReal, through the trigger and the emulator, {SPEEDUP:.0f}x faster ({PER_GROUP} predictions "
              "each; latency scaled back to full-size seconds, including the poll's own round trip):")  # fmt: skip
        print(table(["job", "media", "schedule", "polls/prediction", "late mean s", "late max s"], rows))
    print(f"Machine: {machine_note()}")
    print("\npoll_schedule: done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
