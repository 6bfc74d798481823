"""The daily digest: one message a day, so that silence means something.

Pure: the facts come in (balances, 24 h ago, alerts, silences, outbox, key),
the text goes out. When it is due is ``due_day``: the local date of the last
``at`` that has passed, compared with the last day a digest was queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from watcher.config.model import Digest
from watcher.core.alerts import FIRING, MAIN, Alert, Silence
from watcher.core.durations import format_duration
from watcher.core.models import Overview
from watcher.core.numbers import human
from watcher.core.times import shown
from watcher.engine.builtins import expiry

LATE_AFTER = timedelta(hours=1)  # queued later than this after `at`: marked late
TOP = 5


@dataclass(frozen=True)
class Book:
    """One account's balances for the digest (``name`` None: a setup of one account)."""

    name: str | None
    overview: Overview | None
    error: str | None = None
    total_24h_ago: Decimal | None = None
    web_key_expires: datetime | None = None


@dataclass(frozen=True)
class Facts:
    """Everything the digest says, gathered by the caller."""

    name: str
    now: datetime
    books: tuple[Book, ...] = ()
    alerts: tuple[Alert, ...] = ()
    silences: tuple[Silence, ...] = ()
    outbox: int = 0
    oldest: datetime | None = None
    acks: tuple[str, ...] = field(default_factory=tuple)


def scheduled(spec: Digest, now: datetime) -> datetime:
    """The latest moment at or before ``now`` when a digest was due."""
    zone = ZoneInfo(spec.timezone)
    local = now.astimezone(zone)
    today = local.replace(hour=spec.at.hour, minute=spec.at.minute, second=0, microsecond=0)
    return today if today <= local else today - timedelta(days=1)


def due_day(spec: Digest, now: datetime, last: str | None) -> date | None:
    """The day whose digest should be queued now, or None when it already was."""
    day = scheduled(spec, now).date()
    if last is not None and last >= day.isoformat():
        return None
    return day


def compose(spec: Digest, facts: Facts, on_schedule: bool = False) -> str:
    """The digest's text, one fact a line. Only a digest sent on its schedule can be
    late (watcher was down at ``at``); a preview or one asked for now never is."""
    when = scheduled(spec, facts.now)
    late = on_schedule and facts.now - when > LATE_AFTER
    head = f"Daily digest for {when:%Y-%m-%d %H:%M} {spec.timezone}"
    if late:
        head += f" (late: watcher was not running then; sent {shown(facts.now)})"
    if any(b.overview is not None and b.overview.quote is None for b in facts.books):
        head += " (amounts as the exchange converts them)"  # MEXC does not name the unit
    lines = [head]
    for book in facts.books:
        lines += balances(book, facts.now)
    firing = [a for a in facts.alerts if a.state == FIRING]
    if firing:
        parts = [
            f"{who(a)} for {format_duration(facts.now - (a.fired_at or a.since))}" for a in firing
        ]
        lines.append("Firing: " + "; ".join(sorted(parts)))
    else:
        lines.append("All clear: nothing is firing.")
    if facts.silences:
        muted = [
            f"{s.rule}{' ' + s.currency if s.currency else ''} until {shown(s.ends)}"
            for s in facts.silences
        ]
        lines.append("Silenced: " + "; ".join(muted))
    if facts.acks:
        lines.append("Acknowledged: " + "; ".join(facts.acks))
    lines.append(outbox_line(facts))
    for book in facts.books:
        if book.web_key_expires is not None:
            lines.append(f"Web key{whose(book)}: {expiry(book.web_key_expires, facts.now)}")
    return "\n".join(lines)


def whose(book: Book) -> str:
    return f" ({book.name})" if book.name else ""


def who(alert: Alert) -> str:
    name = f"{alert.rule} {alert.currency}" if alert.currency else alert.rule
    return name if alert.account == MAIN else f"{name} ({alert.account})"


def balances(book: Book, now: datetime) -> list[str]:
    overview = book.overview
    if overview is None:
        return [f"Balances{whose(book)}: not readable right now ({book.error or 'no answer'})"]
    lines = []
    if overview.totals is not None:
        total = overview.totals.total
        unit = f" {overview.quote}" if overview.quote else ""
        line = f"Account total{whose(book)}: {human(total)}{unit}"
        old = book.total_24h_ago
        if old:
            line += f" ({'+' if total >= old else ''}{human((total - old) / old, True)} in 24 h)"
        else:
            line += " (no value from 24 h ago yet)"
        lines.append(line)
    lines += positions_line(book)
    rows = sorted((overview.currencies or {}).values(), key=lambda r: r.total, reverse=True)[:TOP]
    if rows:
        unit = f" {overview.quote}" if overview.quote else ""
        held = ", ".join(f"{r.currency} {human(r.total)}{unit}" for r in rows)
        lines.append(f"Largest holdings{whose(book)}: {held}")
    return lines


def positions_line(book: Book) -> list[str]:
    """``Positions: 2 open, nearest to liquidation BTC_USDT long at 4.6%``, when read."""
    held = book.overview.positions if book.overview is not None else None
    if held is None:
        return []
    if not held:
        return [f"Positions{whose(book)}: none open"]
    known = [p for p in held if p.liq_distance is not None]
    line = f"Positions{whose(book)}: {len(held)} open"
    if known:
        near = min(known, key=lambda p: p.liq_distance or 0)
        line += f", nearest to liquidation {near.instance} at {human(near.liq_distance, True)}"
    return [line]


def outbox_line(facts: Facts) -> str:
    if not facts.outbox:
        return "Outbox: empty, every message was delivered."
    age = format_duration(facts.now - facts.oldest) if facts.oldest else "?"
    return f"Outbox: {facts.outbox} waiting, the oldest for {age}."
