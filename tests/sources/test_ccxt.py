"""The ccxt source: official read-only keys, through real ccxt, against the simulator's
MEXC (spot, contract, tickers, both signatures) and Binance endpoints. Skipped, with the
reason, where the optional extra is not installed; `make test` installs it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WEB_KEY
from tests.support.daemon_harness import DaemonProcess, wait_for
from watcher.cli.main import main
from watcher.config.model import AccountSpec
from watcher.core import logs
from watcher.core.errors import AuthError, ExchangeError
from watcher.sim.exchange import SimExchange

pytest.importorskip("ccxt", reason="the ccxt extra is not installed: pip install '.[ccxt]'")

from watcher.sources.ccxt_source import CcxtSource


def rules(sim: SimExchange, exchange: str = "mexc", extra: str = "") -> str:
    keys = 'api_key: "${K}", secret: "${S}"'
    return f"""
accounts:
  official: {{source: ccxt, exchange: {exchange}, {keys}, base_url: "{sim.mexc_url}"{extra}}}
channels:
  default: "json://127.0.0.1:9/never"
rules:
  - name: usdt-low
    when: USDT.spot < 2000
  - name: btc-contract
    when: BTC.originContract >= 0.01
"""


@pytest.fixture
def env(tmp_path: Path, sim: SimExchange, monkeypatch) -> Path:
    monkeypatch.setenv("K", sim.official_key)
    monkeypatch.setenv("S", sim.official_secret)
    monkeypatch.setenv("WATCHER_STATE", str(tmp_path / "w.db"))
    path = tmp_path / "rules.yaml"
    monkeypatch.setenv("WATCHER_RULES", str(path))
    return path


def test_ccxt_once_json_spot_swap_and_totals_are_exact(env: Path, sim, capsys) -> None:
    env.write_text(rules(sim))
    assert main(["once", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    balances = data["accounts"]["official"]["balances"]
    usdt, btc = balances["rows"]["USDT"], balances["rows"]["BTC"]
    assert (usdt["originSpot"], usdt["originContract"], usdt["total"]) == ("1500", "800", "2300")
    assert (btc["originSpot"], btc["originContract"], btc["originTotal"]) == (
        "0.05",
        "0.01",
        "0.06",
    )
    assert (btc["spot"], btc["contract"], btc["total"]) == ("3000.00", "600.00", "3600.00")
    assert balances["totals"]["total"] == "5900.00"
    firing = {a["rule"] for a in data["alerts"] if a["state"] == "firing"}
    assert firing == {"usdt-low", "btc-contract"}
    paths = {r["path"] for r in sim.requests}
    assert {"/api/v3/account", "/api/v1/private/account/assets", "/api/v3/ticker/24hr"} <= paths


def test_ccxt_a_bad_signature_is_the_auth_error(env: Path, sim, capsys, monkeypatch) -> None:
    monkeypatch.setenv("S", "not-the-secret-000")
    env.write_text(rules(sim))
    assert main(["once"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("watcher: mexc refused the API key") and err.count("\n") == 1
    assert "may read balances" in err and "not-the-secret-000" not in err


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_ccxt_other_exchanges_map_the_same_way(env: Path, sim, capsys, exchange: str) -> None:
    """Binance's spot account, and Bybit's unified trading account (its v5 API)."""
    env.write_text(rules(sim, exchange, ", wallets: [spot]"))
    assert main(["once", "--json"]) == 1  # usdt-low fires on either
    rows = json.loads(capsys.readouterr().out)["accounts"]["official"]["balances"]["rows"]
    assert rows["USDT"]["originSpot"] == "1500" and rows["USDT"]["originContract"] == "0"
    assert rows["BTC"]["spot"] == "3000.00" and rows["BTC"]["originSpot"] == "0.05"


def official(sim: SimExchange, **extra: Any) -> AccountSpec:
    """A ccxt account on the simulator's official MEXC API, with its read-only key."""
    return AccountSpec(
        name="o",
        source="ccxt",
        exchange="mexc",
        api_key=sim.official_key,
        secret=sim.official_secret,
        base_url=sim.mexc_url,
        **extra,
    )


@pytest.mark.parametrize(
    ("secret", "when", "code"),
    [("not-the-secret-000", 0, "10004"), (None, -60_000, "10002")],
    ids=["signature", "stale-timestamp"],
)
def test_ccxt_bybit_checks_signature_and_timestamp_as_bybit_does(
    sim, monkeypatch, secret: str | None, when: int, code: str
) -> None:
    spec = replace(official(sim), exchange="bybit", secret=secret or sim.official_secret)
    source = CcxtSource(spec, 5, lambda: datetime.now(UTC))
    monkeypatch.setattr(source.exchange, "nonce", lambda: int(time.time() * 1000) + when)
    with pytest.raises(AuthError if code == "10004" else ExchangeError) as caught:
        source.fetch(True, True)
    assert f'"retCode": {code}' in str(caught.value) and sim.official_secret not in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("exchange", "said"),
    [
        ("binance", "enableSpotAndMarginTrading, enableWithdrawals"),
        ("bybit", "not readOnly"),
    ],
)
def test_ccxt_a_key_that_can_trade_is_warned_about_once(sim, exchange: str, said: str) -> None:
    sim.key_can_trade = sim.key_can_withdraw = True
    spec = replace(official(sim), exchange=exchange)
    stream = io.StringIO()
    logs.configure("INFO", "json", stream=stream)
    source = CcxtSource(spec, 5, lambda: datetime.now(UTC))
    source.fetch(True, True)
    source.fetch(True, True)
    warnings = [x for x in stream.getvalue().splitlines() if "can trade or withdraw" in x]
    assert len(warnings) == 1 and said in warnings[0]
    assert sim.official_secret not in stream.getvalue()


def test_mexc_says_nothing_of_the_key_so_nothing_false_is_said(sim) -> None:
    """#29, 5: MEXC's canTrade describes the account; watcher says it cannot check the key,
    and a Binance key read-only by its apiRestrictions is not warned about."""
    sim.key_can_trade = sim.key_can_withdraw = True
    stream = io.StringIO()
    logs.configure("INFO", "json", stream=stream)
    CcxtSource(official(sim), 5, lambda: datetime.now(UTC)).fetch(True, True)
    assert "can trade or withdraw" not in stream.getvalue()
    assert "cannot check that it is read-only" in stream.getvalue()
    sim.key_can_trade = sim.key_can_withdraw = False
    binance = replace(official(sim), exchange="binance")
    CcxtSource(binance, 5, lambda: datetime.now(UTC)).fetch(True, True)
    assert "can trade or withdraw" not in stream.getvalue()


def test_ccxt_binance_refuses_in_its_own_codes(sim) -> None:
    wrong = replace(official(sim), exchange="binance", secret="not-the-secret-000")
    with pytest.raises(AuthError) as caught:
        CcxtSource(wrong, 5, lambda: datetime.now(UTC)).fetch(True, True)
    assert caught.value.code == -1022 and "check the key and secret" in str(caught.value)
    stranger = replace(official(sim), exchange="binance", api_key="someone-elses-key")
    with pytest.raises(AuthError) as caught:
        CcxtSource(stranger, 5, lambda: datetime.now(UTC)).fetch(True, True)
    assert caught.value.code == -2015


def test_ccxt_a_read_only_bybit_key_is_not_warned_about(sim) -> None:
    stream = io.StringIO()
    logs.configure("INFO", "json", stream=stream)
    spec = replace(official(sim), exchange="bybit")
    CcxtSource(spec, 5, lambda: datetime.now(UTC)).fetch(True, True)
    assert "can trade or withdraw" not in stream.getvalue()


def test_ccxt_a_price_that_is_missing_or_an_absurd_amount_is_no_data(sim) -> None:
    sim.set_coin("HUGE", "1", spot="1e30")
    spec = official(sim)
    overview = CcxtSource(spec, 5, lambda: datetime.now(UTC)).fetch(True, True)
    assert overview.nodata == {"HUGE"} and "HUGE: an amount beyond 1e18" in overview.problems[0]
    # a held currency that is no data leaves the sum too small: the totals are no data too
    # (second adversarial round, finding 4); the readable rows still evaluate
    assert overview.totals is None and overview.currencies["USDT"].spot == Decimal(1500)
    sim.remove_coin("HUGE")
    sim.set_coin("ODD", "1", spot="5")
    spec = official(sim, quote="EUR", pegged=("USDT",))  # nothing is priced in EUR here
    overview = CcxtSource(spec, 5, lambda: datetime.now(UTC)).fetch(True, True)
    assert overview.nodata == {"BTC", "ODD"} and overview.currencies["USDT"].spot == Decimal(1500)
    assert overview.totals is None
    with pytest.raises(Exception) as caught:
        overview.balance("BTC")
    assert type(caught.value).__name__ == "NoData"


def test_ccxt_check_names_the_extra_when_it_is_missing(tmp_path: Path, sim) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(rules(sim))
    code = (
        "import sys; sys.modules['ccxt'] = None; from watcher.cli.main import main; "
        f"sys.exit(main(['check', '--rules', {str(path)!r}]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"K": "k", "S": "s", "PATH": "/usr/bin"},
    )
    assert done.returncode == 2
    assert "the ccxt source needs the extra: pip install 'watcher[ccxt]'" in done.stderr


def test_ccxt_check_names_an_exchange_ccxt_does_not_know(env: Path, sim, capsys) -> None:
    env.write_text(rules(sim, exchange="mexcc"))
    assert main(["check", "--rules", str(env)]) == 2
    assert capsys.readouterr().err == (
        f"watcher: {env}:3:38: account official: ccxt knows no exchange 'mexcc'\n"
    )


def test_ccxt_and_mexc_web_accounts_side_by_side_in_one_daemon(tmp_path: Path, sim, receiver):
    keys = 'api_key: "${K}", secret: "${S}"'
    text = f"""
accounts:
  web: {{source: mexc, mexc_url: "{sim.mexc_url}", web_key: "${{WEB}}"}}
  official: {{source: ccxt, exchange: mexc, {keys}, base_url: "{sim.mexc_url}"}}
channels:
  default: "{receiver.url()}"
rules:
  - name: usdt-low
    when: USDT.spot < 100
"""
    daemon = DaemonProcess(
        tmp_path, sim, text, WEB=WEB_KEY, K=sim.official_key, S=sim.official_secret
    )
    try:
        daemon.start()
        wait_for(lambda: "watcher started" in daemon.output(), what="start")
        sim.set_coin("USDT", "1", spot="50")
        wait_for(lambda: len(receiver.posts) >= 2 or _both(receiver), timeout=30, what="both")
        lines = [x for p in receiver.posts for x in p["message"].splitlines()]
        assert any(x.startswith("FIRING usdt-low (web):") for x in lines)
        assert any(x.startswith("FIRING usdt-low (official):") for x in lines)
        out = daemon.output()
        assert sim.official_secret not in out and WEB_KEY not in out
        assert daemon.stop()[0] == 0
    finally:
        daemon.close()


def _both(receiver) -> bool:
    text = "\n".join(p["message"] for p in receiver.posts)
    return "(web)" in text and "(official)" in text


def test_ccxt_a_currency_without_a_price_makes_the_total_no_data(env: Path, sim, capsys) -> None:
    """Second adversarial round, finding 4: BTC has no EUR price, so the sum without it
    would read as a fall of the account; a rule on `total` keeps its state instead."""
    text = rules(sim, extra=', quote: EUR, pegged: ["USDT"]').split("rules:")[0]
    env.write_text(text + "rules:\n  - name: total-fell\n    when: total < 5000\n")
    assert main(["once", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    balances = data["accounts"]["official"]["balances"]
    assert balances["totals"] is None and balances["rows"]["BTC"] == {"no_data": True}
    assert [a for a in data["alerts"] if a["state"] == "firing"] == []


POSITIONS = "/api/v1/private/position/open_positions"


def test_ccxt_fetch_positions_against_mexcs_official_contract_api(sim: SimExchange) -> None:
    """#28: ccxt's unified positions from a local fake of MEXC's official endpoint (its
    HMAC signature checked); a wrong secret is the positions' problem, the balances stand."""
    from watcher.sim.exchange import sample_portfolio
    from watcher.sim.futures_host import open_position

    sample_portfolio(sim)
    open_position(sim, "BTC_USDT", "long", Decimal(100), Decimal(60000), 20)
    now = lambda: datetime.now(UTC)  # noqa: E731
    overview = CcxtSource(official(sim), 3.0, now).fetch(True, True, positions=True)
    (position,) = overview.positions
    assert (position.symbol, position.side, position.liquidation) == (
        "BTC_USDT",
        "long",
        Decimal("57240"),
    )
    assert position.contract_size == Decimal("0.0001") and position.mark == Decimal("60000")
    assert position.liq_distance == (Decimal("60000") - Decimal("57240")) / Decimal("60000")
    refused = json.dumps(
        {"success": False, "code": 602, "message": "Signature verification failed!"}
    )
    sim.inject("raw", times=None, status=401, body=refused, path=POSITIONS)
    overview = CcxtSource(official(sim), 3.0, now).fetch(True, True, positions=True)
    assert overview.totals is not None and overview.positions is None
    assert "mexc refused the API key" in (overview.positions_error or "")


def test_check_names_a_ccxt_exchange_that_cannot_read_positions(env: Path, sim, capsys) -> None:
    env.write_text(
        "accounts:\n"
        '  us: {source: ccxt, exchange: binanceus, api_key: "${K}", secret: "${S}"}\n'
        'channels:\n  default: "console://"\n'
        "rules:\n  - name: liq\n    each: position\n    when: liq_distance < 5%\n"
    )
    assert main(["check"]) == 2
    assert "account us: ccxt cannot read positions on binanceus (no fetchPositions)" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("code", "message", "hint"),
    [
        (10072, "Api key info invalid", "check the key and secret"),
        (700006, "IP [203.0.113.9] not in the ip white list", "add this server's IP address"),
        (700002, "Signature for this request is not valid.", "check the key and secret"),
    ],
)
def test_ccxt_key_codes_are_auth_errors_with_the_hint_that_fits(sim, code, message, hint) -> None:
    """#29, 4: ccxt calls some of these BadRequest; they are the key, and the user is told
    what to do about it."""
    body = json.dumps({"code": code, "msg": message})
    sim.inject("raw", times=None, status=400, body=body, path="/api/v3/account")
    with pytest.raises(AuthError) as caught:
        CcxtSource(official(sim), 3.0, lambda: datetime.now(UTC)).fetch(True, True)
    assert hint in str(caught.value) and caught.value.code == code


def test_doctor_checks_the_address_ccxt_would_call(sim, monkeypatch, tmp_path, capsys) -> None:
    """#29, 2: a ccxt account's links are the exchange's API host (here the simulator's)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "accounts:\n"
        f'  official: {{source: ccxt, exchange: mexc, base_url: "{sim.url}", '
        'api_key: "${K}", secret: "${S}"}\n'
        'channels:\n  default: "console://"\nrules:\n  - name: low\n    when: USDT.spot < 1\n'
    )
    monkeypatch.setenv("K", sim.official_key)
    monkeypatch.setenv("S", sim.official_secret)
    monkeypatch.setenv("WATCHER_STATE", str(tmp_path / "w.db"))
    assert main(["doctor", "--rules", str(rules)]) == 0
    out = capsys.readouterr().out
    assert "ok    official: exchange TCP: 127.0.0.1:" in out
    assert "ok    official: key and answer: mexc official API (ccxt" in out
    assert sim.official_secret not in out
    from watcher.sources.ccxt_source import api_url

    assert api_url("binance") == "https://api.binance.com/sapi/v1"
    assert api_url("bybit") == "https://api.bybit.com"
