"""The history encoding: only changes are stored, plus a POLL marker per successful poll.

A key that a poll speaks for but no longer reports (a currency gone from the
rows) becomes zero. A key the poll says nothing about (the rules stopped
reading it, its row was unreadable) keeps its last value. The value of any
key at any poll is the latest row at or before it.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal

from watcher.core.alerts import MAIN
from watcher.engine.lookback import History, Sample
from watcher.store.db import stamp, upsert

POLL_KEY = "POLL"
HISTORY_UPSERT = upsert("history", ("key", "ts", "value"), ("key", "ts"))
ZERO = Decimal(0)


def by_account(latest: dict[str, Decimal]) -> dict[str, dict[str, Decimal]]:
    """``{"main/BTC.total": v}`` as ``{"main/": {"main/BTC.total": v}}``."""
    found: dict[str, dict[str, Decimal]] = {}
    for key, value in latest.items():
        head = key.split("/", 1)[0] + "/" if "/" in key else ""
        found.setdefault(head, {})[key] = value
    return found


def prefix(account: str) -> str:
    """Each account's keys live under ``<account>/``: ``main/BTC.total``, ``main/POLL``."""
    return f"{account}/"


class HistoryTable:
    """Mixin for ``Store``: write a poll's samples, prune, and read polls back."""

    db: sqlite3.Connection
    _last: dict[str, dict[str, Decimal]] | None  # per account prefix: key -> latest value

    def _latest(self, before: float | None = None) -> dict[str, Decimal]:
        bound = "AND ts < ?" if before is not None else ""
        query = (
            "SELECT key, value FROM history h WHERE ts = (SELECT MAX(ts) FROM history "
            f"WHERE key = h.key {bound})"
        )
        params = (before,) if before is not None else ()
        rows = self.db.execute(query, params)
        return {k: Decimal(v) for k, v in rows if not k.endswith(POLL_KEY)}

    def _write_samples(
        self, account: str, samples: list[Sample], absent_is_zero: Callable[[str], bool]
    ) -> None:
        if not samples:
            return
        if self._last is None:
            self._last = by_account(self._latest())
        head = prefix(account)
        last = self._last.setdefault(head, {})  # this account's keys only: cost per poll
        stamp = samples[0][1].timestamp()  # does not grow with the number of accounts
        current = {head + key: value for key, _, value in samples}
        changed = {k: v for k, v in current.items() if last.get(k) != v}
        gone = (
            k for k, v in last.items() if k not in current and v and absent_is_zero(k[len(head) :])
        )
        changed.update(dict.fromkeys(gone, ZERO))
        rows = [(k, stamp, str(v)) for k, v in changed.items()] + [(head + POLL_KEY, stamp, "1")]
        self.db.executemany(HISTORY_UPSERT, rows)
        last.update(changed)

    def _prune(self, before: datetime) -> None:
        """Forget rows older than ``before`` but the last one of each key (its value then)."""
        cut = before.timestamp()
        self.db.execute(
            "DELETE FROM history WHERE ts < ? AND ts < (SELECT MAX(ts) FROM history h "
            "WHERE h.key = history.key AND h.ts < ?)",
            (cut, cut),
        )

    def polls(
        self, since: datetime | None = None, account: str = MAIN
    ) -> Iterator[tuple[datetime, dict[str, Decimal]]]:
        """Every stored poll of an account from ``since`` on, with the value of every key."""
        start = since.timestamp() if since else 0.0
        head = prefix(account)
        state = {
            k[len(head) :]: v for k, v in self._latest(before=start).items() if k.startswith(head)
        }
        rows = self.db.execute(
            "SELECT key, ts, value FROM history WHERE ts >= ? AND key >= ? AND key < ? ORDER BY ts",
            (start, head, head[:-1] + "0"),  # "0" sorts right after "/"
        ).fetchall()
        for ts, group in itertools.groupby(rows, key=lambda row: row[1]):
            polled = False
            for key, _, value in group:
                if key == head + POLL_KEY:
                    polled = True
                else:
                    state[key[len(head) :]] = Decimal(value)
            if polled:
                yield stamp(ts), dict(state)

    def value_at(self, key: str, when: datetime, account: str = MAIN) -> Decimal | None:
        """A key's stored value at a moment (the latest change at or before it), if any."""
        row = self.db.execute(
            "SELECT value FROM history WHERE key=? AND ts<=? ORDER BY ts DESC LIMIT 1",
            (prefix(account) + key, when.timestamp()),
        ).fetchone()
        return Decimal(row[0]) if row else None

    def load_history(
        self,
        history: History,
        since: datetime,
        wanted: Callable[[str], bool],
        account: str = MAIN,
    ) -> History:
        """Fill ``history`` with the values of the ``wanted`` keys at every poll since then."""
        for at, values in self.polls(since, account):
            for key, value in values.items():
                if wanted(key):
                    history.record(key, at, value)
        return history
