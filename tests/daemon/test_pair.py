"""Two ``watcher run`` processes on one PostgreSQL state: one voice.

Real processes, real signals (SIGKILL, SIGSTOP), the simulator and a json:// receiver.
The lease is 3 s and polls come every second, so a takeover is due within 3 s + one
look (1 s) + one interval (1 s); the tests allow a few seconds more for a busy machine.
"""

from __future__ import annotations

import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.daemon_harness import DaemonProcess, wait_for
from tests.support.pings import PingServer
from tests.support.process import watcher
from tests.support.receivers import Receiver, free_port
from tests.support.tcp_proxy import Proxy
from watcher.sim.exchange import SimExchange

RULES = """
channels:
  default: "{url}"
rules:
  - name: usdt-spot-low
    when: USDT.spot < 100
  - name: btc-spot-low
    when: BTC.spot < 100  # valued in USDT: 0.05 BTC is 3000
"""
LEASE = 3.0
BOUND = LEASE + 1.0 + 1.0  # lease + one look + one interval


class Pair:
    def __init__(self, tmp: Path, sim: SimExchange, receiver: Receiver, url: str) -> None:
        rules = RULES.format(url=receiver.url())
        self.nodes = {}
        for name in ("vps-1", "vps-2"):
            (tmp / name).mkdir()
            env = {"WATCHER_STATE": url, "WATCHER_NAME": name, "WATCHER_LEASE": f"{LEASE}s"}
            self.nodes[name] = DaemonProcess(tmp / name, sim, rules, **env)

    def start(self, first: str) -> tuple[DaemonProcess, DaemonProcess]:
        """``first`` starts, leads, then the other starts beside it as the standby."""
        leader, standby = self.nodes[first], next(n for k, n in self.nodes.items() if k != first)
        leader.start()
        wait_for(lambda: '"event": "leading"' in leader.output(), what="the first to lead")
        standby.start()
        wait_for(lambda: "watcher started" in standby.output(), what="the standby's start")
        return leader, standby

    def close(self) -> None:
        for node in self.nodes.values():
            if node.process and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)  # a stopped one cannot die otherwise
            node.close()


@pytest.fixture
def pair(tmp_path: Path, sim: SimExchange, receiver: Receiver, pg_url: str) -> Iterator[Pair]:
    pair = Pair(tmp_path, sim, receiver, pg_url)
    yield pair
    pair.close()


STATUS = re.compile(
    r"pair: this is vps-2, standby; leader vps-1 \(epoch 1, lease renewed \d+s ago\)"
)
TAKEOVER = re.compile(r"vps-2 took over from vps-1 \(lease expired \d\d:\d\d UTC\)")


def any_post(receiver: Receiver, head: str, timeout: float) -> bool:
    """Wait until a post's first line starts with ``head``."""
    found = lambda: any(p["message"].startswith(head) for p in receiver.posts)  # noqa: E731
    return wait_for(found, timeout=timeout, what=head)


def messages(receiver: Receiver) -> list[str]:
    """Each post as 'title | first line's head' (without its timing-dependent tail)."""
    return [f"{p['title']} | {p['message'].split(':')[0]}" for p in receiver.posts]


def scrape(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_an_alert_fires_once_and_only_the_leader_sends(pair, sim, receiver) -> None:
    port, pings = free_port(), PingServer()
    pair.nodes["vps-2"].env["WATCHER_METRICS_ADDR"] = f"127.0.0.1:{port}"
    own = f'heartbeat:\n  - {{url: "{pings.url("/ping/vps-2")}", every: 1s, style: healthchecks}}\n'
    rules = pair.nodes["vps-2"].rules
    rules.write_text(rules.read_text() + own)  # the standby's own heartbeat URL
    leader, standby = pair.start("vps-1")
    sim.set_coin("USDT", "1", spot="50")
    wait_for(lambda: receiver.posts, what="the firing message")
    polls = sim.served
    wait_for(lambda: sim.served >= polls + 4, what="four more polls")
    assert messages(receiver) == ["watcher vps-1: 1 firing (warning) | FIRING usdt-spot-low"]
    # the standby: healthy, not leading, and the epoch it saw
    assert scrape(port, "/healthz") == (200, "ok\n")
    metrics = scrape(port, "/metrics")[1]
    assert "watcher_leader 0.0" in metrics and "watcher_lease_epoch 0.0" in metrics
    shown = watcher("status", **{k: v for k, v in standby.env.items() if k.startswith("WATCHER_")})
    assert shown.returncode == 0, shown.stderr
    assert STATUS.match(shown.stdout.splitlines()[0]), shown.stdout
    assert "FIRING" in shown.stdout and "Traceback" not in leader.output() + standby.output()
    # the standby pings its own heartbeat, with success: alive, and it reaches the state
    wait_for(lambda: len(pings.hits) >= 2, what="two pings of the standby's heartbeat")
    assert {path for _, path in pings.hits} == {"/ping/vps-2"}
    pings.stop()


def test_kill_9_of_the_leader_the_standby_takes_over_within_the_bound(pair, sim, receiver) -> None:
    leader, standby = pair.start("vps-1")
    sim.set_coin("USDT", "1", spot="50")
    wait_for(lambda: "notification sent" in leader.output(), what="the firing delivered")
    leader.kill()
    killed = time.monotonic()
    sim.set_coin("BTC", "60000", spot="0.001")
    alerted = any_post(receiver, "FIRING btc-spot-low", timeout=BOUND + 10)
    took = time.monotonic() - killed
    polls = sim.served
    wait_for(lambda: sim.served >= polls + 3, what="three polls by the new leader")
    assert took < BOUND + 3, f"the new alert arrived {took:.1f}s after the kill"
    heads = messages(receiver)
    assert heads[0] == "watcher vps-1: 1 firing (warning) | FIRING usdt-spot-low"
    assert heads[1].startswith("watcher vps-2: took over | vps-2 took over from vps-1 (lease")
    assert TAKEOVER.fullmatch(receiver.posts[1]["message"]), receiver.posts[1]["message"]
    assert heads[2:] == ["watcher vps-2: 1 firing (warning) | FIRING btc-spot-low"]
    assert alerted and "Traceback" not in standby.output()


def test_a_paused_leader_wakes_after_a_takeover_sends_nothing_and_steps_down(
    pair, sim, receiver
) -> None:
    leader, standby = pair.start("vps-1")
    sim.set_coin("USDT", "1", spot="50")
    wait_for(lambda: "notification sent" in leader.output(), what="the firing delivered")
    leader.signal(signal.SIGSTOP)  # a long GC, a frozen VM: past its lease
    wait_for(lambda: '"event": "leading"' in standby.output(), timeout=BOUND + 10, what="takeover")
    sim.set_coin("BTC", "60000", spot="0.001")  # what the paused leader would announce too
    any_post(receiver, "FIRING btc-spot-low", timeout=15)
    leader.signal(signal.SIGCONT)
    wait_for(lambda: "stepped down" in leader.output(), what="the old leader steps down")
    polls = sim.served
    wait_for(lambda: sim.served >= polls + 4, what="four more polls")
    assert leader.output().count("notification sent") == 1  # before the pause, never after
    heads = messages(receiver)
    assert heads[0] == "watcher vps-1: 1 firing (warning) | FIRING usdt-spot-low"
    assert all(head.startswith("watcher vps-2: ") for head in heads[1:]), heads
    assert [h for h in heads if "btc-spot-low" in h] == [
        "watcher vps-2: 1 firing (warning) | FIRING btc-spot-low"
    ]
    assert leader.process.poll() is None  # it stands by now, ready for the next takeover


def test_a_postgresql_outage_is_told_to_default_by_both_and_both_resume(
    tmp_path, sim, receiver, pg_url
) -> None:
    """What the README promises not to hide: with the database out of reach nothing is
    evaluated, each instance says so once, straight to default, and the pair resumes."""
    parts = urlsplit(pg_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    through = pg_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    pair = Pair(tmp_path, sim, receiver, through)
    try:
        leader, standby = pair.start("vps-1")
        proxy.cut()
        told = lambda: [p["title"] for p in receiver.posts if "state" in p["title"]]  # noqa: E731
        wait_for(lambda: len(told()) >= 2, timeout=20, what="both instances tell default")
        # once each: the leader's failed commit or its failed renewal, whichever came first
        who = sorted(title.split(":")[0] for title in told())
        assert who == ["watcher vps-1", "watcher vps-2"], told()
        assert {t.split(": ")[1] for t in told()} <= {
            "state database unreachable",
            "state not writable",
        }
        assert all("PostgreSQL" in p["message"] for p in receiver.posts)
        proxy.restore()
        sim.set_coin("USDT", "1", spot="50")
        any_post(receiver, "FIRING usdt-spot-low", timeout=BOUND + 15)
        wait_for(lambda: "answers again" in leader.output() + standby.output(), what="resume")
        firing = [p for p in receiver.posts if p["message"].startswith("FIRING usdt")]
        assert len(firing) == 1 and len(told()) == 2
    finally:
        pair.close()
        proxy.close()
