"""The Bypass-compatible source against the simulated gateway over real HTTP."""

from __future__ import annotations

import io
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import structlog
from pydantic import SecretStr

from tests.conftest import API_KEY, WEB_KEY
from watcher.config.settings import Settings
from watcher.core import logs
from watcher.core.errors import (
    AuthError,
    BadResponse,
    ExchangeError,
    NetworkMismatch,
    RateLimited,
    TransportError,
)
from watcher.core.secrets import MASKER
from watcher.sim.exchange import SimExchange
from watcher.sources import open_source


class ExchangeClient:
    """The source as the poll loop sees it, with the old one-kind-per-call shape for tests."""

    def __init__(self, settings: Settings, backoff: float = 0.01) -> None:
        self.source = open_source(settings, lambda: datetime.now(UTC), backoff=backoff)

    def fetch(self, convert: bool):
        return self.source.fetch(rows=convert, totals=not convert)

    def overview(self, rows: bool, totals: bool):
        return self.source.fetch(rows=rows, totals=totals)


@pytest.fixture
def settings(bypass_settings: Settings) -> Settings:
    return bypass_settings


def test_rows_are_decimal_and_headers_are_sent(sim: SimExchange, settings: Settings) -> None:
    overview = ExchangeClient(settings).fetch(convert=True)
    usdt = overview.currencies["USDT"]
    btc = overview.currencies["BTC"]
    assert usdt.spot == Decimal("1500") and isinstance(usdt.spot, Decimal)
    assert btc.spot == Decimal("3000.00")
    assert btc.originTotal == Decimal("0.06")
    assert overview.is_testnet is False and overview.totals is None
    headers = sim.requests[-1]["headers"]
    assert headers["X-MEXC-NETWORK"] == "MAINNET"
    assert headers["X-MEXC-WEB-KEY"] == WEB_KEY
    assert "X-MEXC-PROXY" not in headers
    assert sim.requests[-1]["query"] == {"convert": ["1"]}


def test_totals_and_both_kinds(sim: SimExchange, settings: Settings) -> None:
    client = ExchangeClient(settings)
    totals = client.fetch(convert=False).totals
    assert totals.total == Decimal("1500") + Decimal("800") + Decimal("3600.00")
    both = client.overview(rows=True, totals=True)
    assert both.currencies and both.totals == totals
    assert len(sim.requests) == 3


def test_numbers_instead_of_strings_parse_exactly(sim: SimExchange, settings: Settings) -> None:
    sim.set_coin("DOGE", "0.1", spot="123456789.123456789")
    sim.inject("numbers")
    doge = ExchangeClient(settings).fetch(convert=True).currencies["DOGE"]
    assert doge.originSpot == Decimal("123456789.123456789")


def test_proxy_header_is_forwarded(sim: SimExchange, settings: Settings) -> None:
    proxied = settings.replace(**{"proxy": SecretStr("socks5://u:p@10.0.0.1:1080")})
    ExchangeClient(proxied).fetch(convert=False)
    assert sim.requests[-1]["headers"]["X-MEXC-PROXY"] == "socks5://u:p@10.0.0.1:1080"


def test_testnet_setting_is_sent_and_accepted(sim: SimExchange, settings: Settings) -> None:
    testnet = settings.replace(**{"network": "TESTNET"})
    assert ExchangeClient(testnet).fetch(convert=False).is_testnet is True
    assert sim.requests[-1]["headers"]["X-MEXC-NETWORK"] == "TESTNET"


@pytest.mark.parametrize(
    ("kind", "params", "error", "text"),
    [
        ("code", {"code": 401, "message": "Unauthorized"}, AuthError, "log in to MEXC again"),
        (
            "code",
            {"code": 402, "message": "API key expired"},
            AuthError,
            "web key may have expired",
        ),
        ("code", {"code": 602, "message": "signature verification failed"}, AuthError, "602"),
        ("code", {"code": 510, "message": "excessive request frequency"}, RateLimited, "510"),
        (
            "code",
            {"code": 600, "message": "parameter error"},
            ExchangeError,
            "error 600: parameter",
        ),
        ("status", {"status": 403, "message": "Forbidden"}, AuthError, "WATCHER_API_KEY"),
        ("status", {"status": 400, "message": "Bad request"}, ExchangeError, "error 400: Bad"),
        ("html", {"status": 404}, BadResponse, "HTML page"),
        ("truncated", {}, BadResponse, "truncated JSON"),
        ("testnet", {}, NetworkMismatch, "served TESTNET"),
    ],
)
def test_every_fault_maps_to_its_error(
    sim: SimExchange, settings: Settings, kind: str, params: dict, error: type, text: str
) -> None:
    sim.inject(kind, times=None, **params)
    with pytest.raises(error) as caught:
        ExchangeClient(settings).fetch(convert=True)
    assert text in str(caught.value)
    assert type(caught.value) is error


def test_totals_missing_field_names_it(sim: SimExchange, settings: Settings) -> None:
    sim.inject("missing", field_name="contract")
    with pytest.raises(BadResponse, match=r"field data\.contract: missing"):
        ExchangeClient(settings).fetch(convert=False)


def test_wrong_api_key_is_auth_error(sim: SimExchange, settings: Settings) -> None:
    wrong = settings.replace(**{"api_key": SecretStr("nope-nope-nope")})
    with pytest.raises(AuthError, match="Invalid or missing API key"):
        ExchangeClient(wrong).fetch(convert=True)


def test_auth_errors_are_not_retried(sim: SimExchange, settings: Settings) -> None:
    sim.inject("status", times=None, status=401, message="nope")
    with pytest.raises(AuthError):
        ExchangeClient(settings).fetch(convert=True)
    assert len(sim.requests) == 1


def test_5xx_is_retried_then_succeeds(sim: SimExchange, settings: Settings) -> None:
    sim.inject("status", times=2, status=503, message="busy")
    overview = ExchangeClient(settings).fetch(convert=True)
    assert "USDT" in overview.currencies
    assert len(sim.requests) == 3


def test_retry_after_is_honoured(sim: SimExchange, settings: Settings) -> None:
    sim.inject("status", times=1, status=429, message="slow down", retry_after="1")
    started = time.monotonic()
    ExchangeClient(settings).fetch(convert=True)
    assert time.monotonic() - started >= 1.0
    assert len(sim.requests) == 2


def test_retries_stay_inside_one_interval(sim: SimExchange, settings: Settings) -> None:
    sim.inject("status", times=None, status=429, message="slow down", retry_after="30")
    started = time.monotonic()
    with pytest.raises(RateLimited, match="retry after 30s"):
        ExchangeClient(settings).fetch(convert=True)
    assert time.monotonic() - started < settings.interval.total_seconds()
    assert len(sim.requests) == 1


def test_persistent_5xx_gives_transport_error(sim: SimExchange, settings: Settings) -> None:
    sim.inject("status", times=None, status=502, message="bad gateway")
    roomy = settings.replace(**{"interval": timedelta(seconds=30)})
    with pytest.raises(TransportError, match="HTTP 502"):
        ExchangeClient(roomy).fetch(convert=True)
    assert len(sim.requests) == 4  # first try + 3 status retries


def test_backoff_is_cut_at_the_poll_deadline(sim: SimExchange, settings: Settings) -> None:
    """With a 5 s interval and 2 s of timeouts, 0.5+1+2 s of backoff does not fit."""
    sim.inject("status", times=None, status=502, message="bad gateway")
    started = time.monotonic()
    with pytest.raises(TransportError, match="HTTP 502"):
        ExchangeClient(settings, backoff=0.5).fetch(convert=True)
    assert time.monotonic() - started < settings.interval.total_seconds()
    assert len(sim.requests) == 3


def test_html_502_is_transport_error(sim: SimExchange, settings: Settings) -> None:
    sim.inject("html", times=None, status=502)
    with pytest.raises(TransportError, match="HTML page"):
        ExchangeClient(settings).fetch(convert=True)


def test_timeout_is_transport_error(sim: SimExchange, settings: Settings) -> None:
    sim.inject("delay", times=None, delay=1.5)
    with pytest.raises(TransportError, match="timed out"):
        ExchangeClient(settings).fetch(convert=True)


def test_disconnect_is_retried(sim: SimExchange, settings: Settings) -> None:
    sim.inject("disconnect", times=1)
    assert ExchangeClient(settings).fetch(convert=True).currencies
    sim.inject("disconnect", times=None)
    with pytest.raises(TransportError, match="cannot reach the exchange"):
        ExchangeClient(settings).fetch(convert=True)


def test_refused_connection(settings: Settings, sim: SimExchange) -> None:
    sim.stop()
    with pytest.raises(TransportError, match="connection refused"):
        ExchangeClient(settings).fetch(convert=True)


def test_secrets_never_reach_errors_or_logs(sim: SimExchange, settings: Settings) -> None:
    """Even when the exchange echoes the key back, neither errors nor logs carry it."""
    stream = io.StringIO()
    logs.configure(level="DEBUG", fmt="json", secrets=settings.secret_values(), stream=stream)
    texts = []
    for message in (f"bad key {API_KEY}", f"bad web key {WEB_KEY}"):
        sim.clear_faults()
        sim.inject("code", times=None, code=401, message=message)
        try:
            ExchangeClient(settings).fetch(convert=True)
        except AuthError as exc:
            texts.append(str(exc))
            structlog.get_logger("t").error("poll failed", error=exc, echoed=message)
            logging.getLogger("urllib3").warning("raw %s", message)
            try:
                raise RuntimeError(message)
            except RuntimeError:
                structlog.get_logger("t").exception("boom")
    output = stream.getvalue() + "\n".join(texts)
    assert "bad key ***" in output
    assert API_KEY not in output and WEB_KEY not in output
    MASKER.clear()


def test_totals_send_no_convert_parameter(sim: SimExchange, settings: Settings) -> None:
    ExchangeClient(settings).fetch(convert=False)
    assert sim.requests[-1]["query"] == {} and sim.requests[-1]["path"] == "/v1/getAssetsOverview"


def test_the_shape_of_data_decides_not_the_question(sim: SimExchange, settings: Settings) -> None:
    """A gateway that answers rows when totals were asked (PHP's "false" is true) is read right;
    totals where rows were asked would read as an account without a currency, every balance
    zero, so that answer is a bad one (the second adversarial round)."""
    rows = json.dumps({"data": sim.rows(), "code": 0, "msg": "ok", "is_testnet": False})
    sim.inject("raw", status=200, body=rows)
    overview = ExchangeClient(settings).fetch(convert=False)
    assert overview.totals is None and overview.currencies["BTC"].originSpot == Decimal("0.05")
    totals = json.dumps({"data": sim.totals(), "code": 0, "msg": "ok", "is_testnet": False})
    sim.inject("raw", status=200, body=totals)
    with pytest.raises(BadResponse, match="currencies were asked for"):
        ExchangeClient(settings).fetch(convert=True)


@pytest.mark.parametrize(
    ("body", "error", "text"),
    [
        ({"success": False, "code": 401, "message": "x"}, AuthError, "WATCHER_API_KEY"),
        ({"success": False, "code": 402, "message": "expired"}, AuthError, "web key may have"),
        ({"success": False, "code": 602, "message": "sig"}, AuthError, "log in to MEXC again"),
        (
            {"success": False, "code": 510, "message": "Request frequently too fast!"},
            RateLimited,
            "510: Request frequently too fast!",
        ),
        (
            {"success": False, "code": 0, "message": "curl error"},
            TransportError,
            "could not reach MEXC: curl error",
        ),
        ({"code": 402, "msg": "expired"}, AuthError, "402: expired"),
        ({"code": 510, "msg": "too fast"}, RateLimited, "510: too fast"),
        ({"code": 513, "msg": "timestamp"}, ExchangeError, "exchange error 513"),
    ],
)
def test_mexc_codes_map_in_both_envelopes(
    sim: SimExchange, settings: Settings, body: dict, error: type, text: str
) -> None:
    sim.inject("raw", times=None, status=200, body=json.dumps(body))
    with pytest.raises(error) as caught:
        ExchangeClient(settings).fetch(convert=True)
    assert type(caught.value) is error and text in str(caught.value)


def test_success_true_with_code_200_and_no_is_testnet(sim: SimExchange, settings: Settings) -> None:
    body = {"success": True, "code": 200, "data": sim.totals()}
    sim.inject("raw", status=200, body=json.dumps(body))
    overview = ExchangeClient(settings).fetch(convert=False)
    assert overview.is_testnet is None and overview.totals.total > 0


def test_a_redirect_is_an_error_naming_the_host_and_is_not_followed(
    sim: SimExchange, settings: Settings
) -> None:
    with SimExchange(api_key=API_KEY, web_key=WEB_KEY) as other:
        sim.inject("redirect", times=None, location=f"http://127.0.0.1:{other.port}/steal")
        with pytest.raises(TransportError, match="redirected to 127.0.0.1") as caught:
            ExchangeClient(settings).fetch(convert=True)
        assert "nothing was sent there" in str(caught.value)
        assert other.served == 0
