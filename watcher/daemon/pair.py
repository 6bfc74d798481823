"""The daemon's side of an active/standby pair on one PostgreSQL state.

Only the leader polls, evaluates, delivers, sends the digest and runs the Telegram
bot; a standby renews nothing but looks at the lease every third of its length and
takes it once it has expired. Taking over re-reads the whole state from the database
(the old leader wrote it until the end), tells ``default`` who took over from whom,
and polls at once. Stepping down (the lease was lost, a write was refused by the
fence) stops the bot and leaves everything else to the new leader.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from watcher.app.poll import Watcher
from watcher.config.model import DEFAULT_CHANNEL
from watcher.core import logs
from watcher.core.alerts import Notice
from watcher.core.durations import utcnow
from watcher.core.times import shown
from watcher.notify.delivery import route
from watcher.store.lease import LOST, Lease, Takeover

if TYPE_CHECKING:
    from watcher.daemon.service import Daemon

log = logs.get("watcher.daemon")
LEADER, STANDBY = "leader", "standby"


def takeover_line(node: str, taken: Takeover) -> str:
    """``vps-2 took over from vps-1 (lease expired 14:03 UTC)``."""
    when = f" (lease expired {shown(taken.expired, '%H:%M')})" if taken.expired else ""
    return f"{node} took over from {taken.previous}{when}"


class Pair:
    def __init__(self, daemon: Daemon, lease: Lease) -> None:
        self.daemon = daemon
        self.lease = lease
        self.role = STANDBY
        self.seen: float | None = None  # monotonic time of the last look that reached it
        self.unreachable = False  # ``default`` was told, this episode

    def leading(self) -> bool:
        return self.role == LEADER and self.lease.leading()

    def healthy(self) -> bool:
        """A standby is healthy while it reaches the database and could take over."""
        return self.seen is not None and time.monotonic() - self.seen < 3 * self.lease.every

    def tick(self) -> None:
        """The lease job: renew, or look and take over."""
        try:
            change = self.lease.tick()
        except sqlite3.Error as exc:
            self.cannot_reach(exc)
            return
        self.seen = time.monotonic()
        if self.unreachable:
            log.info("the state database answers again", node=self.lease.node)
            self.unreachable = False
            self.daemon.watcher.deliverer.state_writable()  # a later outage is told again
        if isinstance(change, Takeover):
            self.take_over(change)
        elif change == LOST:
            self.step_down("another instance holds the lease")
        elif self.role == STANDBY:
            self.ping("")
        self.observe()

    def take_over(self, taken: Takeover) -> None:
        """Lead from the state as the database has it now."""
        daemon, now = self.daemon, utcnow()
        with daemon.cycle:
            daemon.store.forget()
            old = daemon.watcher
            daemon.watcher = Watcher.open(
                daemon.settings, old.rules, daemon.store, deliverer=old.deliverer
            )
            self.role = LEADER
            if taken.previous and taken.previous != self.lease.node:
                self.announce(takeover_line(self.lease.node, taken), taken.epoch, now)
        log.info("leading", node=self.lease.node, epoch=taken.epoch, previous=taken.previous)
        daemon.start_bot(daemon.watcher.rules)
        daemon.poll_now()
        daemon.wake_delivery()

    def announce(self, text: str, epoch: int, now: object) -> None:
        notice = Notice(
            "lease", f"epoch {epoch}", "takeover", "warning", (DEFAULT_CHANNEL,), None, None,
            now, now, text,
        )  # fmt: skip
        watcher = self.daemon.watcher
        watcher.store.announce(route([notice], watcher.rules.channels, now), {})  # type: ignore[list-item]

    def step_down(self, reason: str) -> None:
        """No longer the leader: say so once, stop the bot; the jobs see ``leading()``."""
        if self.role != LEADER:
            return
        self.role = STANDBY
        self.lease.epoch = None
        log.warning("stepped down: another instance leads now", node=self.lease.node, reason=reason)
        self.daemon.stop_bot()
        self.observe()

    def cannot_reach(self, exc: Exception) -> None:
        """PostgreSQL is out of reach: a leader stops acting when its lease runs out; each
        instance tells ``default`` once, directly (the outbox is in that database)."""
        if self.role == LEADER and not self.lease.leading():
            self.step_down("the lease could not be renewed")
        self.ping(f"the state database cannot be reached: {exc}")
        if self.unreachable:
            return
        self.unreachable = True
        log.error("the state database cannot be reached", node=self.lease.node, error=str(exc))
        deliverer = self.daemon.watcher.deliverer
        if deliverer.disk_warned:
            return  # a failed commit already told default, in the same episode
        deliverer.disk_warned = True  # and a failed commit will not tell it again
        deliverer.tell_default(
            "state database unreachable",
            f"{self.lease.node} cannot reach its state database ({exc}). While it is out of "
            "reach, no alert is evaluated or sent by this instance. Check that PostgreSQL "
            "runs and that this server reaches it; watcher resumes by itself.",
        )

    def ping(self, error: str) -> None:
        """A standby pings its own heartbeat: it is alive, and reaches the database."""
        if self.role == LEADER:
            return
        pinger, now = self.daemon.pinger, utcnow()
        pinger.ping(pinger.due(now, None if error else now, error))

    def observe(self) -> None:
        metrics = self.daemon.metrics
        if metrics is not None:
            metrics.leader.set(1 if self.leading() else 0)
            metrics.epoch.set(self.lease.epoch or 0)
