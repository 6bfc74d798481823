"""One-tap actions (#27, 3): /alerts' buttons, answered, acted on once, the message edited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.support.daemon_harness import wait_for
from tests.support.helpers import at
from watcher.config.model import TelegramCommands
from watcher.config.rules_file import parse_rules
from watcher.core.alerts import FIRING, Alert
from watcher.sim.bot_api import FakeTelegram
from watcher.store import Store
from watcher.telegram.bot import MENU, Bot
from watcher.telegram.commands import Context

TOKEN = "123456789:AAF-fake-bot-token-0123456789abcdef"
RULES = (
    'channels: {default: "console://"}\n'
    "rules:\n  - name: usdt-spot-low\n    when: USDT.spot < 100\n"
)


def started(telegram: FakeTelegram, tmp_path: Path) -> Bot:
    store = Store(tmp_path / "w.db")
    alerts = [
        Alert("usdt-spot-low", None, FIRING, at(0), fired_at=at(0)),
        Alert("liq-near", "BTC_USDT long", FIRING, at(0), fired_at=at(0)),
    ]
    store.commit({"main": {a.key: a for a in alerts}})
    rules = parse_rules(RULES)
    context = Context(store, lambda: rules, dict, lambda: datetime.now(UTC))
    spec = TelegramCommands(TOKEN, (111,), api_url=telegram.url)
    return Bot(spec, context, long_poll=0).start()


def test_alerts_carry_buttons_a_tap_acts_once_and_edits_the_message(tmp_path, telegram) -> None:
    bot = started(telegram, tmp_path)
    try:
        wait_for(lambda: telegram.menus, what="setMyCommands at start")
        assert [c["command"] for c in telegram.menus[0]] == [name for name, _ in MENU]
        telegram.say("/alerts")
        wait_for(lambda: telegram.sent, what="the /alerts reply")
        reply = telegram.sent[-1]
        rows = reply["reply_markup"]["inline_keyboard"]
        assert len(rows) == 2 and [b["text"] for b in rows[0]][1:] == ["Silence 1h", "Silence 24h"]
        ack = next(b for row in rows for b in row if b["text"].startswith("Acknowledge: usdt-spot"))
        ident = telegram.tap(ack["callback_data"], reply)
        wait_for(lambda: telegram.edits, what="the message edited")
        assert telegram.answers[0]["callback_query_id"] == ident
        assert telegram.answers[0]["text"].startswith("acknowledged: usdt-spot-low")
        edited = telegram.edits[0]["text"]
        assert "acknowledged: usdt-spot-low" in edited and "(trader, " in edited
        assert [a.rule for a in bot.context.store.acks()] == ["usdt-spot-low"]
        telegram.again(ident)  # Telegram delivers the same tap twice
        wait_for(lambda: len(telegram.offsets) > 4, what="more polls")
        assert len(telegram.edits) == 1 and len(bot.context.store.acks()) == 1
        silence = next(b for b in rows[1] if b["text"] == "Silence 24h")
        telegram.tap(silence["callback_data"], reply)
        wait_for(lambda: len(telegram.edits) == 2, what="the silence")
        (muted,) = bot.context.store.silences(datetime.now(UTC))
        assert (muted.rule, muted.currency) == ("liq-near", "BTC_USDT long")
    finally:
        bot.stop()


def test_a_strangers_tap_does_nothing(tmp_path, telegram) -> None:
    bot = started(telegram, tmp_path)
    try:
        telegram.say("/alerts")
        wait_for(lambda: telegram.sent, what="the /alerts reply")
        reply = telegram.sent[-1]
        data = reply["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        telegram.tap(data, reply, user=666, chat=666)
        wait_for(lambda: telegram.answers, what="the tap answered (the spinner stops)")
        assert "text" not in telegram.answers[0] and not telegram.edits
        assert bot.context.store.acks() == []
    finally:
        bot.stop()
