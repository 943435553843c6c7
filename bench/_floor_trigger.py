"""The floor of ``bench/wait_cost.py`` as an Airflow trigger, so ``bench/wait_scale.py`` can run it
inside a real ``TriggerRunner`` beside ours. Imported only by the child processes that do (it imports Airflow)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from _common import BENCH_KEY
from airflow.triggers.base import BaseTrigger, TriggerEvent
from wait_cost import poll_until_completed


class FloorTrigger(BaseTrigger):
    """The floor as an Airflow trigger, for runs inside a real ``TriggerRunner`` (``bench/wait_scale.py``):
    the same loop on one aiohttp session per event loop with the hook's pool settings."""

    _sessions: dict[int, Any] = {}

    def __init__(self, prediction_id: str, base_url: str, interval: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.prediction_id, self.base_url, self.interval = prediction_id, base_url, interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return "_floor_trigger.FloorTrigger", {
            "prediction_id": self.prediction_id,
            "base_url": self.base_url,
            "interval": self.interval,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import aiohttp

        from airflow_wavespeed.hooks.event_loop import POOL_LIMIT

        loop = id(asyncio.get_running_loop())
        if loop not in self._sessions:
            self._sessions[loop] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_LIMIT, keepalive_timeout=30)
            )
        headers = {"Authorization": f"Bearer {BENCH_KEY}"}
        ok = await poll_until_completed(
            self._sessions[loop], self.base_url, headers, self.prediction_id, self.interval
        )
        yield TriggerEvent({"status": "success" if ok else "error"})
