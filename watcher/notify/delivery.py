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

import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.config.channels import Channel, url_key
from watcher.config.model import DEFAULT_CHANNEL
from watcher.core import logs
from watcher.core.alerts import Notice
from watcher.core.durations import format_duration
from watcher.notify.adapter import (
    FAILURE,
    INFO,
    SUCCESS,
    WARNING,
    Message,
    Service,
    masked,
    renders_markdown,
    send,
)
from watcher.notify.messages import Style, body_lines, title, worst_severity
from watcher.store import OutboxRow, Store

BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=15)
MAX_AGE = timedelta(hours=24)
BUDGET = 6.0  # seconds a delivery cycle waits for its URLs; slower ones finish on their own
MIN_ATTEMPTS = 12  # a message is only "too old" after this many real tries (clock jumps)
NOTIFY_TYPES = {"critical": FAILURE, "warning": WARNING, "info": INFO}
MAYBE_EXTRA = 2  # a send that may have arrived: its retry waits as if it had failed twice more
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
class DeliveryCounts:
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
        budget: float = BUDGET,
    ) -> None:
        self.store = store
        self.max_age = max_age
        self.name = name
        self.budget = budget
        self.services: dict[str, Service] = {}
        self.set_channels(channels)
        self.lock = threading.Lock()  # the scheduler and the stop flush may both call in
        self.write = threading.RLock()  # one connection, several sending threads
        self.in_flight: set[tuple[str, str]] = set()
        self.threads: list[threading.Thread] = []
        self.unrecorded: dict[tuple[str, str], tuple[list[int], datetime]] = {}
        self.disk_warned = False
        self.guard: Callable[[], bool] = lambda: True  # False: a pair's deposed leader

    def set_channels(self, channels: Mapping[str, Channel]) -> None:
        self.channels = dict(channels)
        self.urls = {(name, url_key(u)): u for name, ch in channels.items() for u in ch.urls}
        # one apprise object per URL, reused across sends and kept across reloads
        kept = self.services
        self.services = {u: kept.get(u) or Service(u) for u in self.urls.values()}

    def deliver(self, now: datetime) -> DeliveryCounts:
        with self.lock:
            return self._deliver(now)

    def _deliver(self, now: datetime) -> DeliveryCounts:
        """Plan under the lock, then one thread per URL: a receiver that drips its answer
        holds up only itself. Threads still running after ``budget`` are left to finish;
        their URLs are skipped until they do, so nothing is ever sent twice."""
        counts = DeliveryCounts()
        with self.write:  # threads of an earlier cycle may still be recording
            work = self.plan(now, counts)
        threads = []
        for key, rows in work:
            self.in_flight.add(key)
            thread = threading.Thread(
                target=self.send_group, args=(key, rows, now, counts), daemon=True
            )
            thread.start()
            threads.append(thread)
        deadline = time.monotonic() + self.budget
        self.threads = [t for t in self.threads if t.is_alive()] + threads
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return counts

    def wait_idle(self, timeout: float) -> bool:
        """Let sends still under way finish (a stop or a restart); True when none is left."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(t.is_alive() for t in self.threads)

    def plan(
        self, now: datetime, counts: DeliveryCounts
    ) -> list[tuple[tuple[str, str], list[OutboxRow]]]:
        """Which URLs get which rows this cycle, in decision order."""
        groups: dict[tuple[str, str], list[OutboxRow]] = defaultdict(list)
        for row in self.store.claim():
            groups[(row.channel, row.url_key)].append(row)
        work = []
        for key, rows in groups.items():
            if key not in self.urls:
                self.follow_channel(key, rows, counts)
                continue
            if key in self.in_flight or any(r.attempts and r.due and r.due > now for r in rows):
                continue  # still sending, or in backoff: newer rows wait behind the older ones
            ready = [r for r in rows if r.due is None or r.due <= now]
            ready = self.settle_unrecorded(key, ready)
            if ready:
                work.append((key, ready))
        return work

    def send_group(
        self, key: tuple[str, str], rows: list[OutboxRow], now: datetime, counts: DeliveryCounts
    ) -> None:
        try:
            self.deliver_group(key, rows, now, counts)
        except Exception:  # a plugin or the database: the rows stay, the next cycle retries
            log.exception("delivery to one URL failed", channel=key[0])
        finally:
            self.in_flight.discard(key)

    def settle_unrecorded(self, key: tuple[str, str], rows: list[OutboxRow]) -> list[OutboxRow]:
        """Rows sent but not yet deleted (a full disk): record them before anything new goes
        to that URL; while the database cannot be written, that URL gets nothing."""
        if key not in self.unrecorded:
            return rows
        sent, when = self.unrecorded[key]
        try:
            with self.write:
                self.store.delivered(sent, when)
        except sqlite3.Error:
            return []
        del self.unrecorded[key]
        self.disk_warned = False
        log.info("the state database is writable again; delivery resumes", channel=key[0])
        return [r for r in rows if r.id not in sent]

    def follow_channel(
        self, key: tuple[str, str], rows: list[OutboxRow], counts: DeliveryCounts
    ) -> None:
        """A URL that is no longer configured: its rows move to the channel's current URLs."""
        channel = self.channels.get(key[0])
        if channel is None:
            self.drop(key, rows, "the channel is no longer configured", counts)
            return
        self.store.move(rows, [url_key(u) for u in channel.urls])
        log.info("waiting notifications follow the channel's new URL", channel=key[0])

    def drop(
        self, key: tuple[str, str], rows: list[OutboxRow], reason: str, counts: DeliveryCounts
    ) -> None:
        """Give rows up, loudly: the one way a decided notification leaves unsent."""
        log.error("notifications dropped", channel=key[0], count=len(rows), reason=reason)
        with self.write:
            self.store.drop(r.id for r in rows)
            counts.dropped += len(rows)

    def deliver_group(
        self, key: tuple[str, str], rows: list[OutboxRow], now: datetime, counts: DeliveryCounts
    ) -> None:
        url = self.urls[key]
        expired = [r for r in rows if too_old(r, now, self.max_age)]
        if expired:
            self.drop(key, expired, "too old", counts)
            rows = [r for r in rows if r not in expired]
        if not rows or not self.guard():
            return  # the rows stay, for the leader
        service = self.services[url]
        sent = service.send(compose([r.notice for r in rows], self.name, renders_markdown(url)))
        with self.write:
            counts.messages += 1
            if sent.ok:
                self.record_sent(key, rows, url, counts, now)
                return
            # newer rows do not reset the backoff; a send that may have arrived waits longer
            attempts = max(r.attempts for r in rows) + (MAYBE_EXTRA if sent.maybe else 0)
            self.store.retry_later((r.id for r in rows), now + backoff(attempts), sent.error)
            counts.failed += len(rows)
            counts.errors.append(sent.error)
        log.warning(
            "notification may have arrived; will retry later"
            if sent.maybe
            else "notification failed; will retry",
            channel=key[0],
            url=service.privacy_url(),
            error=sent.error,
            retry_in=format_duration(backoff(attempts)),
        )

    def record_sent(
        self,
        key: tuple[str, str],
        rows: list[OutboxRow],
        url: str,
        counts: DeliveryCounts,
        now: datetime,
    ) -> None:
        """Delete what was sent; if the database refuses (disk full), remember it and hold
        that URL back rather than send the same message every cycle."""
        counts.sent += len(rows)
        try:
            if self.store.delivered((r.id for r in rows), now):
                self.warn_disk(
                    "the disk is full; this delivery was recorded in the space watcher "
                    "keeps in reserve"
                )
        except sqlite3.Error as exc:  # sent but not recorded: hold the URL back, never resend
            self.unrecorded[key] = ([r.id for r in rows], now)
            log.error("a sent notification could not be recorded", channel=key[0], error=str(exc))
            if "full" in str(exc) or "disk" in str(exc):
                self.warn_disk(exc)
            return
        shown = self.services[url].privacy_url()
        log.info("notification sent", channel=key[0], url=shown, alerts=len(rows))

    def busy(self) -> bool:
        """A send still waits on its receiver (apprise's worker threads would hold the
        interpreter's exit until it answers or times out)."""
        return any(thread.is_alive() for thread in self.threads)

    def state_writable(self) -> None:
        """The database took a write again: a later episode is announced again."""
        self.disk_warned = False

    def warn_disk(self, exc: Exception | str) -> None:
        """Once per episode, straight to ``default`` (the outbox is what cannot be written)."""
        if self.disk_warned:
            return
        self.disk_warned = True
        remedy = (
            "Check that PostgreSQL runs and answers"
            if "PostgreSQL" in str(exc)
            else "Free disk space on the server"
        )
        text = (
            f"watcher cannot write its state database ({exc}). It keeps polling, and holds "
            f"back messages it cannot record, so none is sent twice. {remedy}; delivery "
            "resumes by itself."
        )
        self.tell_default("state not writable", text)

    def tell_default(self, title: str, text: str) -> None:
        """Straight to ``default``'s URLs, past the outbox: for what the outbox cannot hold."""
        message = Message(f"watcher {self.name}: {title}", text, FAILURE, "critical")
        for url in self.channels.get(DEFAULT_CHANNEL, Channel("", ())).urls:
            (self.services.get(url) or Service(url)).send(message)


def test_channels(
    channels: Mapping[str, Channel], names: list[str], instance: str = ""
) -> list[tuple[str, str, bool]]:
    """Send a test message to each URL of the named channels: (channel, masked URL, ok).
    The title names the instance, as every message does: a phone that hears from two
    servers knows which one is set up."""
    results = []
    title = f"watcher {instance}: test message" if instance else "watcher: test message"
    for name in names:
        for url in channels[name].urls:
            text = f"This is a test from watcher for channel '{name}'. If you read it, it works."
            ok, _ = send(url, Message(title, text, INFO, "info"))
            results.append((name, masked(url), ok))
    return results
