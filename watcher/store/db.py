"""The database itself: the SQLite file (WAL, ``synchronous=FULL``) or PostgreSQL, the
schema and its version, meta, and the fence a leader's writes pass.

Every write is one short transaction; a reader sees either all of a poll's writes
or none of them. The tables are written in the SQL both databases speak.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from watcher.core import logs
from watcher.core.errors import StateUnwritable, StoreError
from watcher.store import postgres

SCHEMA_VERSION = 2  # 2: several accounts (an `account` on alerts and silences, key prefixes)
# Written once: the fresh schema and the upgrade both create this table.
ALERTS_TABLE = """(
    rule TEXT NOT NULL, currency TEXT NOT NULL, state TEXT NOT NULL, since TEXT NOT NULL,
    fired_at TEXT, last_notified TEXT, cleared_since TEXT, value TEXT, threshold TEXT,
    muted INTEGER NOT NULL DEFAULT 0, severity TEXT NOT NULL DEFAULT 'warning',
    account TEXT NOT NULL DEFAULT 'main',
    PRIMARY KEY (account, rule, currency))"""
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts {ALERTS_TABLE};
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
    ends REAL NOT NULL, comment TEXT NOT NULL DEFAULT '', account TEXT);
CREATE TABLE IF NOT EXISTS delivered (
    account TEXT NOT NULL, rule TEXT NOT NULL, currency TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (account, rule, currency));
CREATE TABLE IF NOT EXISTS acks (
    account TEXT NOT NULL, rule TEXT NOT NULL, currency TEXT NOT NULL, by TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (account, rule, currency));
"""
# From the single-account schema: everything it held becomes account `main`.
UPGRADE_1_TO_2 = f"""
ALTER TABLE alerts RENAME TO alerts_v1;
CREATE TABLE alerts {ALERTS_TABLE};
INSERT INTO alerts SELECT *, 'main' FROM alerts_v1;
DROP TABLE alerts_v1;
ALTER TABLE silences ADD COLUMN account TEXT;
UPDATE history SET key = 'main/' || key;
UPDATE meta SET key = 'main/' || key WHERE key IN
    ('last_poll', 'last_result', 'last_error', 'last_success', 'web_key_hash', 'web_key_seen');
"""


log = logs.get("watcher.store")


def upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """``INSERT ... ON CONFLICT (key) DO UPDATE``, with ``?`` for each column: the one
    form of "insert or replace" that SQLite and PostgreSQL both run."""
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c}=excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


def damaged(path: Path | str | None, exc: Exception) -> str:
    """One line for a database SQLite cannot use, with the way out."""
    if isinstance(exc, postgres.PostgresError):
        return f"{exc}; check that PostgreSQL runs, and WATCHER_STATE and its password"
    name = f"the state database {path}" if path else "the state database (WATCHER_STATE)"
    if "full" in str(exc):
        return f"cannot write {name}: the disk is full; free some space and start again"
    move = f"mv {path} {path}.broken" if path else "mv it to a .broken name"
    return (
        f"{name} cannot be used ({exc}); move it aside ({move}) and watcher starts a new "
        "one (alerts that fire are announced again)"
    )


UNWRITABLE = ("full", "readonly", "read-only", "disk i/o", "locked", "busy")


class Reserve:
    """A file of ``SIZE`` bytes beside the database, given up when the disk is full so
    that the write that records a delivery still fits, and made again once there is room
    (twice its size free) for it and more."""

    SIZE = 256 * 1024  # 64 pages: a delivery's delete and its WAL frames, many times over

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".reserve")
        self.usable = str(database) != ":memory:"

    def keep(self) -> None:
        if not self.usable or self.path.exists():
            return
        try:
            stats = os.statvfs(self.path.parent)
            if stats.f_bavail * stats.f_frsize < 2 * self.SIZE:
                return
            with open(self.path, "wb") as reserve:
                reserve.truncate(self.SIZE)  # sparse would reserve nothing: write it out
                reserve.seek(0)
                reserve.write(bytes(self.SIZE))
                os.fsync(reserve.fileno())
        except OSError:
            self.path.unlink(missing_ok=True)

    def release(self) -> bool:
        """True when there was a reserve to give up."""
        try:
            self.path.unlink()
        except OSError:
            return False
        return True


def refused(path: Path | str | None, exc: sqlite3.Error) -> StoreError:
    """A failed write as watcher's error: ``StateUnwritable`` when waiting can help (a full
    disk, a read-only file, a lock, PostgreSQL out of reach), ``StoreError`` when the file
    itself is damaged."""
    if isinstance(exc, postgres.PostgresError):
        return StateUnwritable(f"cannot write the state: {exc}")
    message = damaged(path, exc)
    if any(word in str(exc).lower() for word in UNWRITABLE):
        return StateUnwritable(message)
    return StoreError(message)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def stamp(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class Database:
    """The connection, its schema, transactions and the ``meta`` key-value table.

    ``target`` is a file path, or a ``postgresql://`` URL. ``fence``, when set (by the
    leader of a pair), runs first in every write transaction and raises ``Deposed`` if
    this instance no longer holds the lease: a paused leader cannot commit after a
    standby took over."""

    fence: Callable[[Database], None] | None = None
    readonly = False  # a snapshot: every transaction is rolled back

    def __init__(self, target: Path | str, password: str | None = None, name: str = "") -> None:
        self.url = str(target) if postgres.is_url(target) else None
        # what messages name: the file, or the URL without password or options
        self.path: Path = postgres.shown(self.url) if self.url else Path(target)  # type: ignore[assignment]
        self.password = password
        self.name = name
        self.txlock = threading.RLock()  # one transaction at a time on this connection
        if self.url:
            try:
                self.db: sqlite3.Connection = postgres.Connection(  # type: ignore[assignment]
                    self.url, password, name
                )
                self._migrate_postgres()
            except sqlite3.Error as exc:
                raise StoreError(damaged(self.path, exc)) from None
            self.inode, self.reserve = None, Reserve(Path(":memory:"))
            return
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
            raise StoreError(damaged(self.path, exc)) from None
        self.inode = self._inode()
        self.reserve = Reserve(self.path)
        self.reserve.keep()

    @property
    def target(self) -> Path | str:
        """What opens this database again (a sibling connection)."""
        return self.url or self.path

    def _migrate_postgres(self) -> None:
        """The schema, created by one instance at a time (two starting together would
        race on ``CREATE TABLE``); PostgreSQL starts at the current version."""
        with self.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(7261)")  # 7261: watcher's schema
            version = postgres.migrate(self.db)  # type: ignore[arg-type]
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer watcher (schema {version}); "
                    "upgrade watcher on every machine that shares it"
                )
            if version is None:
                self._set_meta({"schema_version": str(SCHEMA_VERSION)})

    def _migrate(self) -> None:
        """Create what is missing; write nothing to a database that is already current, so
        it opens even on a full disk."""
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        if {"meta", "alerts", "history", "outbox", "silences", "acks", "delivered"} <= tables:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row and row[0] == str(SCHEMA_VERSION):
                return
        with self.transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            try:
                version = int(row[0]) if row else SCHEMA_VERSION
                if version == 1:
                    for statement in UPGRADE_1_TO_2.split(";"):
                        if statement.strip():
                            self.db.execute(statement)
                    version = 2
            except (TypeError, ValueError):
                raise StoreError(
                    f"{self.path} has an unreadable schema version ({str(row[0])[:20]!r}); "
                    f"move it aside (mv {self.path} {self.path}.broken) and watcher starts a "
                    "new one"
                ) from None
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer watcher (schema {version}); "
                    "upgrade watcher or point WATCHER_STATE at a new file"
                )
            self._set_meta({"schema_version": str(SCHEMA_VERSION)})

    @contextmanager
    def transaction(self, fenced: bool = True) -> Iterator[sqlite3.Connection]:
        """All or nothing; a leader's transaction first passes its fence."""
        with self.txlock:
            self.db.execute("BEGIN" if self.url else "BEGIN IMMEDIATE")
            try:
                if fenced and self.fence is not None:
                    self.fence(self)
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("ROLLBACK" if self.readonly else "COMMIT")

    def spared(self, write: Callable[[], None]) -> bool:
        """``write``, and once more on a full disk after giving up the reserve: a message
        that went out must be recorded as sent, or a restart would send it again. True
        when the reserve was used: the disk is full, and the caller should say so."""
        try:
            write()
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc) or not self.reserve.release():
                raise
            log.warning("disk full: the state database used its reserve", path=str(self.path))
            write()
            return True
        self.reserve.keep()
        return False

    def close(self) -> None:
        self.db.close()

    def _inode(self) -> int | None:
        if self.url:
            return None
        try:
            return os.stat(self.path).st_ino if str(self.path) != ":memory:" else None
        except OSError:
            return None

    def gone(self) -> str | None:
        """Why the file this connection writes is no longer the state database (deleted or
        replaced at run time: SQLite would go on writing an unlinked inode), or None."""
        if self.inode is None:
            return None
        if self._inode() != self.inode:
            return f"the state database {self.path} was deleted or replaced while watcher ran"
        return None

    def damage(self) -> str | None:
        """One line when SQLite finds the file damaged (``quick_check``), or None."""
        if self.url:
            return None  # PostgreSQL checks its own pages
        try:
            found = self.db.execute("PRAGMA quick_check").fetchone()
        except sqlite3.Error as exc:
            return damaged(self.path, exc)
        if found and found[0] != "ok":
            return damaged(self.path, sqlite3.DatabaseError(str(found[0])))
        return None

    def _set_meta(self, values: Mapping[str, str]) -> None:
        self.db.executemany(upsert("meta", ("key", "value"), ("key",)), list(values.items()))

    def set_meta(self, values: Mapping[str, str]) -> None:
        with self.transaction():
            self._set_meta(values)

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())
