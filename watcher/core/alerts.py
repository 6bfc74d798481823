"""The alert types every stage shares: instances, decided notices, reports, silences.

Pure data, no I/O: the engine makes them, the store keeps them, notify sends
them, and each imports them from here rather than from each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

Key = tuple[str, str, str | None]  # (account, rule, currency)
PENDING, FIRING, RESOLVED = "pending", "firing", "resolved"
MAIN = "main"  # the account of a setup without an `accounts:` section


def describe(key: Key) -> str:
    """An instance as a person names it: ``low USDT (main)``, the same in every reply."""
    account, rule, currency = key
    return " ".join(x for x in (rule, currency, f"({account})") if x)


@dataclass(frozen=True)
class Alert:
    """One alert instance (rule, currency) as stored between evaluations."""

    rule: str
    currency: str | None
    state: str
    since: datetime
    fired_at: datetime | None = None
    last_notified: datetime | None = None
    cleared_since: datetime | None = None
    value: Decimal | None = None
    threshold: Decimal | None = None
    muted: bool = False  # a notification was held back by a silence: announce when it ends
    severity: str = "warning"
    account: str = MAIN

    @property
    def key(self) -> Key:
        return (self.account, self.rule, self.currency)


@dataclass(frozen=True)
class Notice:
    """A decided notification, before routing and grouping."""

    rule: str
    currency: str | None
    kind: str  # firing | repeat | resolved
    severity: str
    channels: tuple[str, ...]
    value: Decimal | None
    threshold: Decimal | None
    since: datetime
    at: datetime
    text: str | None = None  # a rendered template or a built-in's line
    condition: str | None = None  # the rule's `when` (its `clear_when` on a hysteresis resolve)
    percent: bool = False  # value and threshold are shares: show them as %
    windowed: bool = False  # change()/delta(): a resolve means "no longer true"
    fired_at: datetime | None = None  # when it started firing, for "after 12m"
    cleared: bool = False  # resolved because `clear_when` held
    account: str | None = None  # shown in the message; None for a setup of one account


@dataclass(frozen=True)
class Standing:
    """An instance that is pending, firing, or resolved in this evaluation."""

    rule: str
    currency: str | None
    state: str
    severity: str
    since: datetime
    value: Decimal | None
    threshold: Decimal | None
    account: str = MAIN
    percent: bool = False  # value and threshold are shares: shown as % where people read


@dataclass
class Outcome:
    alerts: dict[Key, Alert]
    notices: list[Notice] = field(default_factory=list)
    standings: list[Standing] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Silence:
    id: int
    rule: str
    currency: str | None
    starts: datetime
    ends: datetime
    comment: str
    account: str | None = None  # None: every account

    def covers(self, rule: str, currency: str | None, now: datetime, account: str = MAIN) -> bool:
        if not self.starts <= now < self.ends or self.rule != rule:
            return False
        if self.account is not None and self.account != account:
            return False
        return self.currency is None or self.currency == currency
