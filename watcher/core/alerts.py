"""The alert types every stage shares: instances, decided notices, reports, silences.

Pure data, no I/O: the engine makes them, the store keeps them, notify sends
them, and each imports them from here rather than from each other.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView
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


def per_account(alerts: Mapping[Key, Alert]) -> dict[str, dict[Key, Alert]]:
    """``{key: alert}`` grouped by the key's account."""
    grouped: dict[str, dict[Key, Alert]] = {}
    for key, alert in alerts.items():
        grouped.setdefault(key[0], {})[key] = alert
    return grouped


class AlertBook(Mapping[Key, Alert]):
    """Every account's alert instances, kept per account.

    One account's poll reads and replaces only that account's instances, so its cost
    does not grow with the number of accounts (a flat map was copied and walked whole on
    every poll: at 5,000 accounts that was most of the daemon's CPU). Each account's map
    is replaced, never changed in place, so a reader on another thread (metrics, the
    digest) sees one poll's instances or the next one's."""

    def __init__(self, alerts: Mapping[Key, Alert] | None = None) -> None:
        self._by: dict[str, Mapping[Key, Alert]] = {}
        self._firing: dict[str, int] = {}
        self.firing = 0  # instances firing, over every account: kept, never counted
        for account, mine in per_account(alerts or {}).items():
            self.replace(account, mine)

    def of(self, account: str) -> Mapping[Key, Alert]:
        """One account's instances (do not change them: ``replace`` does)."""
        return self._by.get(account, {})

    def replace(self, account: str, alerts: Mapping[Key, Alert]) -> None:
        firing = sum(1 for a in alerts.values() if a.state == FIRING)
        self.firing += firing - self._firing.get(account, 0)
        self._by[account], self._firing[account] = alerts, firing

    def overlay(self, changed: Mapping[str, Mapping[Key, Alert]]) -> AlertBook:
        """A copy with ``changed`` accounts replaced; this book stays as it was."""
        copy = AlertBook()
        copy._by, copy._firing, copy.firing = dict(self._by), dict(self._firing), self.firing
        for account, alerts in changed.items():
            copy.replace(account, alerts)
        return copy

    def snapshot(self) -> dict[Key, Alert]:
        """Every instance at one moment, for a reader on another thread: each account's
        map is taken whole, so a poll that replaces it meanwhile changes nothing here."""
        return {k: a for alerts in list(self._by.values()) for k, a in list(alerts.items())}

    def items(self) -> ItemsView[Key, Alert]:
        return self.snapshot().items()

    def values(self) -> ValuesView[Alert]:
        return self.snapshot().values()

    def __getitem__(self, key: Key) -> Alert:
        return self._by[key[0]][key]

    def __iter__(self) -> Iterator[Key]:
        for alerts in list(self._by.values()):
            yield from list(alerts)

    def __len__(self) -> int:
        return sum(len(alerts) for alerts in list(self._by.values()))


@dataclass
class Outcome:
    alerts: Mapping[Key, Alert]
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
