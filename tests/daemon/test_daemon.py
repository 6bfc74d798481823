"""``watcher run`` as users run it: a real process, real signals, real receivers."""

from __future__ import annotations

import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import API_KEY, WEB_KEY
from tests.support.daemon_harness import DaemonProcess, wait_for
from tests.support.receivers import Receiver, free_port
from watcher.sim.exchange import SimExchange

RULES = """
channels:
  default: "{url}"
rules:
  - name: usdt-spot-low
    when: USDT.spot < 100
"""


@pytest.fixture
def daemon(tmp_path: Path, sim: SimExchange, receiver: Receiver) -> Iterator[DaemonProcess]:
    process = DaemonProcess(tmp_path, sim, RULES.format(url=receiver.url()))
    yield process
    process.close()


def titles(receiver: Receiver) -> list[str]:
    """Title and the first line's head, without its timing-dependent "after 2s"."""
    heads = [p["message"].split(":")[0].split(" after ")[0] for p in receiver.posts]
    return [p["title"] + " | " + head for p, head in zip(receiver.posts, heads, strict=True)]


def test_fire_resolve_restart_and_stop(daemon, sim: SimExchange, receiver: Receiver) -> None:
    daemon.start()
    wait_for(lambda: "watcher started" in daemon.output(), what="start")
    sim.set_coin("USDT", "1", spot="50")
    wait_for(lambda: receiver.posts, what="firing message")
    # SIGKILL right after it fired and the delivery was recorded (between the service
    # accepting a message and the outbox row's deletion lies the one at-least-once
    # window the README names); the restarted daemon must not announce it again.
    wait_for(lambda: "notification sent" in daemon.output(), what="delivery recorded")
    daemon.kill()
    daemon.start()
    wait_for(lambda: daemon.output().count("watcher started") == 2, what="restart")
    polls = sim.served
    wait_for(lambda: sim.served >= polls + 3, what="three polls after restart")
    assert titles(receiver) == ["watcher vps-1: 1 firing (warning) | FIRING usdt-spot-low"]
    sim.set_coin("USDT", "1", spot="5000")
    wait_for(lambda: len(receiver.posts) == 2, what="resolved message")
    polls = sim.served
    wait_for(lambda: sim.served >= polls + 2, what="two more polls")
    assert titles(receiver) == [
        "watcher vps-1: 1 firing (warning) | FIRING usdt-spot-low",
        "watcher vps-1: 1 resolved | RESOLVED usdt-spot-low",
    ]
    code, took = daemon.stop()
    assert code == 0 and took < 10
    assert API_KEY not in daemon.output() and "Traceback" not in daemon.output()


def test_sighup_with_a_400_deep_file_is_rejected_and_announced(daemon, receiver) -> None:
    """Second adversarial round, finding 11: 400-deep YAML crashed the reload job before."""
    daemon.start()
    wait_for(lambda: "watcher started" in daemon.output(), what="start")
    good = RULES.format(url=receiver.url())
    daemon.rules.write_text(good + "x-deep: " + "[" * 400 + "]" * 400 + "\n")
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: receiver.posts, what="the rejection announced to default")
    message = receiver.posts[0]["message"]
    assert message.startswith("RELOAD REJECTED rules.yaml: ") and "nested deeper than 64" in message
    assert "Traceback" not in daemon.output() and daemon.process.poll() is None


def test_sighup_broken_file_keeps_old_rules_then_valid_reload(daemon, sim, receiver) -> None:
    daemon.start()
    wait_for(lambda: "watcher started" in daemon.output(), what="start")
    broken = RULES.format(url=receiver.url()).replace("USDT.spot < 100", "USDT.spot <")
    daemon.rules.write_text(broken)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reload rejected" in daemon.output(), what="rejection")
    assert "rules.yaml:6:22: rule usdt-spot-low: when: the expression ends too early" in (
        daemon.output()
    )
    wait_for(lambda: receiver.posts, what="the rejection announced to default")
    assert receiver.posts[0]["message"] == (
        "RELOAD REJECTED rules.yaml: 6:22: rule usdt-spot-low: when: the expression ends too "
        "early; the old rules keep running"
    )
    assert receiver.posts[0]["title"] == "watcher vps-1: rules reload rejected (warning)"
    daemon.signal(signal.SIGHUP)  # the same broken content again: not announced twice
    wait_for(lambda: daemon.output().count("reload rejected") >= 2, what="second rejection")
    sim.set_coin("USDT", "1", spot="50")  # the old rule still runs
    wait_for(lambda: len(receiver.posts) == 2, what="firing from the old rules")
    assert receiver.posts[1]["message"].startswith("FIRING usdt-spot-low")
    new = RULES.format(url=receiver.url()) + "  - name: btc-gone\n    when: BTC.total == 0\n"
    daemon.rules.write_text(new)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "rules reloaded" in daemon.output(), what="reload")
    wait_for(lambda: len(receiver.posts) == 3, what="the good reload announced")
    assert receiver.posts[2]["message"] == "RELOADED rules.yaml: the new rules run now"
    sim.remove_coin("BTC")
    wait_for(lambda: len(receiver.posts) == 4, what="the new rule firing")
    assert "btc-gone" in receiver.posts[3]["message"]
    polls = sim.served
    wait_for(lambda: sim.served >= polls + 2, what="polls")
    assert len(receiver.posts) == 4  # usdt-spot-low kept its state: no second FIRING
    assert daemon.stop()[0] == 0


def test_exchange_down_fires_unreachable_only(tmp_path, sim, receiver) -> None:
    rules = RULES.format(url=receiver.url())
    daemon = DaemonProcess(tmp_path, sim, rules, WATCHER_STALE_AFTER="3s")
    try:
        sim.set_coin("USDT", "1", spot="50")
        daemon.start()
        wait_for(lambda: receiver.posts, what="usdt firing")
        sim.inject("disconnect", times=None)
        down = time.monotonic()
        wait_for(lambda: len(receiver.posts) == 2, what="exchange-unreachable")
        assert time.monotonic() - down >= 2.5
        assert "FIRING exchange-unreachable: no successful poll for" in receiver.posts[1]["message"]
        assert "exchange-unreachable" not in receiver.posts[0]["message"]
        sim.clear_faults()
        wait_for(lambda: len(receiver.posts) == 3, what="recovery")
        assert receiver.posts[2]["message"].startswith("RESOLVED exchange-unreachable")
        assert not any("RESOLVED usdt" in p["message"] for p in receiver.posts)
        assert daemon.stop()[0] == 0
    finally:
        daemon.close()


def test_auth_failure_fires_once(tmp_path, sim, receiver) -> None:
    daemon = DaemonProcess(tmp_path, sim, RULES.format(url=receiver.url()), WATCHER_WEB_KEY=WEB_KEY)
    try:
        sim.inject("code", times=None, code=401, message="Unauthorized")
        daemon.start()
        wait_for(lambda: receiver.posts, what="auth-failed")
        wait_for(lambda: sim.served >= 6, what="more failing polls")
        assert len(receiver.posts) == 1
        assert "log in to MEXC again" in receiver.posts[0]["message"]
        assert WEB_KEY not in daemon.output()
        assert daemon.stop()[0] == 0
    finally:
        daemon.close()


def test_notify_socket_ready_status_and_watchdog(tmp_path, sim, receiver) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    daemon = DaemonProcess(
        tmp_path,
        sim,
        RULES.format(url=receiver.url()),
        NOTIFY_SOCKET=str(path),
        WATCHDOG_USEC="400000",
    )
    try:
        daemon.start()
        seen: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            any("READY=1" in m for m in seen)
            and any("WATCHDOG=1" in m for m in seen)
            and any(m.startswith("STATUS=0 firing, last poll") for m in seen)
        ):
            seen.append(sock.recv(4096).decode())
        assert any("READY=1" in m for m in seen)
        assert "WATCHDOG=1" in seen
        assert any(m.startswith("STATUS=0 firing, last poll") and m.endswith(" ok") for m in seen)
        assert daemon.stop()[0] == 0
    finally:
        daemon.close()
        sock.close()


def test_metrics_and_healthz(tmp_path, sim, receiver) -> None:
    port = free_port()
    daemon = DaemonProcess(
        tmp_path,
        sim,
        RULES.format(url=receiver.url()),
        WATCHER_METRICS_ADDR=f"127.0.0.1:{port}",
        WATCHER_STALE_AFTER="3s",
    )
    try:
        sim.set_coin("USDT", "1", spot="50")
        daemon.start()
        wait_for(lambda: receiver.posts, what="firing")

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                return reply.read().decode()

        text = wait_for(lambda: "watcher_polls_total" in (t := scrape()) and t, what="metrics")
        usdt = 'account="main",currency="USDT",unit="converted",wallet="spot"'
        btc = 'account="main",currency="BTC",unit="origin",wallet="spot"'
        assert f"watcher_balance{{{usdt}}} 50.0" in text
        assert f"watcher_balance{{{btc}}} 0.05" in text
        assert 'watcher_alert_state{account="main",currency="",rule="usdt-spot-low"} 2.0' in text
        assert 'watcher_polls_total{account="main",result="ok"}' in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
            assert reply.status == 200
        sim.inject("disconnect", times=None)

        def unhealthy() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
            except urllib.error.HTTPError as exc:
                return exc.code == 503
            return False

        wait_for(unhealthy, what="/healthz 503 once the last poll is older than STALE_AFTER")
        assert 'watcher_errors_total{account="main",kind="TransportError"}' in scrape()
        assert daemon.stop()[0] == 0
    finally:
        daemon.close()
