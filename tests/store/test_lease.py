"""The lease and its fence, on a real PostgreSQL: who may write, and when.

The database's clock decides expiry; a test ends a lease by moving its expiry into
the past (what waiting would do), and moves the instance's own clock by hand.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from tests.notify.test_notify import notice
from tests.support.helpers import at
from tests.support.receivers import Receiver
from watcher.config.channels import Channel
from watcher.core.errors import Deposed
from watcher.notify.delivery import Deliverer, route
from watcher.store import Store
from watcher.store.lease import LOST, Lease, Takeover, holder

LENGTH = timedelta(seconds=15)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def expire(store: Store) -> None:
    """What 15 s without a renewal does."""
    store.db.execute("UPDATE lease SET expires = expires - 3600")


def test_one_leader_at_a_time_and_the_epoch_grows_with_each_takeover(pg_url: str) -> None:
    one, two = Lease(Store(pg_url), "vps-1", LENGTH), Lease(Store(pg_url), "vps-2", LENGTH)
    assert one.tick() == Takeover(1, None, None)
    assert two.tick() is None and not two.leading()
    assert one.tick() is None and one.leading()  # renewed
    expire(one.db)
    taken = two.tick()
    assert isinstance(taken, Takeover) and (taken.epoch, taken.previous) == (2, "vps-1")
    assert one.tick() == LOST and not one.leading()
    lead = holder(one.db)
    assert lead is not None and (lead.name, lead.epoch, lead.previous) == ("vps-2", 2, "vps-1")


def test_a_deposed_leader_cannot_commit_or_claim(pg_url: str) -> None:
    channels = {"default": Channel("default", ("json://127.0.0.1:9/x",))}
    store, standby = Store(pg_url), Lease(Store(pg_url), "vps-2", LENGTH)
    lease = Lease(store.sibling(), "vps-1", LENGTH)
    store.fence = lease.fence
    lease.tick()
    store.commit({}, route([notice()], channels, at(0)))  # leading: written
    assert len(store.claim()) == 1
    expire(store)
    standby.tick()  # a takeover while vps-1 was paused
    with pytest.raises(Deposed, match="another instance took over"):
        store.commit({}, route([notice("second")], channels, at(1)))
    with pytest.raises(Deposed):
        store.claim()
    assert [r.notice.rule for r in Store(pg_url).pending()] == ["low"]  # nothing new


def test_a_leader_whose_own_clock_ran_past_its_lease_stops_before_the_database_says_so(
    pg_url: str, receiver: Receiver
) -> None:
    clock = Clock()
    store = Store(pg_url)
    lease = Lease(store.sibling(), "vps-1", LENGTH, clock=clock)
    store.fence = lease.fence
    lease.tick()
    store.set_meta({"k": "1"})
    clock.now += 12.1  # 80% of the lease since the renewal began: no longer safe to act
    assert not lease.leading()
    with pytest.raises(Deposed, match="not renewed in time"):
        store.set_meta({"k": "2"})
    assert Store(pg_url).meta()["k"] == "1"
    # a send already planned checks once more, right before it goes out
    channels = {"default": Channel("default", (receiver.url(),))}
    queued = Store(pg_url)
    queued.commit({}, route([notice()], channels, at(0)))
    deliverer = Deliverer(queued, channels)
    deliverer.guard = lease.leading
    assert deliverer.deliver(at(0)).sent == 0 and receiver.posts == []
    assert len(queued.pending()) == 1  # kept, for the leader


def test_a_takeover_waits_for_the_leaders_open_transaction(pg_url: str) -> None:
    """The fence takes a share lock on the lease row: a takeover's update must wait for
    a commit already under way, so no decision lands after the new leader read the state."""
    store = Store(pg_url)
    lease = Lease(store.sibling(), "vps-1", LENGTH)
    store.fence = lease.fence
    standby = Lease(Store(pg_url), "vps-2", LENGTH)
    lease.tick()
    expire(standby.db)
    order = []
    with store.transaction():
        store._set_meta({"decided": "by vps-1"})
        taker = threading.Thread(target=lambda: order.append(("taken", standby.tick())))
        taker.start()
        time.sleep(0.3)  # the takeover is blocked on the row meanwhile
        order.append(("committed", None))
    taker.join(5)
    assert [what for what, _ in order] == ["committed", "taken"]
    assert isinstance(order[1][1], Takeover)


def test_released_on_a_clean_stop_the_standby_takes_over_at_its_next_look(pg_url: str) -> None:
    one, two = Lease(Store(pg_url), "vps-1", LENGTH), Lease(Store(pg_url), "vps-2", LENGTH)
    one.tick()
    assert two.tick() is None
    one.release()
    taken = two.tick()
    assert isinstance(taken, Takeover) and taken.previous == "vps-1"


def test_outbox_rows_claimed_by_one_connection_are_skipped_by_another(pg_url: str) -> None:
    channels = {"default": Channel("default", ("json://127.0.0.1:9/x",))}
    first, second = Store(pg_url), Store(pg_url)
    first.commit({}, route([notice()], channels, at(0)))
    with first.transaction():
        held = first._read_pending(" FOR UPDATE SKIP LOCKED")[0]
        assert len(held) == 1 and second.claim() == []  # SKIP LOCKED: not waited for
    assert len(second.claim()) == 1
