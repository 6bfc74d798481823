"""Golden lines: what a phone shows at 3 am, in plain text and in markdown.

Every golden line stands verbatim in the README's "What the messages look like".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from watcher.core.alerts import Notice
from watcher.notify.messages import Style, history, human, line, title

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
T = datetime(2026, 11, 27, 3, 1, tzinfo=UTC)
D = Decimal


def n(rule: str, kind: str = "firing", **kw) -> Notice:
    base = dict(
        rule=rule,
        currency=None,
        kind=kind,
        severity="warning",
        channels=("default",),
        value=None,
        threshold=None,
        since=T,
        at=T,
    )
    return Notice(**{**base, **kw})


LOW = {"condition": "USDT.spot < 100", "threshold": D("100")}
CASES = {
    "firing": (
        n("usdt-spot-low", value=D("80.00000"), **LOW),
        "FIRING usdt-spot-low: USDT.spot < 100 (value 80, threshold 100)",
        "FIRING **usdt-spot-low**: USDT.spot < 100 (value 80, threshold 100)",
    ),
    "a rule's own message, escaped for markdown": (
        n("usdt-spot-low", value=D("80"), text="USDT spot is 80: top_up *now*", **LOW),
        "FIRING usdt-spot-low: USDT spot is 80: top_up *now*",
        "FIRING **usdt-spot-low**: USDT spot is 80: top\\_up \\*now\\*",
    ),
    "a % rule": (
        n(
            "contract-heavy",
            severity="critical",
            value=D("0.812665"),
            threshold=D("0.6"),
            condition="contract / total > 60%",
            percent=True,
        ),
        "FIRING contract-heavy: contract / total > 60% (value 81.3%, threshold 60%)",
        "FIRING **contract-heavy**: contract / total > 60% (value 81.3%, threshold 60%)",
    ),
    "per currency": (
        n(
            "coin-heavy",
            currency="BTC",
            value=D("0.0115100"),
            threshold=D("0.01"),
            condition="originContract > 0.01",
        ),
        "FIRING coin-heavy BTC: originContract > 0.01 (value 0.01151, threshold 0.01)",
        "FIRING **coin-heavy BTC**: originContract > 0.01 (value 0.01151, threshold 0.01)",
    ),
    "repeat": (
        n(
            "usdt-spot-low",
            kind="repeat",
            value=D("7779.00000"),
            threshold=D("10000"),
            condition="USDT.spot < 10000",
            fired_at=T,
            at=T + timedelta(hours=4),
        ),
        "STILL FIRING usdt-spot-low for 4h: USDT.spot < 10000 (value 7,779, threshold 10,000)",
        "STILL FIRING **usdt-spot-low** for 4h: USDT.spot < 10000 (value 7,779, threshold 10,000)",
    ),
    "resolved": (
        n(
            "usdt-spot-low",
            "resolved",
            value=D("5000"),
            fired_at=T,
            at=T + timedelta(minutes=12),
            **LOW,
        ),
        "RESOLVED usdt-spot-low after 12m: USDT.spot < 100 no longer holds (value 5,000, "
        "threshold 100)",
        "RESOLVED **usdt-spot-low** after 12m: USDT.spot < 100 no longer holds (value "
        "5,000, threshold 100)",
    ),
    "a hysteresis resolve": (
        n(
            "share-flap-guard",
            "resolved",
            value=D("0.641"),
            threshold=D("0.65"),
            condition="contract / total < 65%",
            percent=True,
            cleared=True,
            fired_at=T,
            at=T + timedelta(minutes=7),
        ),
        "RESOLVED share-flap-guard after 7m: contract / total < 65% holds (value 64.1%, "
        "threshold 65%)",
        "RESOLVED **share-flap-guard** after 7m: contract / total < 65% holds (value "
        "64.1%, threshold 65%)",
    ),
    "a change() rule whose window moved on": (
        n(
            "btc-drawdown",
            "resolved",
            value=D("-0.04"),
            threshold=D("-0.1"),
            condition="change(BTC.total, 1h) < -10%",
            percent=True,
            windowed=True,
            fired_at=T,
            at=T + timedelta(minutes=40),
        ),
        "RESOLVED btc-drawdown after 40m: change(BTC.total, 1h) < -10% is no longer true",
        "RESOLVED **btc-drawdown** after 40m: change(BTC.total, 1h) < -10% is no longer true",
    ),
    "exchange-unreachable": (
        n(
            "exchange-unreachable",
            severity="critical",
            text="no successful poll for 5m; last error: cannot reach the exchange at "
            "www.mexc.com: timed out. watcher keeps trying: check this server's network "
            "and MEXC's status",
        ),
        "FIRING exchange-unreachable: no successful poll for 5m; last error: cannot reach the "
        "exchange at www.mexc.com: timed out. watcher keeps trying: check this server's network "
        "and MEXC's status",
        "FIRING **exchange-unreachable**: no successful poll for 5m; last error: cannot reach the "
        "exchange at www.mexc.com: timed out. watcher keeps trying: check this server's network "
        "and MEXC's status",
    ),
    "exchange-unreachable resolved": (
        n("exchange-unreachable", "resolved", fired_at=T, at=T + timedelta(minutes=9)),
        "RESOLVED exchange-unreachable after 9m: the exchange answers again",
        "RESOLVED **exchange-unreachable** after 9m: the exchange answers again",
    ),
    "auth-failed": (
        n(
            "auth-failed",
            severity="critical",
            text="MEXC refused the credentials (402: expired): log in to MEXC again and update "
            "the web key (credential `web_key` or `WATCHER_WEB_KEY`)",
        ),
        "FIRING auth-failed: MEXC refused the credentials (402: expired): log in to MEXC again "
        "and update the web key (credential `web_key` or `WATCHER_WEB_KEY`)",
        "FIRING **auth-failed**: MEXC refused the credentials (402: expired): log in to MEXC "
        "again and update the web key (credential \\`web\\_key\\` or \\`WATCHER\\_WEB\\_KEY\\`)",
    ),
    "network-mismatch": (
        n(
            "network-mismatch",
            severity="critical",
            text="asked for MAINNET but the gateway served TESTNET balances; these are not your "
            "real numbers (check WATCHER_NETWORK)",
        ),
        "FIRING network-mismatch: asked for MAINNET but the gateway served TESTNET balances; "
        "these are not your real numbers (check WATCHER_NETWORK)",
        "FIRING **network-mismatch**: asked for MAINNET but the gateway served TESTNET balances; "
        "these are not your real numbers (check WATCHER\\_NETWORK)",
    ),
    "web-key-expiry": (
        n(
            "web-key-expiry",
            text="the MEXC web key expires 2026-12-01 08:00 UTC (in 11h59m): log in to MEXC "
            "again and update WATCHER_WEB_KEY",
        ),
        "FIRING web-key-expiry: the MEXC web key expires 2026-12-01 08:00 UTC (in 11h59m): log "
        "in to MEXC again and update WATCHER_WEB_KEY",
        "FIRING **web-key-expiry**: the MEXC web key expires 2026-12-01 08:00 UTC (in 11h59m): "
        "log in to MEXC again and update WATCHER\\_WEB\\_KEY",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_golden_line_plain_and_markdown_and_in_the_readme(name: str) -> None:
    notice, plain, markdown = CASES[name]
    assert line(notice, Style(markdown=False)) == plain
    assert line(notice, Style(markdown=True)) == markdown
    assert f"    {plain}\n" in README and f"    {markdown}\n" in README


def flapped() -> list[Notice]:
    fired = n("usdt-spot-low", value=D("80"), **LOW)
    back = n(
        "usdt-spot-low", "resolved", value=D("500"), fired_at=T, at=T + timedelta(minutes=4), **LOW
    )
    later = T + timedelta(minutes=8)
    again = n("usdt-spot-low", value=D("60"), since=later, at=later, **LOW)
    return [fired, back, again]


def test_golden_collapsed_history() -> None:
    plain = (
        "usdt-spot-low: FIRING 03:01 -> RESOLVED 03:05 -> FIRING 03:09 UTC (still firing); "
        "USDT.spot < 100 (value 60, threshold 100)"
    )
    markdown = plain.replace("usdt-spot-low:", "**usdt-spot-low**:", 1)
    assert history(flapped(), Style(markdown=False)) == plain
    assert history(flapped(), Style(markdown=True)) == markdown
    assert f"    {plain}\n" in README and f"    {markdown}\n" in README


def test_titles_name_the_instance_and_the_worst_severity() -> None:
    _, _, heavy = flapped()[0], None, CASES["a % rule"][0]
    assert title([*flapped(), heavy], "vps-1") == "watcher vps-1: 2 firing (critical)"
    resolved = CASES["resolved"][0]
    assert title([resolved], "vps-1") == "watcher vps-1: 1 resolved"
    assert "    watcher vps-1: 2 firing (critical)\n" in README


@pytest.mark.parametrize(
    ("value", "percent", "text"),
    [
        ("7779.00000", False, "7,779"),
        ("0.0115100", False, "0.01151"),
        ("1234.5678", False, "1,234.57"),
        ("-250.10", False, "-250.1"),
        ("0", False, "0"),
        ("0.812665", True, "81.3%"),
        ("0.6", True, "60%"),
        ("0.000512", True, "0.0512%"),
        ("-0.1", True, "-10%"),
    ],
)
def test_numbers_for_people(value: str, percent: bool, text: str) -> None:
    assert human(Decimal(value), percent) == text
