"""Where a task's time went, recorded in the ``prediction`` XCom as ``task_timings``.

- ``operator_seconds``: seconds the operator's own code ran on workers (submitting, then finishing:
  storing outputs, pushing XCom), added up over the runs of one try. It is **not** the time a worker
  slot was held: each task process also spends Airflow's start-up (seconds, more than our code), which
  Airflow's own task duration shows.
- ``triggerer_seconds``: seconds the trigger waited in the triggerer, holding no worker slot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TaskTimings:
    """Seconds this task spent, added up across the worker runs of one try."""

    operator_seconds: float = 0.0
    triggerer_seconds: float | None = None
    _since: float = field(default_factory=time.monotonic, repr=False)

    @classmethod
    def resumed(cls, operator_seconds: float | None, triggerer_seconds: float | None) -> TaskTimings:
        """Carry on after the triggerer: the deferring run's seconds plus the trigger's wait."""
        return cls(operator_seconds=float(operator_seconds or 0.0), triggerer_seconds=triggerer_seconds)

    def stop(self) -> TaskTimings:
        """Count the operator's time since the last start (or stop); safe to call more than once."""
        now = time.monotonic()
        self.operator_seconds += now - self._since
        self._since = now
        return self

    def to_xcom(self) -> dict[str, float]:
        recorded = {"operator_seconds": round(self.operator_seconds, 3)}
        if self.triggerer_seconds is not None:
            recorded["triggerer_seconds"] = round(self.triggerer_seconds, 3)
        return recorded
