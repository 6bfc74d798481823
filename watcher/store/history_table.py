"""The history encoding: only changes are stored, plus a POLL marker per successful poll.

A key that a poll speaks for but no longer reports (a currency gone from the
rows) becomes zero. A key the poll says nothing about (the rules stopped
reading it, its row was unreadable) keeps its last value. The value of any
key at any poll is the latest row at or before it.
"""

from __future__ import annotations

import itertools
import math
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


def prefix(account: str) -> str:
    """Each account's keys live under ``<account>/``: ``main/BTC.total``, ``main/POLL``."""
    return f"{account}/"


def key_range(account: str) -> tuple[str, str]:
    """The primary-key range of an account's keys: ``"0"`` sorts right after ``"/"``."""
    head = prefix(account)
    return head, head[:-1] + "0"


# Each distinct key of a range, one index seek apiece: a loose index scan, which neither
# SQLite nor PostgreSQL makes by itself. What an account's keys cost is then the number of
# its keys, not of its rows (a week of polls at 5,000 accounts is 50 million rows).
KEYS = (
    "WITH RECURSIVE keys(key) AS ("
    "SELECT (SELECT MIN(key) FROM history WHERE key >= ? AND key < ?) UNION ALL "
    "SELECT (SELECT MIN(key) FROM history WHERE key > keys.key AND key < ?) "
    "FROM keys WHERE keys.key IS NOT NULL) "
)
LATEST = KEYS + (
    "SELECT key, (SELECT value FROM history WHERE history.key = keys.key AND ts < ? "
    "ORDER BY ts DESC LIMIT 1) FROM keys WHERE key IS NOT NULL"
)
SINCE = KEYS + (
    "SELECT h.key, h.ts, h.value FROM keys JOIN history h ON h.key = keys.key "
    "WHERE h.ts >= ? ORDER BY h.ts"
)


class HistoryTable:
    """Mixin for ``Store``: write a poll's samples, prune, and read polls back. Every
    statement a poll or a restore makes reads one account's keys (a range of the
    primary key), so its cost does not grow with the number of accounts."""

    db: sqlite3.Connection
    _last: dict[str, dict[str, Decimal]]  # per account prefix: key -> latest value

    def _latest(self, account: str, before: float = math.inf) -> dict[str, Decimal]:
        """An account's keys with their last value before ``before``."""
        low, high = key_range(account)
        rows = self.db.execute(LATEST, (low, high, high, before))
        return {k: Decimal(v) for k, v in rows if v is not None and not k.endswith(POLL_KEY)}

    def _write_samples(
        self, account: str, samples: list[Sample], absent_is_zero: Callable[[str], bool]
    ) -> None:
        if not samples:
            return
        head = prefix(account)
        if head not in self._last:
            self._last[head] = self._latest(account)
        last = self._last[head]
        stamp = samples[0][1].timestamp()
        current = {head + key: value for key, _, value in samples}
        changed = {k: v for k, v in current.items() if last.get(k) != v}
        gone = (
            k for k, v in last.items() if k not in current and v and absent_is_zero(k[len(head) :])
        )
        changed.update(dict.fromkeys(gone, ZERO))
        rows = [(k, stamp, str(v)) for k, v in changed.items()] + [(head + POLL_KEY, stamp, "1")]
        self.db.executemany(HISTORY_UPSERT, rows)
        last.update(changed)

    def _prune(self, account: str, before: datetime) -> None:
        """Forget an account's rows older than ``before`` but the last one of each key (its
        value then). Each commit prunes the accounts it wrote: pruning every account's keys
        on every commit read each key's last row, every account's, on every poll."""
        low, high = key_range(account)
        cut = before.timestamp()
        self.db.execute(
            "DELETE FROM history WHERE key >= ? AND key < ? AND ts < ? AND ts < "
            "(SELECT MAX(ts) FROM history h WHERE h.key = history.key AND h.ts < ?)",
            (low, high, cut, cut),
        )

    def history_accounts(self) -> list[str]:
        """Every account (and combined label) with rows in the history: one index seek
        apiece, skipping from one account's keys to the next one's."""
        found: list[str] = []
        low = ""
        while True:
            row = self.db.execute("SELECT MIN(key) FROM history WHERE key >= ?", (low,)).fetchone()
            if row is None or row[0] is None:
                return found
            account = str(row[0]).split("/", 1)[0]
            found.append(account)
            low = key_range(account)[1]

    def polls(
        self, since: datetime | None = None, account: str = MAIN
    ) -> Iterator[tuple[datetime, dict[str, Decimal]]]:
        """Every stored poll of an account from ``since`` on, with the value of every key."""
        start = since.timestamp() if since else 0.0
        head = prefix(account)
        state = {k[len(head) :]: v for k, v in self._latest(account, before=start).items()}
        low, high = key_range(account)
        rows = self.db.execute(SINCE, (low, high, high, start)).fetchall()
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
