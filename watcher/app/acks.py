"""Acknowledging a firing alert: shared by ``watcher ack`` and the Telegram ``/ack``."""

from __future__ import annotations

from datetime import UTC, datetime

from watcher.core.alerts import FIRING, describe
from watcher.core.errors import ConfigError
from watcher.store import Store


def acknowledge(store: Store, rule: str, currency: str | None, account: str | None, by: str) -> str:
    """Ack every firing instance that matches; the reply line for a person."""
    firing = [
        a
        for a in store.load_alerts().values()
        if a.state == FIRING
        and a.rule == rule
        and (currency is None or a.currency == currency)
        and (account is None or a.account == account)
    ]
    if not firing:
        what = " ".join(x for x in (rule, currency, account) if x)
        raise ConfigError(f"nothing is firing for {what}; see watcher status")
    now = datetime.now(UTC)
    for alert in firing:
        store.add_ack(alert.key, by, now)
    names = ", ".join(describe(a.key) for a in firing)
    return f"acknowledged: {names}; no repeats until it resolves"
