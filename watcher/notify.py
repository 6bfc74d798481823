"""Delivery: routing into the outbox, ordering, grouping per URL, retries.

Every decided notification becomes one outbox row per (channel, URL) in the
same transaction as the alert state change. Delivery then works per URL, in
decision order: the waiting rows of one URL go out as one message, and a URL
in backoff holds its newer rows behind the older ones, so nothing overtakes
and the last word about an alert is its state now. Several waiting notices
about one alert collapse into its history on one line. Success deletes
exactly those rows, failure reschedules exactly those rows. A dead Slack
therefore never blocks Telegram, and a URL that succeeded is never sent to
again. Rows whose URL was edited follow their channel to its current URLs.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher import logs
from watcher.alerts import Notice
from watcher.channels import Channel, url_key
from watcher.messages import Style, body_lines, title, worst_severity
from watcher.services import (
    FAILURE,
    INFO,
    SUCCESS,
    WARNING,
    Message,
    masked,
    renders_markdown,
    secrets_of,
    send,
)
from watcher.store import OutboxRow, Store

BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=15)
MAX_AGE = timedelta(hours=24)
MIN_ATTEMPTS = 12  # a message is only "too old" after this many real tries (clock jumps)
NOTIFY_TYPES = {"critical": FAILURE, "warning": WARNING, "info": INFO}
log = logs.get("watcher.notify")


# --- routing and composing ----------------------------------------------------


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


def compose(notices: list[Notice], name: str = "", markdown: bool = False) -> Message:
    """One message for a group of notices bound for one URL."""
    worst = worst_severity(notices)
    kind = NOTIFY_TYPES[worst] if worst else SUCCESS
    plain = "\n".join(body_lines(notices, Style(markdown=False)))
    rich = "\n".join(body_lines(notices, Style(markdown=True))) if markdown else None
    return Message(title(notices, name), plain, kind, worst or "resolved", rich)


# --- delivery -----------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    messages: int = 0
    errors: list[str] = field(default_factory=list)


def too_old(row: OutboxRow, now: datetime, max_age: timedelta) -> bool:
    """Old by the clock and by tries: a day's forward clock jump (a VM resume, an NTP step)
    alone never drops a message that was never even tried."""
    return now - row.created > max_age and row.attempts >= MIN_ATTEMPTS


def backoff(attempts: int) -> timedelta:
    """30 s doubling to 15 min."""
    return min(BACKOFF_FIRST * (2 ** min(attempts, 10)), BACKOFF_MAX)


class Deliverer:
    """Sends waiting outbox rows, in order and grouped per URL, and records the result."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        max_age: timedelta = MAX_AGE,
        name: str = "",
    ) -> None:
        self.store = store
        self.max_age = max_age
        self.name = name
        self.set_channels(channels)
        self.lock = threading.Lock()  # the scheduler and the stop flush may both call in

    def set_channels(self, channels: Mapping[str, Channel]) -> None:
        self.channels = dict(channels)
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
        for row in self.store.pending():
            groups[(row.channel, row.url_key)].append(row)
        for key, rows in groups.items():
            if key not in self.urls:
                self.follow_channel(key, rows, report)
                continue
            if any(r.attempts and r.due and r.due > now for r in rows):
                continue  # in backoff: newer rows wait behind the older ones
            ready = [r for r in rows if r.due is None or r.due <= now]
            if ready:
                self.deliver_group(key, ready, now, report)
        return report

    def follow_channel(
        self, key: tuple[str, str], rows: list[OutboxRow], report: DeliveryReport
    ) -> None:
        """A URL that is no longer configured: its rows move to the channel's current URLs."""
        channel = self.channels.get(key[0])
        if channel is None:
            log.error(
                "notifications dropped",
                channel=key[0],
                count=len(rows),
                reason="the channel is no longer configured",
            )
            self.store.drop(r.id for r in rows)
            report.dropped += len(rows)
            return
        self.store.move(rows, [url_key(u) for u in channel.urls])
        log.info("waiting notifications follow the channel's new URL", channel=key[0])

    def deliver_group(
        self, key: tuple[str, str], rows: list[OutboxRow], now: datetime, report: DeliveryReport
    ) -> None:
        url = self.urls[key]
        expired = [r for r in rows if too_old(r, now, self.max_age)]
        if expired:
            log.error("notifications dropped", channel=key[0], count=len(expired), reason="too old")
            self.store.drop(r.id for r in expired)
            report.dropped += len(expired)
            rows = [r for r in rows if r not in expired]
        if not rows:
            return
        message = compose([r.notice for r in rows], self.name, renders_markdown(url))
        ok, error = send(url, message)
        report.messages += 1
        if ok:
            self.store.delivered(r.id for r in rows)
            report.sent += len(rows)
            log.info("notification sent", channel=key[0], url=masked(url), alerts=len(rows))
            return
        attempts = max(r.attempts for r in rows)  # newer rows do not reset the backoff
        self.store.retry_later((r.id for r in rows), now + backoff(attempts), error)
        report.failed += len(rows)
        report.errors.append(error)
        log.warning(
            "notification failed; will retry",
            channel=key[0],
            url=masked(url),
            error=error,
            retry_in=str(backoff(attempts)),
        )


def test_channels(channels: Mapping[str, Channel], names: list[str]) -> list[tuple[str, str, bool]]:
    """Send a test message to each URL of the named channels: (channel, masked URL, ok)."""
    results = []
    for name in names:
        for url in channels[name].urls:
            text = f"This is a test from watcher for channel '{name}'. If you read it, it works."
            ok, _ = send(url, Message("watcher: test message", text, INFO, "info"))
            results.append((name, masked(url), ok))
    return results
