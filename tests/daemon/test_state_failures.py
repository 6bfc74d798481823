"""Second adversarial round, findings 2 and 7: the state database failing at run time,
with ``watcher run`` as a process, the simulator and real receivers.

- A full disk: ``default`` hears it once, straight; alerts are decided in memory and sent
  in order when the disk takes writes again (one that cleared meanwhile too); heartbeat
  success pings stop while nothing can be kept.
- A damaged or deleted database: unhealthy, ``default`` told, a non-zero exit with one
  line, so that systemd restarts watcher and start-up names the damage.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from tests.support.daemon_harness import DaemonProcess, wait_for
from tests.support.pings import PingServer
from watcher.sim.receiver import Receiver, fill_disk

RULES = 'channels:\n  default: "{url}"\n{extra}rules:\n  - name: low\n    when: USDT.spot < 100\n'


def test_a_full_disk_is_told_once_and_nothing_decided_meanwhile_is_lost(
    tmp_path: Path, small_disk: Path, sim, receiver: Receiver
) -> None:
    pings = PingServer()
    beat = f'heartbeat:\n  - {{url: "{pings.url("/ping/hc")}", every: 1s, style: healthchecks}}\n'
    rules = RULES.format(url=receiver.url(), extra=beat)
    daemon = DaemonProcess(tmp_path, sim, rules, WATCHER_STATE=str(small_disk / "w.db"))
    try:
        daemon.start()
        wait_for(lambda: ("/ping/hc") in [p for _, p in pings.hits], what="a success ping")
        filler = fill_disk(small_disk)
        sim.set_coin("USDT", "1", spot="50")  # fires while nothing can be written
        wait_for(lambda: receiver.posts, what="the straight warning")
        assert receiver.posts[0]["title"] == "watcher vps-1: state not writable"
        wait_for(lambda: pings.hits[-1][1] == "/ping/hc/fail", what="the failure ping")
        sim.set_coin("USDT", "1", spot="1500")  # and clears, still in memory
        polls = sim.served
        wait_for(lambda: sim.served >= polls + 2, what="two more polls on a full disk")
        assert len(receiver.posts) == 1
        filler.unlink()
        wait_for(lambda: len(receiver.posts) >= 2, timeout=20, what="what was held")
        said = " ".join(post["message"] for post in receiver.posts[1:])
        assert "low" in said and 0 <= said.index("FIRING") < said.index("RESOLVED"), said
        assert sum("state not writable" in p["title"] for p in receiver.posts) == 1
        assert "the state is writable again" in daemon.output()
        assert daemon.stop()[0] == 0
    finally:
        daemon.close()
        pings.stop()


def damage(path: Path) -> None:
    """Grow the file past its first pages (another connection), then overwrite them."""
    other = sqlite3.connect(path)
    with other:
        other.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [(f"pad{i}", "x" * 2000) for i in range(100)],
        )
    other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    other.close()
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(8192)
        handle.write(os.urandom(size - 8192))


@pytest.mark.parametrize("how", ["damaged", "deleted"])
def test_a_database_damaged_or_deleted_at_run_time_stops_with_one_line(
    tmp_path: Path, sim, receiver: Receiver, how: str
) -> None:
    daemon = DaemonProcess(tmp_path, sim, RULES.format(url=receiver.url(), extra=""))
    state = tmp_path / "w.db"
    try:
        daemon.start()
        wait_for(lambda: "watcher started" in daemon.output(), what="start")
        wait_for(lambda: sim.served >= 2, what="polls")
        if how == "deleted":
            for name in ("w.db", "w.db-wal", "w.db-shm"):
                (tmp_path / name).unlink(missing_ok=True)
        else:
            damage(state)
        code = daemon.process.wait(timeout=30)
        assert code == 2
        last = daemon.output().strip().splitlines()[-1]
        reason = "was deleted or replaced" if how == "deleted" else "disk image is malformed"
        assert last.startswith("watcher: the state database") and reason in last
        wait_for(lambda: receiver.posts, what="default told")
        assert receiver.posts[0]["title"] == "watcher vps-1: state database unusable"
    finally:
        daemon.close()
