"""SQLite state: alert instances, balance history, the outbox, silences, poll facts.

One file in WAL mode. The evaluation's state change and the notifications it
decided are written in one transaction, so a crash can lose neither half:
after a restart an announced alert is not announced again, and a decided
notification is still waiting in the outbox. URLs are never stored: rows name
a channel and the hash of one of its URLs.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from watcher.engine import Alert, History, Key, Notice, Sample
from watcher.errors import StoreError

SCHEMA_VERSION = 1
POLL_KEY = "POLL"
ZERO = Decimal(0)
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    rule TEXT NOT NULL, currency TEXT NOT NULL, state TEXT NOT NULL, since TEXT NOT NULL,
    fired_at TEXT, last_notified TEXT, cleared_since TEXT, value TEXT, threshold TEXT,
    muted INTEGER NOT NULL DEFAULT 0, severity TEXT NOT NULL DEFAULT 'warning',
    PRIMARY KEY (rule, currency));
CREATE TABLE IF NOT EXISTS history (
    key TEXT NOT NULL, ts REAL NOT NULL, value TEXT NOT NULL, PRIMARY KEY (key, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS history_ts ON history (ts);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, channel TEXT NOT NULL, url_key TEXT NOT NULL,
    created REAL NOT NULL, due REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    notice TEXT NOT NULL, last_error TEXT);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY, rule TEXT NOT NULL, currency TEXT, starts REAL NOT NULL,
    ends REAL NOT NULL, comment TEXT NOT NULL DEFAULT '');
"""
_ALERT_COLUMNS = (
    "rule, currency, state, since, fired_at, last_notified, cleared_since, value, threshold, "
    "muted, severity"
)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    channel: str
    url_key: str
    created: datetime
    attempts: int
    notice: Notice


@dataclass(frozen=True)
class Silence:
    id: int
    rule: str
    currency: str | None
    starts: datetime
    ends: datetime
    comment: str

    def covers(self, rule: str, currency: str | None, now: datetime) -> bool:
        if not self.starts <= now < self.ends or self.rule != rule:
            return False
        return self.currency is None or self.currency == currency


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _stamp(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def notice_to_json(notice: Notice) -> str:
    data = asdict(notice)
    for name in ("since", "at"):
        data[name] = data[name].isoformat()
    for name in ("value", "threshold"):
        data[name] = None if data[name] is None else str(data[name])
    return json.dumps(data)


def notice_from_json(text: str) -> Notice:
    data = json.loads(text)
    for name in ("since", "at"):
        data[name] = datetime.fromisoformat(data[name])
    for name in ("value", "threshold"):
        data[name] = None if data[name] is None else Decimal(data[name])
    data["channels"] = tuple(data["channels"])
    return Notice(**data)


class Store:
    """The state database; every method is one short transaction."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                self.path, timeout=10, isolation_level=None, check_same_thread=False
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the state database {self.path}: {exc}") from None
        self._saved: dict[Key, Alert] = {}
        self._last: dict[str, Decimal] | None = None  # latest stored value of each key

    @classmethod
    def snapshot(cls, path: Path | str) -> Store:
        """An in-memory copy of the database (or an empty one): writes go nowhere."""
        store = cls(":memory:")
        if Path(path).exists():
            try:
                source = sqlite3.connect(f"file:{Path(path).absolute()}?mode=ro", uri=True)
                source.backup(store.db)
                source.close()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the state database {path}: {exc}") from None
        return store

    def _migrate(self) -> None:
        with self.transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else SCHEMA_VERSION
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer watcher (schema {version}); "
                    "upgrade watcher or point WATCHER_STATE at a new file"
                )
            self._set_meta({"schema_version": str(SCHEMA_VERSION)})

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # --- alerts ---------------------------------------------------------------
    def load_alerts(self) -> dict[Key, Alert]:
        rows = self.db.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts").fetchall()
        alerts = {}
        for row in rows:
            rule, currency, state, since, fired, notified, cleared, value, threshold, muted, sev = (
                row
            )
            alert = Alert(
                rule=rule,
                currency=currency or None,
                state=state,
                since=datetime.fromisoformat(since),
                fired_at=_time(fired),
                last_notified=_time(notified),
                cleared_since=_time(cleared),
                value=Decimal(value) if value is not None else None,
                threshold=Decimal(threshold) if threshold is not None else None,
                muted=bool(muted),
                severity=sev,
            )
            alerts[alert.key] = alert
        self._saved = dict(alerts)
        return alerts

    def _write_alerts(self, alerts: Mapping[Key, Alert]) -> None:
        for key in [k for k in self._saved if k not in alerts]:
            self.db.execute(
                "DELETE FROM alerts WHERE rule=? AND currency=?", (key[0], key[1] or "")
            )
        for key, alert in alerts.items():
            if self._saved.get(key) == alert:
                continue
            self.db.execute(
                f"INSERT OR REPLACE INTO alerts ({_ALERT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    alert.rule,
                    alert.currency or "",
                    alert.state,
                    alert.since.isoformat(),
                    _iso(alert.fired_at),
                    _iso(alert.last_notified),
                    _iso(alert.cleared_since),
                    None if alert.value is None else str(alert.value),
                    None if alert.threshold is None else str(alert.threshold),
                    int(alert.muted),
                    alert.severity,
                ),
            )

    def commit(
        self,
        alerts: Mapping[Key, Alert],
        outbox: Iterable[tuple[str, str, Notice, datetime]] = (),
        samples: Iterable[Sample] = (),
        meta: Mapping[str, str] | None = None,
        prune_before: datetime | None = None,
        absent_is_zero: Callable[[str], bool] = lambda key: False,
    ) -> None:
        """Alert states, decided notifications, history and poll facts: all or nothing."""
        with self.transaction():
            self._write_alerts(alerts)
            for channel, url_key, notice, due in outbox:
                self.db.execute(
                    "INSERT INTO outbox (channel, url_key, created, due, notice) "
                    "VALUES (?,?,?,?,?)",
                    (
                        channel,
                        url_key,
                        notice.at.timestamp(),
                        due.timestamp(),
                        notice_to_json(notice),
                    ),
                )
            self._write_samples(list(samples), absent_is_zero)
            if prune_before is not None:
                self._prune(prune_before)
            if meta:
                self._set_meta(meta)
        self._saved = dict(alerts)

    # --- history --------------------------------------------------------------
    # Only changes are stored, plus a POLL marker for every successful poll; a key
    # that a poll speaks for but no longer reports (a currency gone from the rows)
    # becomes zero. A key the poll says nothing about (the rules stopped reading it,
    # its row was unreadable) keeps its last value. The value of any key at any
    # poll is the latest row at or before it.

    def _latest(self, before: float | None = None) -> dict[str, Decimal]:
        bound = "AND ts < ?" if before is not None else ""
        query = (
            "SELECT key, value FROM history h WHERE ts = (SELECT MAX(ts) FROM history "
            f"WHERE key = h.key {bound})"
        )
        params = (before,) if before is not None else ()
        return {k: Decimal(v) for k, v in self.db.execute(query, params) if k != POLL_KEY}

    def _write_samples(self, samples: list[Sample], absent_is_zero: Callable[[str], bool]) -> None:
        if not samples:
            return
        if self._last is None:
            self._last = self._latest()
        stamp = samples[0][1].timestamp()
        current = {key: value for key, _, value in samples}
        changed = {k: v for k, v in current.items() if self._last.get(k) != v}
        gone = (k for k, v in self._last.items() if k not in current and v and absent_is_zero(k))
        changed.update(dict.fromkeys(gone, ZERO))
        rows = [(k, stamp, str(v)) for k, v in changed.items()] + [(POLL_KEY, stamp, "1")]
        self.db.executemany("INSERT OR REPLACE INTO history (key, ts, value) VALUES (?,?,?)", rows)
        self._last.update(changed)

    def _prune(self, before: datetime) -> None:
        """Forget rows older than ``before`` but the last one of each key (its value then)."""
        cut = before.timestamp()
        self.db.execute(
            "DELETE FROM history WHERE ts < ? AND ts < (SELECT MAX(ts) FROM history h "
            "WHERE h.key = history.key AND h.ts < ?)",
            (cut, cut),
        )

    def polls(self, since: datetime | None = None) -> Iterator[tuple[datetime, dict[str, Decimal]]]:
        """Every stored poll from ``since`` on, with the value of every key at that poll."""
        start = since.timestamp() if since else 0.0
        state = self._latest(before=start)
        rows = self.db.execute(
            "SELECT key, ts, value FROM history WHERE ts >= ? ORDER BY ts", (start,)
        ).fetchall()
        for ts, group in itertools.groupby(rows, key=lambda row: row[1]):
            polled = False
            for key, _, value in group:
                if key == POLL_KEY:
                    polled = True
                else:
                    state[key] = Decimal(value)
            if polled:
                yield _stamp(ts), dict(state)

    def load_history(
        self, history: History, since: datetime, wanted: Callable[[str], bool]
    ) -> History:
        """Fill ``history`` with the values of the ``wanted`` keys at every poll since then."""
        for at, values in self.polls(since):
            for key, value in values.items():
                if wanted(key):
                    history.record(key, at, value)
        return history

    # --- meta -----------------------------------------------------------------
    def _set_meta(self, values: Mapping[str, str]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items())
        )

    def set_meta(self, values: Mapping[str, str]) -> None:
        with self.transaction():
            self._set_meta(values)

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    # --- outbox ---------------------------------------------------------------
    def due(self, now: datetime) -> list[OutboxRow]:
        query = (
            "SELECT id, channel, url_key, created, attempts, notice FROM outbox "
            "WHERE due <= ? ORDER BY id"
        )
        return [
            OutboxRow(i, ch, key, _stamp(created), attempts, notice_from_json(notice))
            for i, ch, key, created, attempts, notice in self.db.execute(query, (now.timestamp(),))
        ]

    def delivered(self, ids: Iterable[int]) -> None:
        with self.transaction():
            self.db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in ids])

    drop = delivered

    def retry_later(self, ids: Iterable[int], due: datetime, error: str) -> None:
        with self.transaction():
            self.db.executemany(
                "UPDATE outbox SET attempts=attempts+1, due=?, last_error=? WHERE id=?",
                [(due.timestamp(), error[:500], i) for i in ids],
            )

    def outbox_depth(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def next_due(self) -> datetime | None:
        row = self.db.execute("SELECT MIN(due) FROM outbox").fetchone()
        return _stamp(row[0]) if row and row[0] is not None else None

    # --- silences -------------------------------------------------------------
    def add_silence(
        self, rule: str, currency: str | None, starts: datetime, length: timedelta, comment: str
    ) -> int:
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO silences (rule, currency, starts, ends, comment) VALUES (?,?,?,?,?)",
                (rule, currency, starts.timestamp(), (starts + length).timestamp(), comment),
            )
            return int(cursor.lastrowid or 0)

    def silences(self, now: datetime | None = None) -> list[Silence]:
        query = "SELECT id, rule, currency, starts, ends, comment FROM silences"
        params: tuple[Any, ...] = ()
        if now is not None:
            query += " WHERE ends > ?"
            params = (now.timestamp(),)
        return [
            Silence(i, rule, cur, _stamp(s), _stamp(e), comment)
            for i, rule, cur, s, e, comment in self.db.execute(query + " ORDER BY id", params)
        ]

    def remove_silence(self, silence_id: int) -> bool:
        with self.transaction():
            cursor = self.db.execute("DELETE FROM silences WHERE id=?", (silence_id,))
            return cursor.rowcount > 0
