"""One leader among the instances that share a PostgreSQL state: a lease row.

The row names the holder, its epoch and when the lease expires, in the database's
clock (the machines' clocks never need to agree). The leader renews it every third of
its length; a standby takes it once it has expired, with the epoch one higher. Every
write of the leader first checks, in the same transaction, that the row still carries
its token and epoch (``fence``, under a share lock that a takeover must wait for): a
leader paused past its lease (SIGSTOP, a long GC, a cut network) cannot commit, nor
claim a message to send, once a standby took over. Locally the leader also stops
acting a fifth of a lease before the database would let a standby in.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.core.errors import Deposed
from watcher.store.db import Database, stamp

NOW = "extract(epoch from clock_timestamp())"
SAFE_SHARE = 0.8  # of a lease, from the start of its renewal, that the leader acts on
LOST = "lost"


@dataclass(frozen=True)
class Holder:
    """The lease as the database has it: for ``status``, ``/metrics`` and the takeover."""

    name: str
    epoch: int
    expires: datetime
    renewed: datetime
    previous: str | None
    previous_expired: datetime | None
    now: datetime  # the database's clock when read

    @property
    def age(self) -> timedelta:
        return self.now - self.renewed

    @property
    def expired(self) -> bool:
        return self.expires <= self.now


@dataclass(frozen=True)
class Takeover:
    """This instance became the leader: from whom, and when that lease ran out."""

    epoch: int
    previous: str | None
    expired: datetime | None


def holder(db: Database) -> Holder | None:
    """Who leads, as the database says, or None before any instance ran."""
    row = db.db.execute(
        "SELECT holder, epoch, expires, renewed, previous, previous_expired, "
        f"{NOW} FROM lease WHERE name = 'leader'"
    ).fetchone()
    if row is None:
        return None
    name, epoch, expires, renewed, previous, previous_expired, now = row
    was = stamp(previous_expired) if previous_expired is not None else None
    return Holder(name, epoch, stamp(expires), stamp(renewed), previous, was, stamp(float(now)))


class Lease:
    """This instance's side of the lease, on a connection of its own."""

    def __init__(
        self,
        db: Database,
        node: str,
        length: timedelta,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.node = node
        self.length = length.total_seconds()
        self.token = secrets.token_hex(8)  # a restarted instance of one name is another
        self.epoch: int | None = None
        self.deadline = 0.0
        self.clock = clock

    @property
    def every(self) -> float:
        """How often to renew (or, as a standby, to look)."""
        return max(self.length / 3, 0.5)

    def leading(self) -> bool:
        return self.epoch is not None and self.clock() < self.deadline

    def tick(self) -> Takeover | str | None:
        """Renew as the leader, take over an expired lease as a standby: a ``Takeover``
        when this instance just became the leader, ``LOST`` when it led and no longer
        does, None when nothing changed. A database error propagates (sqlite3.Error)."""
        started = self.clock()
        if self.epoch is not None:
            renewed = self.db.db.execute(
                f"UPDATE lease SET expires = {NOW} + ?, renewed = {NOW} "
                "WHERE name = 'leader' AND token = ? AND epoch = ? RETURNING epoch",
                (self.length, self.token, self.epoch),
            ).fetchone()
            if renewed is None:
                self.epoch = None
                return LOST
            self.deadline = started + self.length * SAFE_SHARE
            return None
        taken = self.take()
        if taken is not None:
            self.epoch, self.deadline = taken.epoch, started + self.length * SAFE_SHARE
        return taken

    def take(self) -> Takeover | None:
        with self.db.transaction(fenced=False):
            row = self.db.db.execute(
                f"SELECT holder, epoch, expires, {NOW} FROM lease WHERE name = 'leader' FOR UPDATE"
            ).fetchone()
            if row is None:
                made = self.db.db.execute(
                    "INSERT INTO lease (name, holder, token, epoch, expires, renewed) "
                    f"VALUES ('leader', ?, ?, 1, {NOW} + ?, {NOW}) "
                    "ON CONFLICT (name) DO NOTHING RETURNING epoch",
                    (self.node, self.token, self.length),
                ).fetchone()
                return Takeover(1, None, None) if made else None
            previous, _, expires, now = row
            if expires > now:
                return None
            epoch = self.db.db.execute(
                f"UPDATE lease SET holder = ?, token = ?, epoch = epoch + 1, "
                f"expires = {NOW} + ?, renewed = {NOW}, previous = holder, "
                "previous_expired = expires WHERE name = 'leader' RETURNING epoch",
                (self.node, self.token, self.length),
            ).fetchone()[0]
            return Takeover(int(epoch), previous, stamp(expires))

    def fence(self, db: Database) -> None:
        """Inside a write transaction: refuse it unless this instance still leads."""
        if not self.leading():
            raise Deposed(f"{self.node} no longer holds the lease (it was not renewed in time)")
        row = db.db.execute(
            "SELECT token, epoch FROM lease WHERE name = 'leader' FOR SHARE"
        ).fetchone()
        if row is None or row[0] != self.token or row[1] != self.epoch:
            self.epoch = None
            raise Deposed(f"{self.node} no longer holds the lease (another instance took over)")

    def release(self) -> None:
        """A clean stop: the lease ends now, so a standby takes over at its next look."""
        if self.epoch is None:
            return
        self.db.db.execute(
            f"UPDATE lease SET expires = {NOW} WHERE name = 'leader' AND token = ? AND epoch = ?",
            (self.token, self.epoch),
        )
        self.epoch = None
