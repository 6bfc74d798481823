"""Delivery through apprise: routing into the outbox, grouping, retries.

Every decided notification becomes one outbox row per (channel, URL) in the
same transaction as the alert state change. Delivery then works per URL: the
due rows of one URL go out as one grouped message; success deletes exactly
those rows, failure reschedules exactly those rows. A dead Slack therefore
never blocks Telegram, and a URL that succeeded is never sent to again.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher import logs
from watcher.alerts import FIRING, RESOLVED, Notice
from watcher.channels import Channel, url_key
from watcher.services import FAILURE, INFO, SUCCESS, WARNING, masked, secrets_of, send
from watcher.store import OutboxRow, Store
from watcher.table import brief

BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=15)
MAX_AGE = timedelta(hours=24)
WORDS = {FIRING: "FIRING", "repeat": "STILL FIRING", RESOLVED: "RESOLVED"}
NOTIFY_TYPES = {"critical": FAILURE, "warning": WARNING, "info": INFO}
log = logs.get("watcher.notify")


# --- routing and grouping -----------------------------------------------------


def route(
    notices: Iterable[Notice], channels: Mapping[str, Channel], now: datetime
) -> list[tuple[str, str, Notice, datetime]]:
    """Outbox rows for each (channel, URL); quiet hours hold non-critical ones."""
    rows = []
    for notice in notices:
        for name in notice.channels:
            channel = channels.get(name)
            if channel is None:
                log.error("notification for an unknown channel dropped", channel=name)
                continue
            due = now
            if channel.quiet_hours and notice.severity != "critical":
                due = channel.quiet_hours.release(now) or now
            rows += [(name, url_key(url), notice, due) for url in channel.urls]
    return rows


def line(notice: Notice) -> str:
    """One alert, one line: the rule's rendered message or the default form."""
    if notice.text:
        return f"{WORDS[notice.kind]}: {notice.text}"
    who = f"{notice.rule} {notice.currency}" if notice.currency else notice.rule
    parts = [f"{WORDS[notice.kind]} {who}"]
    if notice.value is not None:
        parts.append(f"value {brief(notice.value)}")
    if notice.threshold is not None:
        parts.append(f"threshold {brief(notice.threshold)}")
    parts.append("since " + notice.since.strftime("%Y-%m-%d %H:%M:%S UTC"))
    return ", ".join(parts)


def compose(notices: list[Notice]) -> tuple[str, str, str]:
    """(title, body, notify_type) for a group of notices bound for one URL."""
    counts: dict[str, int] = defaultdict(int)
    for notice in notices:
        counts[WORDS[notice.kind].lower()] += 1
    summary = ", ".join(f"{n} {word}" for word, n in counts.items())
    body = "\n".join(line(n) for n in notices)
    active = [n.severity for n in notices if n.kind != RESOLVED]
    if not active:
        kind = SUCCESS
    else:
        worst = min(active, key=("critical", "warning", "info").index)
        kind = NOTIFY_TYPES[worst]
    return f"watcher: {summary}", body, kind


# --- delivery -----------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    messages: int = 0
    errors: list[str] = field(default_factory=list)


def backoff(attempts: int) -> timedelta:
    """30 s doubling to 15 min."""
    return min(BACKOFF_FIRST * (2 ** min(attempts, 10)), BACKOFF_MAX)


class Deliverer:
    """Sends due outbox rows, grouped per URL, and records the result."""

    def __init__(
        self, store: Store, channels: Mapping[str, Channel], max_age: timedelta = MAX_AGE
    ) -> None:
        self.store = store
        self.max_age = max_age
        self.set_channels(channels)
        self.lock = threading.Lock()  # the scheduler and the stop flush may both call in

    def set_channels(self, channels: Mapping[str, Channel]) -> None:
        self.urls = {(name, url_key(u)): u for name, ch in channels.items() for u in ch.urls}
        for url in self.urls.values():
            for secret in secrets_of(url):
                logs.MASKER.add(secret)

    def deliver(self, now: datetime) -> DeliveryReport:
        with self.lock:
            return self._deliver(now)

    def _deliver(self, now: datetime) -> DeliveryReport:
        report = DeliveryReport()
        groups: dict[tuple[str, str], list[OutboxRow]] = defaultdict(list)
        for row in self.store.due(now):
            groups[(row.channel, row.url_key)].append(row)
        for key, rows in groups.items():
            self.deliver_group(key, rows, now, report)
        return report

    def deliver_group(
        self, key: tuple[str, str], rows: list[OutboxRow], now: datetime, report: DeliveryReport
    ) -> None:
        url = self.urls.get(key)
        expired = [r for r in rows if now - r.created > self.max_age]
        if url is None or expired:
            gone = rows if url is None else expired
            why = "its channel URL is no longer configured" if url is None else "too old"
            log.error("notifications dropped", channel=key[0], count=len(gone), reason=why)
            self.store.drop(r.id for r in gone)
            report.dropped += len(gone)
            rows = [] if url is None else [r for r in rows if r not in expired]
        if not rows:
            return
        title, body, kind = compose([r.notice for r in rows])
        ok, error = send(url or "", title, body, kind)
        report.messages += 1
        if ok:
            self.store.delivered(r.id for r in rows)
            report.sent += len(rows)
            log.info("notification sent", channel=key[0], url=masked(url or ""), alerts=len(rows))
            return
        attempts = min(r.attempts for r in rows)
        self.store.retry_later((r.id for r in rows), now + backoff(attempts), error)
        report.failed += len(rows)
        report.errors.append(error)
        log.warning(
            "notification failed; will retry",
            channel=key[0],
            url=masked(url or ""),
            error=error,
            retry_in=str(backoff(attempts)),
        )


def test_channels(channels: Mapping[str, Channel], names: list[str]) -> list[tuple[str, str, bool]]:
    """Send a test message to each URL of the named channels: (channel, masked URL, ok)."""
    results = []
    for name in names:
        for url in channels[name].urls:
            ok, _ = send(
                url,
                "watcher: test message",
                f"This is a test from watcher for channel '{name}'. If you read it, it works.",
                INFO,
            )
            results.append((name, masked(url), ok))
    return results
