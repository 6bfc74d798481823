"""Alert instances between polls: written only when they changed."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from watcher.core import logs
from watcher.core.alerts import FIRING, PENDING, Alert, Key, per_account
from watcher.store.db import iso, parse_time, upsert

_ALERT_COLUMNS = (
    "rule, currency, state, since, fired_at, last_notified, cleared_since, value, threshold, "
    "muted, severity, account"
)


ALERT_UPSERT = upsert("alerts", _ALERT_COLUMNS.split(", "), ("account", "rule", "currency"))


def _alert(row: tuple[Any, ...]) -> Alert:
    rule, currency, state, since, fired, notified, cleared, value, threshold, muted, sev, acct = row
    if state not in STATES or sev not in SEVERITIES or not isinstance(rule, str):
        raise ValueError(f"state {state!r}")
    return Alert(
        rule=rule,
        currency=currency or None,
        state=state,
        since=datetime.fromisoformat(since),
        fired_at=parse_time(fired),
        last_notified=parse_time(notified),
        cleared_since=parse_time(cleared),
        value=Decimal(value) if value is not None else None,
        threshold=Decimal(threshold) if threshold is not None else None,
        muted=bool(muted),
        severity=sev,
        account=str(acct),
    )


STATES = (PENDING, FIRING)
SEVERITIES = ("info", "warning", "critical")
log = logs.get("watcher.store")


class AlertTable:
    """Mixin for ``Store``: load the instances, write the ones a poll changed."""

    db: sqlite3.Connection
    _saved: dict[str, Mapping[Key, Alert]]  # per account: its instances as last written

    def load_alerts(self) -> dict[Key, Alert]:
        """Every readable instance; a row someone edited into nonsense is left out, logged
        once, and rewritten by the next poll (its alert starts again from scratch)."""
        rows = self.db.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts").fetchall()
        alerts = {}
        for row in rows:
            try:
                alert = _alert(row)
            except (ValueError, TypeError, ArithmeticError):
                log.error(
                    "an alert row in the state database is unreadable; left out",
                    rule=str(row[0])[:64],
                )
                continue
            alerts[alert.key] = alert
        self._saved = dict(per_account(alerts))
        return alerts

    def _write_alerts(self, changed: Mapping[str, Mapping[Key, Alert]]) -> None:
        """Each account in ``changed`` with all its instances: what left is deleted, what
        differs is written; accounts left out are not looked at."""
        for account, alerts in changed.items():
            self._write_account(self._saved.get(account, {}), alerts)

    def _write_account(self, before: Mapping[Key, Alert], alerts: Mapping[Key, Alert]) -> None:
        for key in [k for k in before if k not in alerts]:
            self.db.execute(
                "DELETE FROM alerts WHERE account=? AND rule=? AND currency=?",
                (key[0], key[1], key[2] or ""),
            )
        for key, alert in alerts.items():
            saved = before.get(key)
            if saved is alert or saved == alert:  # the same object: no field compared
                continue
            self.db.execute(
                ALERT_UPSERT,
                (
                    alert.rule,
                    alert.currency or "",
                    alert.state,
                    alert.since.isoformat(),
                    iso(alert.fired_at),
                    iso(alert.last_notified),
                    iso(alert.cleared_since),
                    None if alert.value is None else str(alert.value),
                    None if alert.threshold is None else str(alert.threshold),
                    int(alert.muted),
                    alert.severity,
                    alert.account,
                ),
            )
