"""Evaluation and the alert lifecycle. Pure: no I/O, time is an argument.

inactive -> pending (condition true, ``for`` not yet elapsed) -> firing
(notify) -> repeat every ``repeat`` while true -> clear for longer than
``keep_firing_for`` -> resolved (notify if ``send_resolved``) -> inactive.
An evaluation that cannot know (no data) leaves the instance exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from watcher.config.expr import Compiled, NoData
from watcher.config.model import BUILTIN_RULES, DEFAULT_CHANNEL, Policy, Rule, RuleSet
from watcher.config.templates import TemplateError, render
from watcher.core.alerts import (  # re-exported: the engine's vocabulary
    FIRING,
    MAIN,
    PENDING,
    RESOLVED,
    Alert,
    Key,
    Notice,
    Outcome,
    Silence,
    Standing,
)
from watcher.core.models import UNKNOWN_TOTALS, Overview
from watcher.core.numbers import Shown, human
from watcher.core.positions import UNKNOWN_POSITIONS, Position, Readable, Summary
from watcher.core.times import shown as shown_at
from watcher.engine.builtins import Fact
from watcher.engine.lookback import History, Sample, record_history

Silenced = Callable[[str, str | None], bool]


def liquidation_line(position: Position, rule: Rule) -> str | None:
    """``BTC_USDT long 20x is 4.8% from liquidation (mark 61,200, liquidation 58,263)``: what
    a trader acts on, for a rule that reads the distance; other position rules keep the
    condition's own line."""
    if "liq_distance" not in rule.when.text or position.liq_distance is None:
        return None
    lever = f" {human(position.leverage)}x" if position.leverage else ""
    return (
        f"{position.instance}{lever} is {human(position.liq_distance, True)} from liquidation "
        f"(mark {human(position.mark)}, liquidation {human(position.liquidation)})"
    )


def never(rule: str, currency: str | None) -> bool:
    return False


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
        account: str = MAIN,
        label: str | None = None,
        acked: Silenced = never,
    ) -> None:
        self.now = now
        self.silenced = silenced
        self.acked = acked  # acknowledged: no repeats until it resolves
        self.account = account  # whose alerts this pass may change
        self.label = label  # the account as messages name it (None: a setup of one account)
        self.alerts: dict[Key, Alert] = dict(alerts)  # this pass's copy, changed in place
        self.outcome = Outcome(alerts=self.alerts)
        self.sources: dict[str, str] = {}  # rule name -> its `when`, for {when}
        self.compiled: dict[str, Rule] = {}  # rule name -> rule, to describe its notices
        self.by_rule: dict[str, list[Key]] = {}  # this account's instances, per rule

    def ended(self, alert: Alert) -> None:
        """A firing alert whose rule left the rules file: the phone heard it fire, so it
        hears it end, once, on ``default`` (the rule that named other channels is gone)."""
        if alert.state != FIRING or alert.last_notified is None:
            return
        text = "rule removed from the rules file"
        self.last_word(alert, "ended", alert.severity, (DEFAULT_CHANNEL,), text)

    def last_word(
        self, alert: Alert, kind: str, severity: str, channels: tuple[str, ...], text: str
    ) -> None:
        """The one line an alert gets when it ends for a reason outside its condition."""
        self.outcome.notices.append(
            Notice(
                rule=alert.rule,
                currency=alert.currency,
                kind=kind,
                severity=severity,
                channels=channels,
                value=None,
                threshold=None,
                since=alert.since,
                at=self.now,
                text=text,
                fired_at=alert.fired_at,
                account=self.label,
            )
        )

    def rules(self, rules: RuleSet, overview: Overview, history: History) -> None:
        history.now = self.now.timestamp()
        mine = rules.rules_for(self.account)
        self.sources = {rule.name: rule.when.text for rule in mine}
        self.compiled = {rule.name: rule for rule in mine}
        known = set(self.sources) | set(BUILTIN_RULES)
        gone = [k for k in self.alerts if k[0] == self.account and k[1] not in known]
        for key in gone:
            self.ended(self.alerts.pop(key))
            self.outcome.errors.append(f"rule {key[1]} is gone; its alert state was dropped")
        lookup = overview.balance
        totals, testnet = overview.totals or UNKNOWN_TOTALS, overview.is_testnet
        held = overview.positions
        summary = Summary(held) if held is not None else UNKNOWN_POSITIONS
        views = None if held is None else [(p, Readable(p)) for p in held]  # once a poll
        self.by_rule = {}
        if any(rule.per_position for rule in mine):
            for key in self.alerts:
                if key[0] == self.account:
                    self.by_rule.setdefault(key[1], []).append(key)
        for rule in mine:
            if rule.per_position:
                self.positions(rule, views, (totals, lookup, history, testnet, summary))
                continue
            if not rule.each:
                args = (totals, None, lookup, history, testnet, summary)
                self.instance(rule, None, args)
                continue
            for code in self.currencies(rule, overview):
                if overview.unknown(code):
                    continue  # an unreadable row: its instances keep their state
                args = (totals, lookup(code), lookup, history, testnet, summary)
                self.instance(rule, code, args)

    def positions(
        self, rule: Rule, held: list[tuple[Position, Readable]] | None, shared: tuple[Any, ...]
    ) -> None:
        """One instance per open position (``BTC_USDT long``); positions that could not be
        read keep their instances as they were, and a position that closed resolves its
        instance with a line that says so."""
        if held is None:
            return
        totals, lookup, history, testnet, summary = shared
        open_now = {}
        for position, view in held:
            if rule.currencies is not None and position.symbol not in rule.currencies:
                continue
            if position.symbol in rule.exclude:
                continue
            open_now[position.instance] = position
            args = (totals, view, lookup, history, testnet, summary)
            self.instance(rule, position.instance, args, position)
        for key in self.by_rule.get(rule.name, ()):
            if key[2] not in open_now and key in self.alerts:
                self.closed(key, rule)

    def closed(self, key: Key, rule: Rule) -> None:
        """The position is gone: its alert ends now, whatever ``keep_firing_for`` says."""
        alert = self.alerts.pop(key)
        policy = rule.policy
        self.outcome.standings.append(  # resolved, as any alert whose condition ended
            Standing(rule.name, key[2], RESOLVED, policy.severity, alert.since, alert.value,
                     alert.threshold, key[0])
        )  # fmt: skip
        if alert.state != FIRING or not policy.send_resolved:
            return
        self.last_word(alert, RESOLVED, policy.severity, policy.notify, "the position closed")

    def currencies(self, rule: Rule, overview: Overview) -> list[str]:
        if rule.currencies is not None:
            return list(rule.currencies)
        codes = set(overview.currencies or ())
        codes |= {
            c for (acct, name, c) in self.alerts if acct == self.account and name == rule.name and c
        }
        return sorted(codes - rule.exclude)

    def instance(
        self,
        rule: Rule,
        currency: str | None,
        args: tuple[Any, ...],
        position: Position | None = None,
    ) -> None:
        key = (self.account, rule.name, currency)
        alert = self.alerts.get(key)
        holds = run(rule.when.fn, *args)
        if alert is None and not holds:
            return  # the hot path: nothing pending, nothing true
        clears = None
        clear_values = None
        if alert is not None and alert.state == FIRING and rule.clear_when is not None:
            clears = run(rule.clear_when.fn, *args)
            clear_values = (
                run(rule.clear_when.value, *args),
                run(rule.clear_when.threshold, *args),
            )
        elif holds is not None:
            clears = not holds
        values = (run(rule.when.value, *args), run(rule.when.threshold, *args))
        self.step(
            key,
            holds,
            clears,
            rule.policy,
            values,
            rule.message,
            clear_values=clear_values,
            position=position,
        )

    def apply(self, fact: Fact) -> None:
        """A built-in alert's fact for this poll, through the same lifecycle as a rule."""
        self.step(fact.key, fact.holds, fact.clears, fact.policy, (None, None), text=fact.text)

    def step(
        self,
        key: Key,
        holds: bool | None,
        clears: bool | None,
        policy: Policy,
        values: tuple[Decimal | None, Decimal | None],
        template: str | None = None,
        text: str | None = None,
        clear_values: tuple[Decimal | None, Decimal | None] | None = None,
        position: Position | None = None,
    ) -> None:
        """Advance one instance and record what it decided (``text``: a built-in's line;
        ``clear_values``: what ``clear_when`` compared, shown when it resolves the alert;
        ``position``: the one a position rule's line describes, written only if a notice
        is made, never on the hot path of a poll that decides nothing)."""
        before = self.alerts.get(key)
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
            self.alerts[key] = after
        else:
            self.alerts.pop(key, None)
        shown = after or before
        if shown is None or (after is None and shown.state == PENDING):
            return  # a pending alert that stops holding goes back without a word
        cleared = kind == RESOLVED and clear_values is not None
        if cleared:
            assert clear_values is not None
            shown = replace(shown, value=clear_values[0], threshold=clear_values[1])
        elif kind == RESOLVED:
            shown = replace(shown, value=values[0] if values[0] is not None else shown.value)
        kind, after = self.mute(kind, after, before)
        if after is not None:
            self.alerts[key] = after
        state = RESOLVED if after is None else after.state
        rule = self.compiled.get(key[1])
        read = rule.clear_when if cleared and rule is not None else rule.when if rule else None
        self.outcome.standings.append(
            Standing(
                key[1],
                key[2],
                state,
                policy.severity,
                shown.since,
                shown.value,
                shown.threshold,
                key[0],
                percent=read.percent if read is not None else False,
            )
        )
        if kind and (kind != RESOLVED or policy.send_resolved):
            if kind == RESOLVED:  # "USDT spot is 5000, below 100" would read wrong: plain line
                template = text = None
            elif position is not None and (rule := self.compiled.get(key[1])) is not None:
                text = liquidation_line(position, rule)
            self.notice(shown, kind, policy, state, template, text, cleared)

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
        if kind == "repeat" and self.acked(alert.rule, alert.currency):
            return None, after  # someone said "on it": no repeats; its RESOLVED still goes
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
        cleared: bool = False,
    ) -> None:
        rule = self.compiled.get(alert.rule)
        shown = rule.clear_when if cleared and rule is not None else rule.when if rule else None
        if template:
            percent = shown.percent if shown else False
            values = {
                "value": Shown(alert.value, percent),
                "threshold": Shown(alert.threshold, percent),
                "rule": alert.rule,
                "currency": alert.currency or "",
                "severity": policy.severity,
                "state": state,
                "since": shown_at(alert.since, "%Y-%m-%d %H:%M:%S"),
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
                condition=shown.text if shown else None,
                percent=shown.percent if shown else False,
                windowed=bool(shown and shown.windowed),
                fired_at=alert.fired_at,
                cleared=cleared,
                account=self.label,
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
        alert = Alert(key[1], key[2], PENDING, since=now, account=key[0])
    alert = unwarp(alert, now)
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


def unwarp(alert: Alert, now: datetime) -> Alert:
    """After the clock stepped back, no time of an instance may lie in the future: a pending
    alert would wait hours for its ``for`` and a repeat would never come. Such times become
    ``now``."""
    times = ("since", "fired_at", "last_notified", "cleared_since")
    ahead = {name: now for name in times if (value := getattr(alert, name)) and value > now}
    return replace(alert, **ahead) if ahead else alert


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


def silenced_by(silences: Iterable[Silence], now: datetime, account: str = MAIN) -> Silenced:
    """The predicate ``Evaluation`` asks: is this account's instance muted right now?"""
    active = [s for s in silences if s.starts <= now < s.ends]
    return lambda rule, currency: any(s.covers(rule, currency, now, account) for s in active)


def evaluate_poll(
    rules: RuleSet,
    alerts: Mapping[Key, Alert],
    history: History,
    now: datetime,
    overview: Overview | None,
    facts: Iterable[Fact] = (),
    silenced: Silenced = never,
    account: str = MAIN,
    label: str | None = None,
    acked: Silenced = never,
) -> tuple[Outcome, list[Sample]]:
    """One account's poll, the one way: record history, evaluate its rules (if there is
    data), then the built-ins' facts. Used by the daemon, ``once``, ``replay`` and
    ``watcher test``; ``alerts`` holds every account's, and only this one's change."""
    evaluation = Evaluation(alerts, now, silenced, account, label, acked)
    samples: list[Sample] = []
    if overview is not None:
        samples = record_history(rules, overview, history)
        evaluation.rules(rules, overview, history)
    for fact in facts:
        evaluation.apply(fact)
    return evaluation.outcome, samples


__all__ = [
    "FIRING",
    "PENDING",
    "RESOLVED",
    "Alert",
    "Evaluation",
    "Key",
    "Notice",
    "Outcome",
    "Standing",
    "Silenced",
    "advance",
    "evaluate",
    "evaluate_poll",
    "run",
    "silenced_by",
]
