"""Where a task's time went: seconds on a worker and seconds waited in the triggerer.

Recorded in the ``prediction`` XCom as ``task_timings`` so users can see what deferring saved them.
``worker_seconds`` counts the operator's own code on a worker (submit, then finishing), not the
worker's start-up: it is not the slot cost, which Airflow's own task duration shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TaskTimings:
    """Seconds this task spent, added up across the worker runs of one try."""

    worker_seconds: float = 0.0
    trigger_seconds: float | None = None
    _since: float = field(default_factory=time.monotonic, repr=False)

    @classmethod
    def resumed(cls, worker_seconds: float | None, trigger_seconds: float | None) -> TaskTimings:
        """Carry on after the triggerer: the deferring run's worker seconds plus the trigger's wait."""
        return cls(worker_seconds=float(worker_seconds or 0.0), trigger_seconds=trigger_seconds)

    def stop(self) -> TaskTimings:
        """Count the worker time since the last start (or stop); safe to call more than once."""
        now = time.monotonic()
        self.worker_seconds += now - self._since
        self._since = now
        return self

    def to_xcom(self) -> dict[str, float]:
        recorded = {"worker_seconds": round(self.worker_seconds, 3)}
        if self.trigger_seconds is not None:
            recorded["trigger_seconds"] = round(self.trigger_seconds, 3)
        return recorded
