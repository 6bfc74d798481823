"""Silences: a rule (or one currency's instance) muted until a time."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from watcher.core.alerts import FIRING, Alert, Key, Silence
from watcher.store.db import stamp, upsert

ACK_KEY = ("account", "rule", "currency")


class SilenceTable:
    """Mixin for ``Store``: add, list and remove silences."""

    db: sqlite3.Connection

    def add_silence(
        self,
        rule: str,
        currency: str | None,
        starts: datetime,
        length: timedelta,
        comment: str,
        account: str | None = None,
    ) -> int:
        """``account`` None: the rule is silenced on every account."""
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO silences (rule, currency, starts, ends, comment, account) "
                "VALUES (?,?,?,?,?,?) RETURNING id",
                (
                    rule,
                    currency,
                    starts.timestamp(),
                    (starts + length).timestamp(),
                    comment,
                    account,
                ),
            )
            return int(cursor.fetchone()[0])

    def silences(self, now: datetime | None = None) -> list[Silence]:
        query = "SELECT id, rule, currency, starts, ends, comment, account FROM silences"
        params: tuple[Any, ...] = ()
        if now is not None:
            query += " WHERE ends > ?"
            params = (now.timestamp(),)
        return [
            Silence(i, rule, cur, stamp(s), stamp(e), comment, acct)
            for i, rule, cur, s, e, comment, acct in self.db.execute(query + " ORDER BY id", params)
        ]

    def remove_silence(self, silence_id: int) -> bool:
        with self.transaction():
            cursor = self.db.execute("DELETE FROM silences WHERE id=?", (silence_id,))
            return cursor.rowcount > 0


@dataclass(frozen=True)
class Ack:
    """Someone took a firing alert in hand: no repeats until it resolves."""

    account: str
    rule: str
    currency: str | None
    by: str
    at: datetime

    @property
    def key(self) -> Key:
        return (self.account, self.rule, self.currency)


class AckTable:
    """Mixin for ``Store``: acknowledgements, next to silences."""

    db: sqlite3.Connection

    def add_ack(self, key: tuple[str, str, str | None], by: str, at: datetime) -> None:
        with self.transaction():  # type: ignore[attr-defined]
            self.db.execute(
                upsert("acks", ("account", "rule", "currency", "by", "at"), ACK_KEY),
                (key[0], key[1], key[2] or "", by[:64], at.timestamp()),
            )

    def acks(self) -> list[Ack]:
        rows = self.db.execute("SELECT account, rule, currency, by, at FROM acks ORDER BY at")
        return [Ack(a, r, c or None, by, stamp(t)) for a, r, c, by, t in rows]

    def _end_acks(self, changed: Mapping[str, Mapping[Key, Alert]]) -> None:
        """An ack ends when its alert resolves (inside the poll's transaction): only an
        account this poll evaluated can have resolved one."""
        for ack in self.acks():
            if ack.account not in changed:
                continue
            alert = changed[ack.account].get(ack.key)
            if alert is None or alert.state != FIRING:
                self.db.execute(
                    "DELETE FROM acks WHERE account=? AND rule=? AND currency=?",
                    (ack.account, ack.rule, ack.currency or ""),
                )
