"""The default source, MEXC's web endpoints with the web key, against the simulator."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import SecretStr

from tests.conftest import API_KEY, WEB_KEY
from tests.support.socks import Socks5Proxy
from watcher.config.settings import Settings
from watcher.core import logs
from watcher.core.errors import (
    AuthError,
    BadResponse,
    Blocked,
    ExchangeError,
    RateLimited,
    TransportError,
)
from watcher.net.client import MAX_DEPTH
from watcher.sim.exchange import MEXC_ROWS, MEXC_TOTALS, SimExchange
from watcher.sources import open_source


def source(settings: Settings):
    return open_source(settings, lambda: datetime.now(UTC))


def tried_with_ccxt(first_line: str, port: int) -> None:
    """#30, 12: ccxt can be tried without an account, with what the simulator prints."""
    import re
    from datetime import UTC, datetime

    from watcher.config.model import AccountSpec
    from watcher.sources.ccxt_source import CcxtSource

    found = re.search(r"api_key '([^']+)', secret '([^']+)'", first_line)
    assert found, first_line
    spec = AccountSpec(
        name="official",
        source="ccxt",
        exchange="mexc",
        api_key=found[1],
        secret=found[2],
        base_url=f"http://127.0.0.1:{port}",
    )
    overview = CcxtSource(spec, 5.0, lambda: datetime.now(UTC)).fetch(True, True)
    assert overview.currencies and overview.currencies["USDT"].spot > 0


def test_rows_totals_and_both_with_the_web_key(sim: SimExchange, settings: Settings) -> None:
    src = source(settings)
    rows = src.fetch(rows=True, totals=False)
    assert rows.currencies["BTC"].originTotal == Decimal("0.06") and rows.totals is None
    assert rows.is_testnet is None and rows.nodata == frozenset()
    assert sim.requests[-1]["path"] == MEXC_ROWS and sim.requests[-1]["query"] == {}
    totals = src.fetch(rows=False, totals=True)
    assert totals.totals.total == Decimal("5900.00") and totals.currencies is None
    assert sim.requests[-1]["path"] == MEXC_TOTALS
    both = src.fetch(rows=True, totals=True)
    assert both.currencies == rows.currencies and both.totals == totals.totals
    assert len(sim.requests) == 4
    headers = sim.requests[-1]["headers"]
    assert headers["Cookie"] == f"u_id={WEB_KEY}; uc_token={WEB_KEY};"
    assert headers["Ucenter-Token"] == WEB_KEY
    assert headers["Origin"] == "https://www.mexc.com" and "Mozilla/5.0" in headers["User-Agent"]
    assert headers["Referer"] == "https://www.mexc.com/assets" and "Sec-Fetch-Mode" in headers
    assert not any(h.startswith("X-MEXC") for h in headers)
    assert src.describe() == "MEXC web (127.0.0.1, web key)"


def test_an_absent_code_is_success(sim: SimExchange, settings: Settings) -> None:
    sim.inject("nocode")
    assert source(settings).fetch(rows=True, totals=False).currencies["USDT"].spot == 1500


@pytest.mark.parametrize(
    ("how", "text"),
    [
        ("missing cookie", "MEXC refused the credentials (401: Unauthorized)"),
        ("code 402", "MEXC refused the credentials (402: expired)"),
        ("code 602", "(602: signature"),
        ("redirect", "redirect to www.mexc.com (HTTP 302)"),
        ("http 401", "MEXC refused the web key (HTTP 401)"),
    ],
)
def test_every_sign_of_a_dead_key_is_the_auth_error(
    sim: SimExchange, settings: Settings, how: str, text: str
) -> None:
    if how == "missing cookie":
        settings = settings.replace(**{"web_key": SecretStr("WEB-someone-else")})
    elif how.startswith("code"):
        code = int(how.split()[1])
        message = "expired" if code == 402 else "signature"
        sim.inject("code", times=None, code=code, message=message)
    elif how == "redirect":
        sim.inject("redirect", times=None)
    else:
        sim.inject("raw", times=None, status=401, body="<html>login</html>")
    with pytest.raises(AuthError) as caught:
        source(settings).fetch(rows=True, totals=False)
    message = str(caught.value)
    assert text in message
    assert "log in to MEXC again and update the web key (credential `web_key` or" in message
    assert len(sim.requests) == 1  # not retried, not followed


def test_akamai_403_is_its_own_error_and_not_the_key(sim: SimExchange, settings: Settings) -> None:
    sim.inject("akamai", times=None)
    with pytest.raises(Blocked) as caught:
        source(settings).fetch(rows=True, totals=False)
    text = str(caught.value)
    assert "Akamai" in text and "not your web key" in text and "WATCHER_PROXY" in text
    assert not isinstance(caught.value, AuthError)


@pytest.mark.parametrize(
    ("kind", "params", "error", "text"),
    [
        ("code", {"code": 510, "message": "too fast"}, RateLimited, "510: too fast"),
        ("code", {"code": 600, "message": "parameter error"}, ExchangeError, "error 600"),
        ("status", {"status": 429, "message": "slow"}, RateLimited, "HTTP 429"),
        ("status", {"status": 502, "message": "bad gateway"}, TransportError, "HTTP 502"),
        ("html", {"status": 404}, BadResponse, "HTML page (HTTP 404)"),
        ("truncated", {}, BadResponse, "truncated JSON"),
        ("delay", {"delay": 1.5}, TransportError, "timed out"),
    ],
)
def test_other_faults_map_to_their_errors(
    sim: SimExchange, settings: Settings, kind: str, params: dict, error: type, text: str
) -> None:
    sim.inject(kind, times=None, **params)
    with pytest.raises(error) as caught:
        source(settings).fetch(rows=True, totals=False)
    assert type(caught.value) is error and text in str(caught.value)


@pytest.mark.parametrize(
    ("status", "location"),
    [(304, ""), (301, "https://www.mexc.com/assets/moved"), (307, "https://cdn.example/x")],
)
def test_a_3xx_that_is_not_the_login_page_is_unreachable_not_auth(
    sim: SimExchange, settings: Settings, status: int, location: str
) -> None:
    """Second adversarial round, finding 11: only a redirect to the login page says the key
    is dead; a 304 or another move says nothing about it."""
    sim.inject("redirect", times=None, status=status, location=location)
    with pytest.raises(ExchangeError) as caught:
        source(settings).fetch(rows=True, totals=False)
    assert type(caught.value) is TransportError
    assert f"MEXC answered HTTP {status}" in str(caught.value)


def test_no_header_of_either_source_reaches_a_redirect_target(
    sim: SimExchange, settings: Settings, bypass_settings: Settings
) -> None:
    with SimExchange(api_key=API_KEY, web_key=WEB_KEY) as other:
        target = f"http://127.0.0.1:{other.port}/v1/getAssetsOverview"
        sim.inject("redirect", times=None, location=target)
        for chosen in (settings, bypass_settings):
            with pytest.raises(ExchangeError):
                source(chosen).fetch(rows=True, totals=True)
        assert other.served == 0 and len(other.requests) == 0
        assert len(sim.requests) == 2


def test_negative_malformed_and_duplicate_rows_leave_the_rest(
    sim: SimExchange, settings: Settings
) -> None:
    sim.set_coin("ETH", "3000", spot="1")
    sim.inject("negative")  # BTC (first row) spot -5: real, kept
    first = source(settings).fetch(rows=True, totals=False)
    assert first.currencies["BTC"].spot == Decimal("-5") and not first.nodata
    sim.inject("badrow", field_name="originSpot")
    bad = source(settings).fetch(rows=True, totals=False)
    assert bad.nodata == {"BTC"} and set(bad.currencies) == {"ETH", "USDT"}
    assert bad.problems == (
        "BTC: field data[0].originSpot: should be a number, not text; no data this poll",
    )
    sim.inject("duplicate")
    dup = source(settings).fetch(rows=True, totals=False)
    assert dup.nodata == {"BTC"} and "two rows for the same currency" in dup.problems[0]


def test_unknown_wallets_are_logged_once(sim: SimExchange, settings: Settings) -> None:
    extra = [dict(r, financial="12.5") for r in sim.rows()]
    body = json.dumps({"code": 0, "data": extra})
    sim.inject("raw", times=2, status=200, body=body)
    stream = io.StringIO()
    logs.configure(level="INFO", fmt="json", stream=stream)
    src = source(settings)
    src.fetch(rows=True, totals=False)
    src.fetch(rows=True, totals=False)
    lines = [json.loads(x) for x in stream.getvalue().splitlines() if "financial" in x]
    assert len(lines) == 1 and lines[0]["wallets"] == ["financial"]


def test_a_dripping_answer_is_cut_at_the_read_deadline(sim: SimExchange, settings: Settings):
    """One byte every 0.2 s never trips a 1 s read timeout; the total deadline does."""
    sim.inject("drip", times=None, delay=0.2)
    started = datetime.now(UTC)
    with pytest.raises(TransportError, match="too slowly"):
        source(settings).fetch(rows=True, totals=False)
    assert (datetime.now(UTC) - started).total_seconds() < 4


def test_one_watchdog_cuts_each_request_at_its_own_deadline(
    sim: SimExchange, settings: Settings
) -> None:
    """#32: one thread watches every request (a thread per request cost more than the
    request at 5,000 accounts). A short deadline that starts after a long one is still
    kept, and healthy requests start no thread at all."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    healthy = source(settings)
    healthy.fetch(rows=True, totals=False)
    before = set(threading.enumerate())
    for _ in range(20):
        healthy.fetch(rows=True, totals=False)
    assert set(threading.enumerate()) - before == set()  # no thread started (some may end)
    sim.inject("drip", times=None, delay=0.2)
    slow, quick = source(settings.replace(timeout="3s")), source(settings)
    with ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        late = pool.submit(slow.fetch, rows=True, totals=False)
        time.sleep(0.3)  # the long deadline is the watchdog's; then a shorter one comes
        early = pool.submit(quick.fetch, rows=True, totals=False)
        with pytest.raises(TransportError, match="too slowly"):
            early.result()
        quick_took = time.monotonic() - started
        with pytest.raises(TransportError, match="too slowly"):
            late.result()
    assert quick_took < 2.5 < time.monotonic() - started  # each at its own deadline


def test_deep_json_is_a_bad_answer_not_a_crash(sim: SimExchange, settings: Settings) -> None:
    for depth in (MAX_DEPTH + 1, 100_000):
        sim.inject("raw", status=200, body="[" * depth + "]" * depth)
        with pytest.raises(BadResponse, match="nests deeper"):
            source(settings).fetch(rows=True, totals=False)


def test_proxy_routes_the_request(sim: SimExchange, settings: Settings) -> None:
    """Nothing listens on port 9: the answer can only come through the proxy (the simulator)."""
    proxied = settings.replace(
        proxy=SecretStr(f"http://127.0.0.1:{sim.port}"), mexc_url="http://127.0.0.1:9"
    )
    overview = source(proxied).fetch(rows=True, totals=False)
    assert overview.currencies["USDT"].spot == Decimal("1500")
    assert len(sim.requests) == 1 and "via a proxy" in source(proxied).describe()


def test_a_socks_proxy_with_a_password_carries_the_request(
    sim: SimExchange, settings: Settings
) -> None:
    """What the README suggests when Akamai blocks the VPS: socks5h:// with a password."""
    proxy = Socks5Proxy("me", "hunter2-socks")
    try:
        overview = source(settings.replace(proxy=proxy.url())).fetch(rows=True, totals=True)
        assert overview.currencies["USDT"].spot == Decimal("1500")
        assert set(proxy.connects) == {("127.0.0.1", sim.port)} and len(sim.requests) == 2
        with pytest.raises(TransportError) as caught:
            source(settings.replace(proxy=proxy.url("wrong-pass"))).fetch(True, False)
        assert proxy.refused >= 1 and "wrong-pass" not in str(caught.value)
        assert len(str(caught.value).splitlines()) == 1
    finally:
        proxy.stop()


def test_a_person_drives_the_simulator_from_another_terminal(settings: Settings) -> None:
    """`serve`, then `set` and `fault` from other processes, through the control endpoint."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sim = [sys.executable, "-m", "watcher.sim"]
    server = subprocess.Popen(
        [*sim, "serve", "--port", str(port), "--web-key", WEB_KEY], stdout=subprocess.PIPE
    )
    try:
        first = server.stdout.readline().decode()
        assert "simulated MEXC at http://127.0.0.1:" in first
        local = settings.replace(mexc_url=f"http://127.0.0.1:{port}")
        tried_with_ccxt(first, port)  # the printed official key and secret are enough

        def cli(*args: str) -> str:
            done = subprocess.run([*sim, *args, "--port", str(port)], capture_output=True)
            assert done.returncode == 0, done.stderr
            return done.stdout.decode()

        assert "set USDT.spot, BTC.contract" in cli("set", "USDT.spot=50", "BTC.contract=2")
        rows = source(local).fetch(rows=True, totals=False).currencies
        assert rows["USDT"].spot == Decimal("50") and rows["BTC"].originContract == Decimal("2")
        assert "for 1s" in cli("fault", "akamai", "--for", "1s")
        with pytest.raises(Blocked):
            source(local).fetch(rows=True, totals=False)
        time.sleep(1.1)
        assert source(local).fetch(rows=False, totals=True).totals.total > 0
        cli("fault", "code", "--code", "402", "--times", "2")
        with pytest.raises(AuthError, match="402"):
            source(local).fetch(rows=True, totals=False)
        assert cli("clear") == "faults cleared\n"
        assert source(local).fetch(rows=True, totals=False).currencies
    finally:
        server.terminate()
        server.wait(timeout=10)
