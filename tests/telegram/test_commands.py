"""What each Telegram command answers, word for word, from a real state database.

The bot around these (long polling, who may command, offsets) is proven against a
fake Bot API in test_telegram.py; here every branch of every reply is, because a
trader reads them on a phone at 3 am and acts on them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.helpers import T0, at, overview, row
from watcher.app.preflight import prepare
from watcher.config.rules_file import parse_rules
from watcher.core.alerts import FIRING, PENDING, Alert, per_account
from watcher.store import Store
from watcher.telegram.commands import HELP, Context, handle

RULES = """
accounts:
  main: {source: mexc, web_key: "${K1}"}
  hedge: {source: mexc, web_key: "${K2}"}
channels:
  default: "console://"
rules:
  - name: usdt-spot-low
    when: USDT.spot < 100
  - name: coin-heavy
    each: currency
    when: contract > 80% * total
"""
NOW = at(minutes=30)


@pytest.fixture
def ctx(tmp_path) -> Context:
    rules = prepare(parse_rules(RULES), env={"K1": "WEB-one-123456", "K2": "WEB-two-123456"})
    store = Store(tmp_path / "w.db")
    alerts = [
        Alert("usdt-spot-low", None, FIRING, T0, fired_at=T0, account="main"),
        Alert(
            "coin-heavy", "BTC", FIRING, at(minutes=10), fired_at=at(minutes=10), account="hedge"
        ),
        Alert("coin-heavy", "ETH", PENDING, at(minutes=25), account="hedge"),
    ]
    meta = {
        "main/last_poll": NOW.isoformat(),
        "main/last_result": "ok",
        "hedge/last_poll": NOW.isoformat(),
        "hedge/last_result": "AuthError",
    }
    store.commit(per_account({a.key: a for a in alerts}), meta=meta)
    books = {
        "main": overview(row("USDT", spot="50", contract="10"), row("BTC", "60000", spot="0.1")),
        "hedge": overview(row("BTC", "60000", contract="1"), row("ETH", "3000", contract="2")),
    }
    return Context(store, lambda: rules, lambda: books, lambda: NOW)


def say(ctx: Context, text: str, replied: str | None = None) -> str:
    return handle(text, replied, ctx, "telegram:trader")


def test_status_names_each_account_what_fires_and_the_outbox(ctx: Context) -> None:
    assert say(ctx, "/status@watcher_bot") == (
        "main: last poll 2026-01-01 00:30:00 UTC (ok)\n"
        "hedge: last poll 2026-01-01 00:30:00 UTC (AuthError)\n"
        "firing: 2: usdt-spot-low (main), coin-heavy BTC (hedge)\n"
        "outbox: 0 waiting"
    )


def test_balances_per_account_biggest_first_and_filtered(ctx: Context) -> None:
    assert say(ctx, "/balances") == (
        "hedge:\n<pre>      total  spot  contract\n"
        "BTC  60,000     0    60,000\n"
        "ETH   6,000     0     6,000</pre>\n"
        "main:\n<pre>      total   spot  contract\n"
        "BTC   6,000  6,000         0\n"
        "USDT     60     50        10</pre>"
    )
    assert say(ctx, "/balances eth hedge") == (
        "hedge:\n<pre>     total  spot  contract\nETH  6,000     0     6,000</pre>"
    )
    assert say(ctx, "/balances DOGE main") == "main:\n<pre>  total  spot  contract</pre>"


def test_balances_before_the_first_poll(ctx: Context) -> None:
    empty = Context(ctx.store, ctx.rules, dict, ctx.clock)
    assert say(empty, "/balances") == "no balances yet: the first poll has not finished"


def test_alerts_oldest_first_with_how_long_and_acks(ctx: Context) -> None:
    assert say(ctx, "/alerts") == (
        "FIRING usdt-spot-low (main) since 30m\n"
        "FIRING coin-heavy BTC (hedge) since 20m\n"
        "PENDING coin-heavy ETH (hedge) since 5m"
    )
    reply = "FIRING coin-heavy BTC (hedge): contract &gt; 80% * total (value 6,000)"
    assert say(ctx, "/ack", replied=reply) == (
        "acknowledged: coin-heavy BTC (hedge); no repeats until it resolves"
    )
    assert "FIRING coin-heavy BTC (hedge) since 20m (acknowledged)" in say(ctx, "/alerts")


@pytest.mark.parametrize(
    ("text", "replied", "answer"),
    [
        ("/ack", None, "usage: /ack RULE [CURRENCY] [account], or reply /ack to an alert"),
        ("/ack", "the daily digest", "that message names no firing alert; use /ack RULE"),
        ("/ack usdt-spot-low main", None, "acknowledged: usdt-spot-low (main); no repeats"),
        ("/ack coin-heavy eth hedge", None, "nothing is firing for coin-heavy ETH hedge;"),
        ("/ack nope", None, "nothing is firing for nope; see watcher status"),
    ],
)
def test_ack_answers(ctx: Context, text: str, replied: str | None, answer: str) -> None:
    assert say(ctx, text, replied).startswith(answer)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("/silence", "usage: /silence RULE DURATION [comment], e.g. /silence usdt-spot-low 4h"),
        ("/silence nope 1h", "no rule named 'nope'; /alerts lists what fires"),
        ("/silence usdt-spot-low soon", "duration: expected a duration like 30s, 5m or 1h"),
        ("/silence usdt-spot-low 0s", "the duration must be longer than 0s, e.g. 4h"),
        ("/silence exchange-unreachable 2h <b>maintenance</b>", "silence 1: exchange-unreachable"),
        ("/unsilence", "usage: /unsilence ID (the number /silence gave)"),
        ("/unsilence 9", "no silence with id 9"),
        ("/frobnicate <b>", "unknown command /frobnicate; try /help"),
        ("/<b>", "unknown command /&lt;b&gt;; try /help"),
        ("hello", "commands start with /; try /help"),
    ],
)
def test_every_mistake_gets_one_plain_answer(ctx: Context, text: str, answer: str) -> None:
    assert say(ctx, text).startswith(answer)


def test_silence_then_unsilence_and_the_comment_is_kept(ctx: Context) -> None:
    assert say(ctx, "/silence usdt-spot-low 4h topping up") == (
        "silence 1: usdt-spot-low muted for 4h"
    )
    [kept] = ctx.store.silences(NOW)
    assert kept.comment == "topping up" and kept.ends == NOW + timedelta(hours=4)
    assert say(ctx, "/silence coin-heavy 1h") == "silence 2: coin-heavy muted for 1h"
    assert ctx.store.silences(NOW)[-1].comment == "from Telegram by telegram:trader"
    assert say(ctx, "/unsilence 1") == "silence 1 removed"
    assert [s.rule for s in ctx.store.silences(NOW)] == ["coin-heavy"]


def test_help_and_start_list_the_commands(ctx: Context) -> None:
    assert say(ctx, "/help") == say(ctx, "/start") == HELP


def test_positions_nearest_to_liquidation_first_and_ack_by_reply(ctx: Context) -> None:
    """#28: /positions, and /ack of a position's FIRING line names its instance."""
    from dataclasses import replace
    from decimal import Decimal as D

    from watcher.core.positions import Position

    near = Position("BTC_USDT", "long", "isolated", D(100), D("0.0001"), D(60000),
                    D(58500), D(57240), D(20), D(300), D(-15))  # fmt: skip
    far = Position("ETH_USDT", "short", "isolated", D(10), D("0.01"), D(3000),
                   D(3000), D(3285), D(10), D(30), D(0))  # fmt: skip
    books = ctx.balances()
    held = {
        "main": replace(books["main"], positions=(far, near)),
        "hedge": replace(books["hedge"], positions_error="exchange error 600: parameter error"),
    }
    with_positions = Context(ctx.store, ctx.rules, lambda: held, ctx.clock)
    assert say(with_positions, "/positions") == (
        "hedge: positions not read (exchange error 600: parameter error)\n"
        "main:\n<pre>BTC_USDT long 20x: 2.2% from liquidation (mark 58,500, liquidation 57,240),"
        " pnl -15\nETH_USDT short 10x: 9.5% from liquidation (mark 3,000, liquidation 3,285),"
        " pnl 0</pre>"
    )
    line = "FIRING liq-near BTC_USDT long (main): BTC_USDT long 20x is 2.2% from liquidation"
    assert "liq-near BTC_USDT long" in say(ctx, "/ack", replied=line)
    assert "liq-near BTC_USDT long" in say(ctx, "/ack liq-near BTC_USDT long main")
