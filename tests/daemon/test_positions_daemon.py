"""``watcher run`` watching a futures position (#28): a real daemon, the simulator's
futures host, a real receiver."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.support.daemon_harness import DaemonProcess, wait_for
from tests.support.receivers import Receiver
from watcher.sim.exchange import SimExchange, sample_portfolio
from watcher.sim.futures_host import open_position

RULES = """
channels:
  default: "{url}"
rules:
  - name: btc-liq-near
    each: position
    when: liq_distance < 3%
    severity: critical
"""


def test_a_position_walks_toward_liquidation_fires_once_and_closes(
    tmp_path: Path, sim: SimExchange, receiver: Receiver
) -> None:
    sample_portfolio(sim)
    open_position(sim, "BTC_USDT", "long", Decimal(100), Decimal(60000), 20)  # liq 57,240
    daemon = DaemonProcess(
        tmp_path, sim, RULES.format(url=receiver.url()), WATCHER_MEXC_FUTURES_URL=sim.mexc_url
    )
    daemon.start()
    try:
        wait_for(lambda: "watcher started" in daemon.output(), what="start")
        for price in ("59500", "58500", "58600", "58300"):  # 3.8%, then 2.2% .. 1.8%
            polls = sim.served
            sim.assign({"BTC.price": price})
            wait_for(lambda polls=polls: sim.served >= polls + 4, what=f"polls at {price}")
        wait_for(lambda: receiver.posts, what="the critical alert")
        (fired,) = receiver.posts
        assert fired["title"] == "watcher vps-1: 1 firing (critical)"
        assert fired["message"].startswith("FIRING btc-liq-near BTC_USDT long")
        assert "BTC_USDT long 20x is" in fired["message"] and "from liquidation" in fired["message"]
        assert "liquidation 57,240" in fired["message"]
        open_position(sim, "BTC_USDT", "long", Decimal(0), Decimal(0), 20)  # closed
        wait_for(lambda: len(receiver.posts) == 2, what="the resolution")
        polls = sim.served
        wait_for(lambda: sim.served >= polls + 4, what="more polls")
        assert len(receiver.posts) == 2  # fired once, resolved once
        resolved = receiver.posts[1]["message"]
        assert resolved.startswith("RESOLVED btc-liq-near BTC_USDT long")
        assert "the position closed" in resolved
    finally:
        daemon.close()
