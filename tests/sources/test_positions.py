"""Futures positions (#28) over real HTTP against the simulator's futures host."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.helpers import at, ruleset
from watcher.app.poll import Watcher
from watcher.config.settings import Settings
from watcher.core.errors import AuthError
from watcher.core.positions import Position
from watcher.engine.evaluate import FIRING, RESOLVED
from watcher.sim.exchange import SimExchange, sample_portfolio
from watcher.sim.futures_host import open_position
from watcher.sources.futures import POSITIONS_PATH, signature
from watcher.sources.mexc import MexcWebSource
from watcher.store import Store

D = Decimal


@pytest.fixture
def book(sim: SimExchange) -> SimExchange:
    sample_portfolio(sim)
    open_position(sim, "BTC_USDT", "long", D(100), D(60000), 20)
    open_position(sim, "ETH_USDT", "short", D(10), D(3000), 10)
    return sim


def source(sim: SimExchange, web_key: str | None = None) -> MexcWebSource:
    return MexcWebSource(
        sim.mexc_url,
        web_key or sim.web_key,
        2.0,
        5.0,
        lambda: datetime.now(UTC),
        futures_url=sim.mexc_url,
        backoff=0.01,
    )


def vendor_sign(key: str, ts: str, query: str) -> str:
    """The vendor SDK's ``_SignatureGenerator.generate``, written out as its source reads."""
    g = hashlib.md5((key + ts).encode()).hexdigest()[7:]
    return hashlib.md5((ts + query + g).encode()).hexdigest()


def test_the_signature_is_the_vendor_sdks_and_the_simulator_checks_it(book) -> None:
    assert signature("WEBabc", "1700000000000", "symbol=BTC_USDT") == vendor_sign(
        "WEBabc", "1700000000000", "symbol=BTC_USDT"
    )
    overview = source(book).fetch(rows=True, totals=True, positions=True)
    assert {p.instance for p in overview.positions} == {"BTC_USDT long", "ETH_USDT short"}
    sent = [r for r in book.requests if r["path"] == POSITIONS_PATH][-1]["headers"]
    assert sent["Authorization"] == book.web_key
    assert sent["X-Mxc-Sign"] == vendor_sign(book.web_key, sent["X-Mxc-Nonce"], "")
    with pytest.raises(AuthError, match="401"):
        wrong = source(book, "WEB-someone-else-0000")
        wrong.positions(wrong.http.deadline())


def test_a_wrong_signature_is_the_auth_error(book, monkeypatch) -> None:
    import watcher.sources.mexc as mexc

    real = mexc.signed_headers
    forged = lambda key, query="": {**real(key, query), "X-Mxc-Sign": "0" * 32}  # noqa: E731
    monkeypatch.setattr(mexc, "signed_headers", forged)
    reader = source(book)
    with pytest.raises(AuthError, match="602"):
        reader.positions(reader.http.deadline())


def test_long_and_short_distances_and_pnl_are_computed_right(book) -> None:
    found = {p.instance: p for p in source(book).fetch(True, True, positions=True).positions}
    long, short = found["BTC_USDT long"], found["ETH_USDT short"]
    # liquidation from the maintenance margin rate: 60000 * (1 - 1/20 + 0.004)
    assert long.liquidation == D("57240") and long.mark == D("60000")
    assert long.liq_distance == (D("60000") - D("57240")) / D("60000")  # 4.6%
    assert short.liquidation == D("3285")  # 3000 * (1 + 1/10 - 0.005)
    assert short.liq_distance == (D("3285") - D("3000")) / D("3000")  # 9.5%
    book.assign({"BTC.price": "58500", "ETH.price": "2900"})
    found = {p.instance: p for p in source(book).fetch(True, True, positions=True).positions}
    long, short = found["BTC_USDT long"], found["ETH_USDT short"]
    assert long.liq_distance == (D("58500") - D("57240")) / D("58500")
    assert long.pnl == (D("58500") - D("60000")) * D("100") * D("0.0001")  # -150
    assert short.pnl == -(D("2900") - D("3000")) * D("10") * D("0.01")  # +10
    assert long.notional == D("100") * D("0.0001") * D("58500")


def test_a_zero_liquidation_price_is_no_data_never_zero_percent_away(book) -> None:
    row = {
        "symbol": "BTC_USDT",
        "positionType": 1,
        "openType": 2,
        "state": 1,
        "holdVol": 100,
        "holdAvgPrice": 60000,
        "liquidatePrice": 0,
        "im": 300,
        "leverage": 20,
    }
    body = json.dumps({"success": True, "code": 0, "data": [row]})
    book.inject("raw", times=None, status=200, body=body, path=POSITIONS_PATH)
    (cross,) = source(book).fetch(True, True, positions=True).positions
    assert cross.liquidation == 0 and cross.liq_distance is None
    rules = ruleset("  - name: liq\n    each: position\n    when: liq_distance < 10%\n")
    assert not _poll(book, rules, at(0), Path()).outcome.notices


def _poll(sim: SimExchange, rules, when: datetime, tmp: Path, store: Store | None = None):
    settings = Settings(
        web_key=sim.web_key,
        mexc_url=sim.mexc_url,
        mexc_futures_url=sim.mexc_url,
        stale_after="5m",
        state=tmp / "w.db",
    )
    store = store or Store(":memory:")
    return Watcher.open(settings, rules, store, clock=lambda: when).poll(dry_run=True)


def test_a_futures_host_that_fails_leaves_balance_rules_evaluating(book, tmp_path) -> None:
    """Its own exchange-unreachable after stale_after, for the positions alone."""
    rules = ruleset(
        "  - name: low\n    when: USDT.spot < 2000\n"
        "  - name: liq\n    each: position\n    when: liq_distance < 50%\n"
    )
    book.inject("raw", times=None, status=503, body="", path=POSITIONS_PATH)
    store = Store(tmp_path / "w.db")
    settings = Settings(
        web_key=book.web_key,
        mexc_url=book.mexc_url,
        mexc_futures_url=book.mexc_url,
        stale_after="5m",
        interval="3s",
        timeout="1s",
        state=tmp_path / "w.db",
    )
    clock = [at(0)]
    watcher = Watcher.open(settings, rules, store, clock=lambda: clock[0])
    first = watcher.poll()
    kinds = {(n.rule, n.currency, n.kind) for n in first.outcome.notices}
    assert kinds == {("low", None, FIRING)}  # balances read; the positions are no data
    clock[0] = at(minutes=6)
    later = watcher.poll()
    kinds = {(n.rule, n.currency, n.kind) for n in later.outcome.notices}
    assert kinds == {("exchange-unreachable", "positions", FIRING)}
    text = next(n.text for n in later.outcome.notices)
    assert "futures positions not read" in text and "Balance rules keep evaluating" in text
    book.clear_faults()
    clock[0] = at(minutes=7)
    back = {(n.rule, n.currency, n.kind) for n in watcher.poll().outcome.notices}
    assert ("exchange-unreachable", "positions", RESOLVED) in back
    assert {("liq", "BTC_USDT long", FIRING), ("liq", "ETH_USDT short", FIRING)} <= back
    store.close()


def test_a_closed_position_resolves_its_alert_with_a_line_that_says_so(book, tmp_path) -> None:
    rules = ruleset(
        "  - name: btc-liq-near\n    each: position\n    when: liq_distance < 10%\n"
        "    severity: critical\n"
    )
    store = Store(tmp_path / "w.db")
    settings = Settings(
        web_key=book.web_key,
        mexc_url=book.mexc_url,
        mexc_futures_url=book.mexc_url,
        state=tmp_path / "w.db",
    )
    clock = [at(0)]
    watcher = Watcher.open(settings, rules, store, clock=lambda: clock[0])
    fired = [n for n in watcher.poll().outcome.notices if n.kind == FIRING]
    texts = {n.currency: n.text for n in fired}
    assert texts["BTC_USDT long"] == (
        "BTC_USDT long 20x is 4.6% from liquidation (mark 60,000, liquidation 57,240)"
    )
    from watcher.cli.views import status_json, status_text

    shown = status_text(status_json(store))  # status shows what the last poll read
    assert "position: BTC_USDT long 20x, 4.6% from liquidation, pnl 0" in shown
    open_position(book, "BTC_USDT", "long", D(0), D(0), 20)  # closed
    clock[0] = at(minutes=1)
    (ended,) = watcher.poll().outcome.notices
    assert (ended.rule, ended.currency, ended.kind, ended.text) == (
        "btc-liq-near",
        "BTC_USDT long",
        RESOLVED,
        "the position closed",
    )
    store.close()


def test_account_figures_over_positions() -> None:
    from watcher.core.positions import Summary

    long = Position("BTC_USDT", "long", "isolated", D(100), D("0.0001"), D(60000),
                    D(61200), D(58263), D(20), D(300), D(120))  # fmt: skip
    short = Position("ETH_USDT", "short", "cross", D(10), D("0.01"), D(3000),
                     D(2900), D(0), D(10), D(30), D(10))  # fmt: skip
    summary = Summary((long, short))
    assert summary.count == 2 and summary.pnl == D(130)
    assert summary.notional == D(100) * D("0.0001") * D(61200) + D(10) * D("0.01") * D(2900)
    assert summary.min_liq_distance == long.liq_distance  # the cross one is no data
    rules = ruleset("  - name: big\n    when: positions.notional > 3 * total\n")
    assert rules.needs.positions and not rules.rules[0].per_position
    assert timedelta(0) == rules.needs.window


def test_the_bypass_gateway_reads_positions_in_its_own_envelope(book) -> None:
    """#28: ``/v1/getFuturesOpenPositions`` through the gateway, checked as its overview."""
    from watcher.sources.bypass import BypassSource

    gateway = BypassSource(
        book.url, book.api_key, None, "MAINNET", 2.0, 5.0, lambda: datetime.now(UTC), backoff=0.01
    )
    overview = gateway.fetch(rows=False, totals=True, positions=True)
    found = {p.instance: p for p in overview.positions}
    assert found["BTC_USDT long"].liquidation == D("57240")
    assert found["BTC_USDT long"].liq_distance == (D("60000") - D("57240")) / D("60000")
    wrong = BypassSource(
        book.url, "wrong-key", None, "MAINNET", 2.0, 5.0, lambda: datetime.now(UTC), backoff=0.01
    )
    with pytest.raises(AuthError):
        wrong.positions(wrong.http.deadline())


@pytest.mark.parametrize(
    ("extra", "futures"),
    [
        ("", False),  # nothing reads positions: no request to the futures host
        ("digest: {at: '08:00'}\n", True),  # the digest shows them
        ("commands: {telegram: {token: '${TG}', chats: [1]}}\n", True),  # so does /positions
    ],
    ids=["unused", "digest", "telegram"],
)
def test_positions_are_fetched_only_when_something_shows_them(
    book, tmp_path, extra: str, futures: bool
) -> None:
    from watcher.config.resolve import resolve

    rules = resolve(ruleset("  - name: low\n    when: USDT.spot < 100\n", extra), env={"TG": "1:x"})
    settings = Settings(
        web_key=book.web_key,
        mexc_url=book.mexc_url,
        mexc_futures_url=book.mexc_url,
        state=tmp_path / "w.db",
    )
    watcher = Watcher.open(settings, rules, Store(tmp_path / "w.db"))
    result = watcher.poll(dry_run=True)
    asked = [r["path"] for r in book.requests if r["path"].startswith("/api/v1/")]
    assert bool(asked) is futures
    assert (result.overview.positions is not None) is futures
    assert not result.outcome.notices  # no position rule: nothing fires about them
