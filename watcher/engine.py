"""Evaluation and the alert lifecycle. Pure: no I/O, time is an argument.

inactive -> pending (condition true, ``for`` not yet elapsed) -> firing
(notify) -> repeat every ``repeat`` while true -> clear for longer than
``keep_firing_for`` -> resolved (notify if ``send_resolved``) -> inactive.
An evaluation that cannot know (no data) leaves the instance exactly as it was.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from watcher.expr import Compiled, NoData
from watcher.models import Overview
from watcher.rules import BUILTIN_RULES, Policy, Rule, RuleSet
from watcher.templates import TemplateError, render

Key = tuple[str, str | None]
PENDING, FIRING, RESOLVED = "pending", "firing", "resolved"


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

    @property
    def key(self) -> Key:
        return (self.rule, self.currency)


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
    text: str | None = None


@dataclass(frozen=True)
class Report:
    """An instance that is pending, firing, or resolved in this evaluation."""

    rule: str
    currency: str | None
    state: str
    severity: str
    since: datetime
    value: Decimal | None
    threshold: Decimal | None


@dataclass
class Outcome:
    alerts: dict[Key, Alert]
    notices: list[Notice] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


Silenced = Callable[[str, str | None], bool]


def never(rule: str, currency: str | None) -> bool:
    return False


# --- history ------------------------------------------------------------------


class History:
    """Balance samples per series key (``BTC.total``, ``ACCOUNT.spot``), time-ordered."""

    def __init__(self) -> None:
        self._times: dict[str, list[float]] = {}
        self._values: dict[str, list[Decimal]] = {}
        self.now = 0.0

    def record(self, key: str, at: datetime, value: Decimal) -> None:
        stamp = at.timestamp()
        times = self._times.setdefault(key, [])
        values = self._values.setdefault(key, [])
        if times and stamp <= times[-1]:
            if stamp == times[-1]:
                values[-1] = value
            return
        times.append(stamp)
        values.append(value)

    def prune(self, before: datetime) -> None:
        cut = before.timestamp()
        for key, times in self._times.items():
            index = bisect.bisect_left(times, cut)
            if index:
                del times[:index]
                del self._values[key][:index]

    def keys(self) -> Iterable[str]:
        return self._times.keys()

    def value_ago(self, key: str, seconds: float) -> Decimal:
        """The value ``seconds`` before ``now``: the last sample at or before then.

        A sample older than twice the window does not stand for "then" (the
        daemon was down): that is no data.
        """
        times = self._times.get(key)
        target = self.now - seconds
        if not times:
            raise NoData(key)
        index = bisect.bisect_right(times, target + 1e-6) - 1
        if index < 0 or times[index] < target - seconds:
            raise NoData(key)
        return self._values[key][index]

    def change(self, key: str, seconds: float, current: Decimal) -> Decimal:
        old = self.value_ago(key, seconds)
        if not old:
            raise NoData(key)
        return (current - old) / old

    def delta(self, key: str, seconds: float, current: Decimal) -> Decimal:
        return current - self.value_ago(key, seconds)


# --- evaluation ---------------------------------------------------------------


def run(compiled: Compiled | Callable[..., Any] | None, *args: Any) -> Any:
    """Evaluate; division by zero or missing history is ``None`` (no data)."""
    fn = compiled.fn if isinstance(compiled, Compiled) else compiled
    if fn is None:
        return None
    try:
        return fn(*args)
    except (ArithmeticError, NoData):
        return None


class Evaluation:
    """One pass over the rules for one overview; builds an ``Outcome``."""

    def __init__(
        self,
        alerts: Mapping[Key, Alert],
        now: datetime,
        silenced: Silenced = never,
    ) -> None:
        self.now = now
        self.silenced = silenced
        self.outcome = Outcome(alerts=dict(alerts))
        self.sources: dict[str, str] = {}  # rule name -> its `when`, for {when}

    def rules(self, rules: RuleSet, overview: Overview, history: History) -> None:
        history.now = self.now.timestamp()
        self.sources = {rule.name: rule.when.text for rule in rules.rules}
        known = set(self.sources) | set(BUILTIN_RULES)
        for key in [k for k in self.outcome.alerts if k[0] not in known]:
            del self.outcome.alerts[key]
            self.outcome.errors.append(f"rule {key[0]} is gone; its alert state was dropped")
        lookup = overview.balance
        totals, testnet = overview.totals, overview.is_testnet
        for rule in rules.rules:
            if not rule.each:
                args = (totals, None, lookup, history, testnet)
                self.instance(rule, None, args)
                continue
            for code in self.currencies(rule, overview):
                if overview.unknown(code):
                    continue  # an unreadable row: its instances keep their state
                args = (totals, lookup(code), lookup, history, testnet)
                self.instance(rule, code, args)

    def currencies(self, rule: Rule, overview: Overview) -> list[str]:
        if rule.currencies is not None:
            return list(rule.currencies)
        codes = set(overview.currencies or ())
        codes |= {c for (name, c) in self.outcome.alerts if name == rule.name and c}
        return sorted(codes - rule.exclude)

    def instance(self, rule: Rule, currency: str | None, args: tuple[Any, ...]) -> None:
        key = (rule.name, currency)
        alert = self.outcome.alerts.get(key)
        holds = run(rule.when.fn, *args)
        if alert is None and not holds:
            return  # the hot path: nothing pending, nothing true
        clears = None
        if alert is not None and alert.state == FIRING and rule.clear_when is not None:
            clears = run(rule.clear_when.fn, *args)
        elif holds is not None:
            clears = not holds
        values = (run(rule.when.value, *args), run(rule.when.threshold, *args))
        self.step(key, holds, clears, rule.policy, values, rule.message)

    def step(
        self,
        key: Key,
        holds: bool | None,
        clears: bool | None,
        policy: Policy,
        values: tuple[Decimal | None, Decimal | None],
        template: str | None = None,
        text: str | None = None,
    ) -> None:
        """Advance one instance and record what it decided (``text``: a built-in's line)."""
        before = self.outcome.alerts.get(key)
        after, kind = advance(before, holds, clears, policy, self.now, key)
        if after is not None:
            value, threshold = values
            value = after.value if value is None else value
            threshold = after.threshold if threshold is None else threshold
            if (value, threshold, policy.severity) != (
                after.value,
                after.threshold,
                after.severity,
            ):
                after = replace(after, severity=policy.severity, value=value, threshold=threshold)
            self.outcome.alerts[key] = after
        else:
            self.outcome.alerts.pop(key, None)
        shown = after or before
        if shown is None or (after is None and shown.state == PENDING):
            return  # a pending alert that stops holding goes back without a word
        if kind == RESOLVED:
            shown = replace(shown, value=values[0] if values[0] is not None else shown.value)
        kind, after = self.mute(kind, after, before)
        if after is not None:
            self.outcome.alerts[key] = after
        state = RESOLVED if after is None else after.state
        self.outcome.reports.append(
            Report(
                key[0], key[1], state, policy.severity, shown.since, shown.value, shown.threshold
            )
        )
        if kind and (kind != RESOLVED or policy.send_resolved):
            if kind == RESOLVED:  # "USDT spot is 5000, below 100" would read wrong: plain line
                template = text = None
            self.notice(shown, kind, policy, state, template, text)

    def mute(
        self, kind: str | None, after: Alert | None, before: Alert | None
    ) -> tuple[str | None, Alert | None]:
        """Apply silences: hold back notices, and announce once when a silence ends."""
        alert = after or before
        assert alert is not None
        if self.silenced(alert.rule, alert.currency):
            if kind in (FIRING, "repeat") and after is not None:
                return None, replace(after, muted=True)
            return None, after
        if kind == RESOLVED and before is not None and before.muted:
            return None, after  # its firing was never announced
        if after is not None and after.muted and after.state == FIRING:
            return FIRING, replace(after, muted=False, last_notified=self.now)
        return kind, after

    def notice(
        self,
        alert: Alert,
        kind: str,
        policy: Policy,
        state: str,
        template: str | None,
        text: str | None,
    ) -> None:
        if template:
            values = {
                "value": alert.value,
                "threshold": alert.threshold,
                "rule": alert.rule,
                "currency": alert.currency or "",
                "severity": policy.severity,
                "state": state,
                "since": alert.since.strftime("%Y-%m-%d %H:%M:%S UTC"),
                "when": self.sources.get(alert.rule, ""),
            }
            try:
                text = render(template, values)
            except TemplateError as exc:
                self.outcome.errors.append(f"rule {alert.rule}: {exc}; sent the default line")
        self.outcome.notices.append(
            Notice(
                rule=alert.rule,
                currency=alert.currency,
                kind=kind,
                severity=policy.severity,
                channels=policy.notify,
                value=alert.value,
                threshold=alert.threshold,
                since=alert.since,
                at=self.now,
                text=text,
            )
        )


def advance(
    alert: Alert | None,
    holds: bool | None,
    clears: bool | None,
    policy: Policy,
    now: datetime,
    key: Key,
) -> tuple[Alert | None, str | None]:
    """The lifecycle as one function: (instance, facts, now) -> (instance, notice kind)."""
    if alert is None:
        if not holds:
            return None, None
        alert = Alert(key[0], key[1], PENDING, since=now)
    if alert.state == PENDING:
        if holds is None:
            return alert, None
        if not holds:
            return None, None
        if now - alert.since >= policy.for_:
            return replace(alert, state=FIRING, fired_at=now, last_notified=now), FIRING
        return alert, None
    if clears is None:
        return alert, None
    if clears:
        cleared = alert.cleared_since or now
        if now - cleared >= policy.keep_firing_for:
            return None, RESOLVED
        return replace(alert, cleared_since=cleared), None
    if alert.cleared_since is not None:
        alert = replace(alert, cleared_since=None)
    last = alert.last_notified or alert.fired_at or now
    if policy.repeat and now - last >= policy.repeat:
        return replace(alert, last_notified=now), "repeat"
    return alert, None


def evaluate(
    rules: RuleSet,
    overview: Overview,
    alerts: Mapping[Key, Alert],
    history: History,
    now: datetime,
    silenced: Silenced = never,
) -> Outcome:
    """Evaluate every rule against one overview at ``now``."""
    evaluation = Evaluation(alerts, now, silenced)
    evaluation.rules(rules, overview, history)
    return evaluation.outcome


def watched_series(series: set[tuple[str, str]]) -> Callable[[str], bool]:
    """Whether a sample key (``BTC.total``) is one that ``change``/``delta`` look back on."""
    exact = {f"{code}.{name}" for code, name in series if code != "*"}
    each = {name for code, name in series if code == "*"}
    return lambda key: key in exact or key.rpartition(".")[2] in each


def record_history(rules: RuleSet, overview: Overview, history: History) -> list[Sample]:
    """Samples of every series the rules read (stored for replay); the ones that
    ``change``/``delta`` look back on also go into the in-memory ``history``."""
    at = overview.fetched_at
    samples: list[Sample] = []
    rows = overview.currencies
    for code, name in rules.needs.reads | rules.needs.series:
        if code == "ACCOUNT":
            if overview.totals is not None:
                samples.append((f"ACCOUNT.{name}", at, getattr(overview.totals, name)))
        elif code == "*":
            samples += [
                (f"{row.currency}.{name}", at, getattr(row, name)) for row in (rows or {}).values()
            ]
        elif rows is not None and not overview.unknown(code):
            samples.append((f"{code}.{name}", at, getattr(overview.balance(code), name)))
    wanted = watched_series(rules.needs.series)
    for key, stamp, value in samples:
        if wanted(key):
            history.record(key, stamp, value)
    if rules.history_keep:
        history.prune(at - rules.history_keep)
    return samples


Sample = tuple[str, datetime, Decimal]


def absent_is_zero(rules: RuleSet, overview: Overview | None) -> Callable[[str], bool]:
    """Which stored series a poll speaks for when it has no sample of them.

    A currency absent from rows actually fetched holds nothing: zero. A series
    the rules no longer read, an unreadable row, or totals say nothing.
    """
    if overview is None or overview.currencies is None or not overview.complete:
        return lambda key: False
    read = watched_series(rules.needs.reads | rules.needs.series)
    nodata = overview.nodata
    return lambda key: (
        not key.startswith("ACCOUNT.") and read(key) and key.partition(".")[0] not in nodata
    )
