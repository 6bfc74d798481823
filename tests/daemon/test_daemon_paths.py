"""The daemon's failure paths: crashes in a poll or a delivery, a wedged poll, a stuck stop."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

from tests.conftest import WEB_KEY
from tests.daemon.test_daemon import RULES
from tests.support.daemon_harness import DaemonProcess, wait_for
from tests.support.helpers import at, ruleset
from tests.support.receivers import Receiver
from watcher.app.poll import Watcher
from watcher.config.settings import Settings
from watcher.core.errors import PollCrashed
from watcher.daemon.build import build
from watcher.daemon.service import Daemon
from watcher.daemon.systemd import Notifier
from watcher.sim.exchange import SimExchange
from watcher.store import Store


class Exploding:
    """A source whose fetch raises what no source foresaw (a deep answer, a bad key byte)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def fetch(self, rows: bool, totals: bool):
        raise self.exc

    def close(self) -> None: ...

    def describe(self) -> str:
        return "exploding"


def test_whatever_a_fetch_raises_is_a_failed_poll(tmp_path: Path) -> None:
    clock = [at(0)]
    settings = Settings(web_key=WEB_KEY, state=tmp_path / "w.db")
    rules = ruleset("  - name: low\n    when: USDT.spot < 100\n")
    for exc in (
        RecursionError("deep"),
        UnicodeEncodeError("latin-1", "…", 0, 1, "x"),
        MemoryError(),
        OverflowError("date"),
    ):
        store = Store(tmp_path / f"{type(exc).__name__}.db")
        w = Watcher.open(settings, rules, store, source=Exploding(exc), clock=lambda: clock[0])
        first = w.poll()
        assert isinstance(first.error, PollCrashed) and type(exc).__name__ in str(first.error)
        clock[0] += timedelta(minutes=6)
        later = w.poll()
        assert [n.rule for n in later.outcome.notices] == ["exchange-unreachable"]
        clock[0] = at(0)


def daemon_for(tmp_path: Path, sim: SimExchange, receiver: Receiver, **extra) -> Daemon:
    (tmp_path / "rules.yaml").write_text(RULES.format(url=receiver.url()))
    settings = Settings(
        web_key=WEB_KEY,
        mexc_url=sim.mexc_url,
        rules=tmp_path / "rules.yaml",
        state=tmp_path / "w.db",
        interval="1s",
        timeout="1s",
        **extra,
    )
    return build(settings)


def test_a_poll_that_crashes_is_logged_and_the_next_one_runs(tmp_path, sim, receiver) -> None:
    from watcher.daemon.metrics import Metrics

    daemon = daemon_for(tmp_path, sim, receiver)
    daemon.metrics = Metrics()
    daemon.poll_job()
    assert b'watcher_polls_total{account="main",result="ok"} 1.0' in daemon.metrics.render()
    daemon.store.db.close()  # the database goes away under the poll
    daemon.poll_job()
    assert b'watcher_polls_total{account="main",result="crashed"} 1.0' in daemon.metrics.render()
    daemon.store = daemon.watcher.store = Store(tmp_path / "w.db")
    daemon.poll_job()
    assert b'watcher_polls_total{account="main",result="ok"} 2.0' in daemon.metrics.render()


def test_a_delivery_that_crashes_keeps_the_outbox(tmp_path, sim, receiver) -> None:
    daemon = daemon_for(tmp_path, sim, receiver)
    sim.set_coin("USDT", "1", spot="50")
    daemon.poll_job()
    delivery = daemon.watcher.deliverer.store
    delivery.db.close()
    daemon.deliver_job()  # logged, not raised
    assert receiver.posts == [] and daemon.store.outbox_depth() == 1
    daemon.watcher.deliverer.store = Store(tmp_path / "w.db")
    daemon.deliver_job()
    assert len(receiver.posts) == 1 and daemon.store.outbox_depth() == 0


def test_a_reload_can_add_a_digest_and_keeps_the_heartbeat_count(tmp_path, sim, receiver):
    """SIGHUP is how rules change under systemd: a digest added then must be checked for,
    and the heartbeat failure counter (a Prometheus counter) must not start again at 0."""
    daemon = daemon_for(tmp_path, sim, receiver)
    daemon.schedule()
    base = RULES.format(url=receiver.url())
    beat = "heartbeat: {url: 'http://127.0.0.1:9/ping', every: 1s}\n"
    (tmp_path / "rules.yaml").write_text(base.replace("rules:\n", beat + "rules:\n"))
    daemon.reload_job()
    daemon.poll_job()  # the ping to port 9 fails
    wait_for(lambda: daemon.pinger.failures == 1, timeout=10, what="the failed ping")
    digest = "digest: {at: '08:00'}\n"
    (tmp_path / "rules.yaml").write_text(base.replace("rules:\n", beat + digest + "rules:\n"))
    daemon.reload_job()
    assert daemon.pinger.failures == 1 and daemon.scheduler.get_job("digest") is not None
    daemon.digest_job()
    assert "digest_last" in daemon.store.meta()  # counted from the next 08:00, as at a start


def test_the_watchdog_withholds_its_ping_while_a_poll_is_wedged(tmp_path, sim, receiver) -> None:
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(0.3)
    daemon = daemon_for(tmp_path, sim, receiver)
    daemon.notifier = Notifier(str(path))
    try:
        daemon.watchdog_job()
        assert listener.recv(100) == b"WATCHDOG=1"
        daemon.heartbeat = time.monotonic() - 3600  # the running poll began an hour ago
        daemon.watchdog_job()
        try:
            listener.recv(100)
            raise AssertionError("pinged while the poll was wedged")
        except TimeoutError:
            pass
        daemon.poll_job()  # progress again
        assert listener.recv(100).startswith(b"STATUS=0 firing, last poll")
        daemon.watchdog_job()
        assert listener.recv(100) == b"WATCHDOG=1"
    finally:
        listener.close()


def test_a_stuck_delivery_cannot_hold_the_stop_past_its_budget(tmp_path, sim) -> None:
    """A receiver that accepts and never answers: SIGTERM still ends the process in time."""
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    url = f"json://127.0.0.1:{hang.getsockname()[1]}/hook"
    daemon = DaemonProcess(tmp_path, sim, RULES.format(url=url))
    try:
        sim.set_coin("USDT", "1", spot="50")
        daemon.start()
        wait_for(lambda: '"alert"' in daemon.output(), what="a decided notification")
        time.sleep(0.5)  # the delivery is now waiting on the silent receiver
        code, took = daemon.stop(timeout=15)
        assert code == 0 and took < 10
        assert "Traceback" not in daemon.output()
    finally:
        daemon.close()
        hang.close()


def test_answers_that_wait_for_the_turn_are_committed_together(
    tmp_path: Path, sim: SimExchange, monkeypatch
) -> None:
    """#32, 4: polls that finish while another holds the commit share its transaction:
    one POLL marker time for all of them, and every account's alert decided once."""
    names = [f"a{i:02d}" for i in range(12)]
    accounts = "".join(f"  {n}: {{web_key: '${{K}}'}}\n" for n in names)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"accounts:\n{accounts}channels:\n  default: 'json://127.0.0.1:9/never'\n"
        "rules:\n  - name: low\n    when: USDT.spot < 2000\n"
    )
    monkeypatch.setenv("K", WEB_KEY)
    settings = Settings(mexc_url=sim.mexc_url, rules=rules, state=tmp_path / "w.db")
    daemon = build(settings)
    statements: list[str] = []
    daemon.store.db.set_trace_callback(statements.append)  # SQLite's own record of each
    try:
        with daemon.cycle:  # a long commit under way: every poll's answer waits for it
            jobs = [threading.Thread(target=daemon.poll_job, args=(n,)) for n in names]
            for job in jobs:
                job.start()
            wait_for(lambda: len(daemon.waiting) == len(names), what="all answers waiting")
        for job in jobs:
            job.join(10)
        assert statements.count("COMMIT") == 1  # one transaction for the twelve polls
        polled = daemon.store.db.execute("SELECT key FROM history WHERE key LIKE '%/POLL'")
        assert sorted(k.split("/")[0] for (k,) in polled) == names
        firing = [a for a in daemon.watcher.alerts.values() if a.rule == "low"]
        assert sorted(a.account for a in firing) == names
    finally:
        daemon.store.close()
        daemon.lock.release()
