"""When a trigger polls next: the interval grows while a prediction keeps processing.

A fixed interval is right for a 20 s image and wasteful for a 6-minute video (180 polls at 2 s). With
``poll_schedule="backoff"`` (the default) the trigger polls every ``poll_interval`` at first; once the
wait has lasted long enough, the interval is a fraction of the time waited so far, up to a ceiling. So a
poll is never later than that fraction of the job's duration, and the number of polls grows with the
logarithm of the duration instead of the duration. How fast the interval grows follows the kind of
output the model makes (:data:`PACES`): an image is seen within 10 % of its duration, a video polls
at most every minute.

Jitter only ever shortens a grown interval (by up to :data:`JITTER`), never below ``poll_interval``:
thousands of waits that started together (a triggerer restart) spread their polls, and no poll comes
later than the schedule says. The time waited is counted from ``started_at``, a wall-clock time kept in
the trigger's kwargs, so a trigger rebuilt by another triggerer goes on where the schedule was.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from airflow_wavespeed.utils.validation import check_choice, check_positive

#: ``backoff`` grows the interval while the prediction keeps processing; ``fixed`` polls every ``poll_interval``.
POLL_SCHEDULES = ("backoff", "fixed")
#: The kinds of output a model makes, as the model catalog names them.
MEDIA = ("image", "video", "audio", "3d", "text")
#: A grown interval is shortened by a random fraction of up to this much.
JITTER = 0.2


@dataclass(frozen=True)
class Pace:
    """How the interval grows for one kind of model.

    :param growth: the interval as a fraction of the time waited so far: the most a completion is seen late,
        relative to how long the job ran.
    :param ceiling: the longest interval in seconds (``max_poll_interval`` overrides it).
    """

    growth: float
    ceiling: float


#: Images and text finish in seconds: seen within 10 % of their duration. Video and 3D run for minutes:
#: a 6-minute video costs about 20 polls at ``poll_interval=2`` instead of 180 (bench/RESULTS.md).
PACES: dict[str | None, Pace] = {
    "image": Pace(growth=0.1, ceiling=10.0),
    "text": Pace(growth=0.1, ceiling=10.0),
    "audio": Pace(growth=0.15, ceiling=30.0),
    "video": Pace(growth=0.3, ceiling=60.0),
    "3d": Pace(growth=0.3, ceiling=60.0),
    None: Pace(growth=0.2, ceiling=30.0),
}


@dataclass(frozen=True)
class PollSchedule:
    """The delay before each next poll of one wait.

    :param start: ``poll_interval``, the first interval and the shortest.
    :param kind: one of :data:`POLL_SCHEDULES`.
    :param media: the model's kind of output (:data:`MEDIA`), or None when unknown (a middle pace).
        A kind this version does not know paces like None: a restored trigger never fails on it.
    :param max_poll_interval: the longest interval; None keeps the media's ceiling. Never below ``start``.
    """

    start: float
    kind: str = "backoff"
    media: str | None = None
    max_poll_interval: float | None = None

    @property
    def pace(self) -> Pace:
        return PACES.get(self.media, PACES[None])

    @property
    def ceiling(self) -> float:
        ceiling = self.pace.ceiling if self.max_poll_interval is None else self.max_poll_interval
        return max(self.start, ceiling)

    def delay(self, waited: float, draw: Callable[[], float] = random.random) -> float:
        """Seconds until the next poll, ``waited`` seconds into the wait (``draw``: the jitter's random source)."""
        if self.kind == "fixed":
            return self.start
        grown = min(self.ceiling, self.pace.growth * max(0.0, waited))
        if grown <= self.start:
            return self.start
        return max(self.start, grown * (1.0 - JITTER * draw()))


def check_poll_schedule(poll_schedule: str, max_poll_interval: float | None, *, poll_interval: float) -> None:
    """Bad schedule arguments fail naming the argument, before anything is submitted."""
    check_choice(poll_schedule, POLL_SCHEDULES, argument="poll_schedule")
    if max_poll_interval is None:
        return
    ceiling = check_positive(max_poll_interval, argument="max_poll_interval")
    if ceiling < poll_interval:
        from airflow_wavespeed.exceptions import WaveSpeedInputError

        raise WaveSpeedInputError(
            f"max_poll_interval must be at least poll_interval ({poll_interval} s), got {max_poll_interval!r}"
        )
