"""The outbox: decided notifications waiting for delivery, one row per (channel, URL).

URLs are never stored: a row names its channel and the hash of one of its URLs.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from watcher.core import logs
from watcher.core.alerts import Notice
from watcher.core.errors import StoreError
from watcher.store.db import damaged, stamp, upsert


@dataclass(frozen=True)
class OutboxRow:
    id: int
    channel: str
    url_key: str
    created: datetime
    attempts: int
    notice: Notice
    due: datetime | None = None


TIMES = ("since", "at", "fired_at")


def notice_to_json(notice: Notice) -> str:
    data = asdict(notice)
    for name in TIMES:
        data[name] = data[name].isoformat() if data[name] else None
    for name in ("value", "threshold"):
        data[name] = None if data[name] is None else str(data[name])
    return json.dumps(data)


def notice_from_json(text: str) -> Notice:
    data = json.loads(text)
    for name in TIMES:
        data[name] = datetime.fromisoformat(data[name]) if data.get(name) else None
    for name in ("value", "threshold"):
        data[name] = None if data[name] is None else Decimal(data[name])
    data["channels"] = tuple(data["channels"])
    return Notice(**data)


log = logs.get("watcher.store")
DELIVERED_UPSERT = upsert(
    "delivered", ("account", "rule", "currency", "at"), ("account", "rule", "currency")
)


def about(text: str, at: datetime) -> tuple[str, str, str, float]:
    """The ``delivered`` row for a sent notice: which alert, and when."""
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    return (
        str(data.get("account") or "main"),
        str(data.get("rule") or ""),
        str(data.get("currency") or ""),
        at.timestamp(),
    )


class OutboxTable:
    """Mixin for ``Store``: queue, read what is due, and record each attempt."""

    db: sqlite3.Connection
    path: Path
    url: str | None
    transaction: Callable[..., AbstractContextManager[sqlite3.Connection]]
    spared: Callable[[Callable[[], None]], bool]

    def _queue(self, rows: Iterable[tuple[str, str, Notice, datetime]]) -> None:
        self.db.executemany(
            "INSERT INTO outbox (channel, url_key, created, due, notice) VALUES (?,?,?,?,?)",
            [
                (channel, url_key, notice.at.timestamp(), due.timestamp(), notice_to_json(notice))
                for channel, url_key, notice, due in rows
            ],
        )

    def due(self, now: datetime) -> list[OutboxRow]:
        """Rows whose time has come, oldest first."""
        return [r for r in self.pending() if r.due is not None and r.due <= now]

    def pending(self) -> list[OutboxRow]:
        """Every waiting row in decision order (the order messages must arrive in)."""
        rows, broken = self._read_pending("")
        if broken:
            self._drop_broken(broken)
        return rows

    def claim(self) -> list[OutboxRow]:
        """``pending()`` as a leader reads it to send: in a fenced transaction, so that a
        deposed leader gets nothing to send, and on PostgreSQL with the rows locked
        (``FOR UPDATE SKIP LOCKED``), so that no other claimer takes the same rows."""
        if not self.url:
            return self.pending()
        with self.transaction():
            rows, broken = self._read_pending(" FOR UPDATE SKIP LOCKED")
        if broken:
            self._drop_broken(broken)
        return rows

    def _read_pending(self, lock: str) -> tuple[list[OutboxRow], list[int]]:
        query = (
            "SELECT id, channel, url_key, created, attempts, notice, due FROM outbox "
            f"ORDER BY created, id{lock}"
        )
        rows, broken = [], []
        for i, ch, key, created, attempts, notice, due in self.db.execute(query).fetchall():
            try:
                parsed = notice_from_json(notice)
                rows.append(OutboxRow(i, ch, key, stamp(created), attempts, parsed, stamp(due)))
            except (ValueError, TypeError, KeyError, OverflowError):
                broken.append(i)
        return rows, broken

    def _drop_broken(self, broken: list[int]) -> None:
        """Rows edited by hand into something no message can be made of."""
        log.error("unreadable outbox rows dropped", count=len(broken))
        self.drop(broken)

    def move(self, rows: Iterable[OutboxRow], url_keys: Iterable[str]) -> None:
        """Rows whose URL changed follow their channel to its current URLs, keeping order."""
        rows, keys = list(rows), list(url_keys)
        with self.transaction():
            for row in rows:
                self.db.executemany(
                    "INSERT INTO outbox (channel, url_key, created, due, attempts, notice) "
                    "SELECT channel, ?, created, due, 0, notice FROM outbox WHERE id=?",
                    [(key, row.id) for key in keys],
                )
            self.db.executemany("DELETE FROM outbox WHERE id=?", [(r.id,) for r in rows])

    def delivered(self, ids: Iterable[int], at: datetime) -> bool:
        """Sent at ``at``: gone from the outbox, and the time kept per alert for ``status``.
        On a full disk this write may use the reserve, since a sent message left in the
        outbox would be sent again after a restart; True when it did."""
        gone = list(ids)

        def write() -> None:
            with self.transaction():
                marks = ",".join("?" for _ in gone)
                rows = self.db.execute(
                    f"SELECT notice FROM outbox WHERE id IN ({marks})", gone
                ).fetchall()
                self.db.executemany(DELIVERED_UPSERT, [about(text, at) for (text,) in rows])
                self.db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in gone])

        return self.spared(write)

    def drop(self, ids: Iterable[int]) -> None:
        """Given up: gone from the outbox, never delivered."""
        with self.transaction():
            self.db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in ids])

    def deliveries(self) -> dict[tuple[str, str, str], datetime]:
        """When a message about each (account, rule, currency) last arrived."""
        rows = self.db.execute("SELECT account, rule, currency, at FROM delivered").fetchall()
        return {(a, r, c): datetime.fromtimestamp(t, UTC) for a, r, c, t in rows}

    def waiting(self) -> Counter[tuple[str, str, str]]:
        """How many messages about each (account, rule, currency) wait in the outbox."""
        return Counter(
            (n.account or "main", n.rule, n.currency or "")
            for n in (r.notice for r in self.pending())
        )

    def retry_later(self, ids: Iterable[int], due: datetime, error: str) -> None:
        with self.transaction():
            self.db.executemany(
                "UPDATE outbox SET attempts=attempts+1, due=?, last_error=? WHERE id=?",
                [(due.timestamp(), error[:500], i) for i in ids],
            )

    def outbox_depth(self) -> int:
        try:
            return int(self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        except sqlite3.Error as exc:
            raise StoreError(damaged(self.path, exc)) from None

    def oldest(self) -> datetime | None:
        """When the longest-waiting message was decided."""
        row = self.db.execute("SELECT MIN(created) FROM outbox").fetchone()
        return stamp(row[0]) if row and row[0] is not None else None

    def next_due(self) -> datetime | None:
        row = self.db.execute("SELECT MIN(due) FROM outbox").fetchone()
        return stamp(row[0]) if row and row[0] is not None else None
