"""Second adversarial round, findings 1 and 5: the ccxt source meets the bounds of the web
sources (poll deadline, 20 MB after decompression, no redirects, JSON depth) against the
simulator's official MEXC API, and an answer without balances is a bad answer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.daemon_harness import wait_for
from tests.support.process import watcher
from watcher.core.errors import BadResponse, ExchangeError, TransportError
from watcher.sim.exchange import SimExchange

pytest.importorskip("ccxt", reason="the ccxt extra is not installed: pip install '.[ccxt]'")

from tests.sources.test_ccxt import official, rules
from watcher.sources.ccxt_source import CcxtSource

ACCOUNT = "/api/v3/account"


def fetch(sim: SimExchange, budget: float = 4.0) -> tuple[BaseException | None, float]:
    source = CcxtSource(official(sim), 2.0, lambda: datetime.now(UTC), budget=budget)
    started = time.monotonic()
    try:
        source.fetch(True, True)
    except ExchangeError as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


@pytest.mark.parametrize("kind", ["drip", "driphead"])
def test_a_dripping_answer_is_cut_at_the_poll_deadline(sim, kind: str) -> None:
    sim.inject(kind, times=None, delay=0.5, path=ACCOUNT)
    error, took = fetch(sim)
    assert isinstance(error, TransportError) and took < 8, (error, took)


def test_a_gzip_bomb_stops_at_the_size_cap(sim) -> None:
    sim.inject("gzipbomb", times=None, path=ACCOUNT)
    error, _ = fetch(sim)
    assert isinstance(error, BadResponse) and "larger than 20 MB" in str(error)


def test_a_deep_answer_is_refused_before_ccxt_parses_it(sim) -> None:
    sim.inject("raw", times=None, status=200, body="[" * 5000 + "]" * 5000, path=ACCOUNT)
    error, _ = fetch(sim)
    assert isinstance(error, BadResponse) and "nests deeper" in str(error)


def test_a_redirect_elsewhere_is_not_followed_and_gets_no_key(sim) -> None:
    with SimExchange() as other:
        target = f"{other.mexc_url}{ACCOUNT}?stolen=1"
        sim.inject("redirect", times=None, location=target, path=ACCOUNT)
        error, _ = fetch(sim)
        assert isinstance(error, TransportError) and "follows none" in str(error)
        assert other.served == 0


@pytest.mark.parametrize("body", ["{}", '{"balances": null}', '{"balances": "none"}'])
def test_an_answer_without_balances_is_a_bad_answer_not_an_empty_account(
    tmp_path: Path, sim, body: str
) -> None:
    sim.inject("raw", times=None, status=200, body=body, path=ACCOUNT)
    (tmp_path / "rules.yaml").write_text(rules(sim))
    done = watcher(
        "once",
        "--json",
        K=sim.official_key,
        S=sim.official_secret,
        WATCHER_RULES=str(tmp_path / "rules.yaml"),
        WATCHER_STATE=str(tmp_path / "w.db"),
    )
    data = json.loads(done.stdout)
    assert done.returncode == 3 and "without its list of balances" in data["error"]
    assert [a for a in data["alerts"] if a["state"] == "firing"] == []


def test_sigterm_during_a_dripping_ccxt_poll_stops_within_budget(tmp_path: Path, sim) -> None:
    sim.inject("driphead", times=None, delay=1.0, path=ACCOUNT)
    (tmp_path / "rules.yaml").write_text(rules(sim))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env |= {
        "K": sim.official_key,
        "S": sim.official_secret,
        "WATCHER_RULES": str(tmp_path / "rules.yaml"),
        "WATCHER_STATE": str(tmp_path / "w.db"),
        "WATCHER_INTERVAL": "3s",
        "WATCHER_TIMEOUT": "2s",
        "WATCHER_LOG_FORMAT": "json",
    }
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run"], env=env, stdout=out, stderr=out
        )
    try:
        wait_for(lambda: "too slowly" in log.read_text(), timeout=30, what="a cut poll")
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        assert time.monotonic() - started < 10
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
