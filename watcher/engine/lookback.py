"""Balance history: what ``change``/``delta`` look back on, and what a poll records.

Pure: samples in, samples out. The store's change-only encoding of the same
samples lives in ``watcher.store.history_table``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal

from watcher.config.model import RuleSet
from watcher.core.models import NoData, Overview
from watcher.core.positions import MARK, position_samples

Sample = tuple[str, datetime, Decimal]


class History:
    """Balance samples per series key (``BTC.total``, ``ACCOUNT.spot``), time-ordered."""

    def __init__(self) -> None:
        self._times: dict[str, list[float]] = {}
        self._values: dict[str, list[Decimal]] = {}
        self.now = 0.0

    def record(self, key: str, at: datetime, value: Decimal) -> None:
        stamp = at.timestamp()
        times = self._times.setdefault(key, [])
        values = self._values.setdefault(key, [])
        if times and stamp <= times[-1]:
            if stamp == times[-1]:
                values[-1] = value
            return
        times.append(stamp)
        values.append(value)

    def prune(self, before: datetime) -> None:
        cut = before.timestamp()
        for key, times in self._times.items():
            index = bisect.bisect_left(times, cut)
            if index:
                del times[:index]
                del self._values[key][:index]

    def keys(self) -> Iterable[str]:
        return self._times.keys()

    def value_ago(self, key: str, seconds: float) -> Decimal:
        """The value ``seconds`` before ``now``: the last sample at or before then.

        A sample older than twice the window does not stand for "then" (the
        daemon was down): that is no data.
        """
        times = self._times.get(key)
        target = self.now - seconds
        if not times:
            raise NoData(key)
        index = bisect.bisect_right(times, target + 1e-6) - 1
        if index < 0 or times[index] < target - seconds:
            raise NoData(key)
        return self._values[key][index]

    def change(self, key: str, seconds: float, current: Decimal) -> Decimal:
        old = self.value_ago(key, seconds)
        if not old:
            raise NoData(key)
        return (current - old) / old

    def delta(self, key: str, seconds: float, current: Decimal) -> Decimal:
        return current - self.value_ago(key, seconds)


def watched_series(series: set[tuple[str, str]]) -> Callable[[str], bool]:
    """Whether a sample key (``BTC.total``) is one that ``change``/``delta`` look back on."""
    exact = {f"{code}.{name}" for code, name in series if code != "*"}
    each = {name for code, name in series if code == "*"}
    return lambda key: key in exact or key.rpartition(".")[2] in each


def record_history(rules: RuleSet, overview: Overview, history: History) -> list[Sample]:
    """Samples of every series the rules read (stored for replay); the ones that
    ``change``/``delta`` look back on also go into the in-memory ``history``."""
    at = overview.fetched_at
    samples: list[Sample] = []
    rows = overview.currencies
    for code, name in rules.needs.reads | rules.needs.series:
        if code == "ACCOUNT":
            if overview.totals is not None:
                samples.append((f"ACCOUNT.{name}", at, getattr(overview.totals, name)))
        elif code == "*":
            samples += [
                (f"{row.currency}.{name}", at, getattr(row, name)) for row in (rows or {}).values()
            ]
        elif rows is not None and not overview.unknown(code):
            samples.append((f"{code}.{name}", at, getattr(overview.balance(code), name)))
    if rules.needs.positions and overview.positions is not None:  # for replay only
        samples += [(k, at, v) for p in overview.positions for k, v in position_samples(p)]
        # how many are open: the poll is stored even when it found none (a closing)
        samples.append((f"{MARK}.count", at, Decimal(len(overview.positions))))
    wanted = watched_series(rules.needs.series)
    for key, stamp, value in samples:
        if wanted(key):
            history.record(key, stamp, value)
    if rules.history_keep:
        history.prune(at - rules.history_keep)
    return samples


def absent_is_zero(rules: RuleSet, overview: Overview | None) -> Callable[[str], bool]:
    """Which stored series a poll speaks for when it has no sample of them.

    A currency absent from rows actually fetched holds nothing: zero. A series
    the rules no longer read, an unreadable row, or totals say nothing.
    """
    held = overview is not None and overview.positions is not None

    def position(key: str) -> bool:  # a stored position not read again has closed
        return held and key.endswith(".open")

    if overview is None or overview.currencies is None or not overview.complete:
        return lambda key: key.startswith(MARK) and position(key)
    read = watched_series(rules.needs.reads | rules.needs.series)
    nodata = overview.nodata
    return lambda key: (
        position(key)
        if key.startswith(MARK)
        else not key.startswith("ACCOUNT.") and read(key) and key.partition(".")[0] not in nodata
    )
