"""Evaluation on a fixed grid, as the daemon polls: shared by ``watcher test`` and ``replay``.

A timeline is a list of points in time, each holding until the next one. The
fake clock steps by the interval from a start to an end, and every step sees
the point in force then, as a poll at that moment would.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Generic, TypeVar

T = TypeVar("T")


def steps(start: datetime, end: datetime, interval: timedelta) -> Iterator[datetime]:
    """``start``, ``start + interval``, ... up to and including ``end``."""
    now = start
    while now <= end:
        yield now
        now += interval


def on_grid(start: datetime, when: datetime, interval: timedelta) -> bool:
    return when >= start and (when - start) % interval == timedelta(0)


class Held(Generic[T]):
    """Time-ordered points; ``at(now)`` is the one in force (the last at or before ``now``)."""

    def __init__(self, points: Sequence[tuple[datetime, T]]) -> None:
        ordered = sorted(points, key=lambda p: p[0])
        self.times = [t for t, _ in ordered]
        self.values = [v for _, v in ordered]

    def at(self, now: datetime) -> T | None:
        index = bisect.bisect_right(self.times, now) - 1
        return self.values[index] if index >= 0 else None

    @property
    def first(self) -> datetime:
        return self.times[0]

    @property
    def last(self) -> datetime:
        return self.times[-1]
