"""SQLite state: alert instances, balance history, the outbox, silences, poll facts.

One file in WAL mode. The evaluation's state change and the notifications it
decided are written in one transaction, so a crash can lose neither half:
after a restart an announced alert is not announced again, and a decided
notification is still waiting in the outbox. Each concern is a small mixin in
its own module; ``Store`` puts them on one connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from watcher.config.settings import Settings
from watcher.core.alerts import MAIN, Alert, Key, Notice
from watcher.core.errors import StoreError
from watcher.engine.lookback import Sample
from watcher.store import postgres
from watcher.store.alert_table import AlertTable
from watcher.store.db import SCHEMA_VERSION, Database, refused
from watcher.store.history_table import POLL_KEY, HistoryTable
from watcher.store.outbox import OutboxRow, OutboxTable, notice_from_json, notice_to_json
from watcher.store.silences import Ack, AckTable, SilenceTable

__all__ = [
    "Ack",
    "POLL_KEY",
    "SCHEMA_VERSION",
    "OutboxRow",
    "Store",
    "notice_from_json",
    "notice_to_json",
    "open_state",
    "shared",
]


class Store(Database, AlertTable, HistoryTable, OutboxTable, SilenceTable, AckTable):
    """The state database; every method is one short transaction."""

    def __init__(self, target: Path | str, password: str | None = None, name: str = "") -> None:
        super().__init__(target, password, name)
        self._saved: dict[str, Mapping[Key, Alert]] = {}
        self._last: dict[str, dict[str, Decimal]] = {}  # latest value, per account prefix

    @classmethod
    def snapshot(cls, target: Path | str, password: str | None = None, name: str = "") -> Store:
        """A copy of the state whose writes go nowhere: an in-memory copy of the SQLite
        file (or an empty one), or PostgreSQL whose every transaction is rolled back."""
        if postgres.is_url(target):
            store = cls(target, password, name)
            store.readonly = True
            return store
        store = cls(":memory:")
        if Path(target).exists():
            try:
                source = sqlite3.connect(f"file:{Path(target).absolute()}?mode=ro", uri=True)
                source.backup(store.db)
                source.close()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the state database {target}: {exc}") from None
        return store

    def sibling(self) -> Store:
        """Another connection to the same database, for delivery threads beside the poll
        (an in-memory snapshot, which nothing delivers from, is its own sibling)."""
        if str(self.target) == ":memory:":
            return self
        twin = Store(self.target, self.password, self.name)
        twin.readonly, twin.fence = self.readonly, self.fence
        return twin

    def forget(self) -> None:
        """Drop what this connection remembers of the tables (another instance wrote them
        meanwhile: a takeover); the next reads start from the database."""
        self._saved, self._last = {}, {}

    def announce(
        self, outbox: Iterable[tuple[str, str, Notice, datetime]], meta: Mapping[str, str]
    ) -> None:
        """A message that no alert decided (a rejected reload), queued with its marker."""
        with self.transaction():
            self._queue(outbox)
            self._set_meta(meta)

    def commit(
        self,
        alerts: Mapping[str, Mapping[Key, Alert]],
        outbox: Iterable[tuple[str, str, Notice, datetime]] = (),
        samples: Iterable[Sample] | Mapping[str, list[Sample]] = (),
        meta: Mapping[str, str] | None = None,
        prune_before: datetime | None = None,
        absent_is_zero: Callable[[str], bool] | Mapping[str, Callable[[str], bool]] = (
            lambda key: False
        ),
        forget: Iterable[str] = (),
    ) -> None:
        """Alert states, decided notifications, history and poll facts: all or nothing.
        ``alerts`` holds, per account this poll evaluated, all its instances (an account
        left out keeps its rows, unread). ``samples`` and ``absent_is_zero`` are per
        account (a plain list: ``main``); each account in ``samples``, and each one in
        ``forget`` (gone from the rules file), forgets its history before
        ``prune_before``."""
        by_account = samples if isinstance(samples, Mapping) else {MAIN: list(samples)}
        try:
            with self.transaction():
                self._write_alerts(alerts)
                self._end_acks(alerts)
                self._queue(outbox)
                for account, polled in by_account.items():
                    zero = absent_is_zero if callable(absent_is_zero) else absent_is_zero[account]
                    self._write_samples(account, list(polled), zero)
                if prune_before is not None:
                    for account in [*by_account, *forget]:
                        self._prune(account, prune_before)
                if meta:
                    self._set_meta(meta)
        except sqlite3.Error as exc:
            self._last = {}  # what the rolled-back samples changed is read anew
            raise refused(self.path, exc) from None
        self._saved.update(alerts)


def open_state(settings: Settings, snapshot: bool = False) -> Store:
    """The configured state: its file, or PostgreSQL with the password from the settings
    (``snapshot``: a copy whose writes go nowhere)."""
    secret = settings.state_password
    password = secret.get_secret_value() if secret else None
    opener = Store.snapshot if snapshot else Store
    return opener(settings.state, password, settings.name)


def shared(settings: Settings) -> bool:
    """True when the state is PostgreSQL, which several instances share (a pair)."""
    return postgres.is_url(settings.state)
