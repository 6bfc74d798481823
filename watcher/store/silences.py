"""Silences: a rule (or one currency's instance) muted until a time."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from watcher.alerts import Silence
from watcher.store.db import stamp


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
                "VALUES (?,?,?,?,?,?)",
                (
                    rule,
                    currency,
                    starts.timestamp(),
                    (starts + length).timestamp(),
                    comment,
                    account,
                ),
            )
            return int(cursor.lastrowid or 0)

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
