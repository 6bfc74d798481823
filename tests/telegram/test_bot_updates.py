"""Telegram updates as a hostile Bot API can serve them (second adversarial round,
finding 10) and commands addressed to another bot (issue "Telegram as Telegram is"),
against the local fake of the Bot API."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from tests.support.bot_api import BOT_NAME, FakeTelegram
from tests.telegram.test_telegram import bot_on


def run(bot, telegram: FakeTelegram) -> None:
    """One getUpdates and each update handled, as the bot's loop does."""
    for update in bot.updates():
        bot.handle(update)


def test_a_command_for_another_bot_is_ignored_and_one_for_this_bot_is_answered(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    bot = bot_on(telegram, tmp_path)
    telegram.say("/help@other_bot")
    telegram.say(f"/help@{BOT_NAME}")
    telegram.say("/help")
    run(bot, telegram)
    assert len(telegram.replies()) == 2


def test_an_update_served_again_below_the_offset_runs_once(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    """A Bot API that re-serves one /silence made 3,359 silences in 10 s."""
    bot = bot_on(telegram, tmp_path)
    telegram.say("/silence exchange-unreachable 1h")
    run(bot, telegram)
    again = json.dumps({"ok": True, "result": copy.deepcopy(telegram.updates)}).encode()
    for _ in range(5):
        telegram.junk.append((200, again, {}))
        run(bot, telegram)
    assert len(bot.context.store.silences(bot.context.clock())) == 1
    assert len(telegram.replies()) == 1
    assert bot.offset() == telegram.updates[-1]["update_id"] + 1


def test_every_poll_asks_for_a_bounded_batch(tmp_path: Path, telegram: FakeTelegram) -> None:
    bot = bot_on(telegram, tmp_path)
    for _ in range(120):
        telegram.say("/help")
    assert len(bot.updates()) == 100 and telegram.limits[-1] == "100"
    assert json.loads(telegram.allowed[-1]) == [
        "message",
        "callback_query",
    ]  # never an earlier client's choice


def test_instant_empty_answers_get_a_gap_not_a_busy_loop(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    telegram.instant_empty = True
    bot = bot_on(telegram, tmp_path).start()
    time.sleep(3)
    bot.stop()
    assert 1 <= len(telegram.calls) <= 5  # one a second at most, not thousands


def test_odd_ids_get_one_clear_reply(tmp_path: Path, telegram: FakeTelegram) -> None:
    bot = bot_on(telegram, tmp_path)
    for odd in ("²", "99999999999999999999", "\u0661\u0662"):
        telegram.say(f"/unsilence {odd}")
    run(bot, telegram)
    assert telegram.replies() == ["usage: /unsilence ID (the number /silence gave)"] * 3


def test_an_edited_message_never_runs_its_command_again(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    bot = bot_on(telegram, tmp_path)
    ident = telegram.say("/help")
    with telegram.ready:
        first = telegram.updates[-1]
        telegram.next_id += 1
        edited = {"update_id": telegram.next_id, "edited_message": first["message"]}
        telegram.updates.append(edited)
    run(bot, telegram)
    assert len(telegram.replies()) == 1 and ident < edited["update_id"]


def test_a_message_dated_in_the_future_is_refused(tmp_path: Path, telegram: FakeTelegram) -> None:
    bot = bot_on(telegram, tmp_path)
    telegram.say("/silence exchange-unreachable 1h", age=-600)  # ten minutes ahead
    run(bot, telegram)
    assert telegram.replies() == ["dated in the future, not applied (check this server's clock)"]
    assert bot.context.store.silences(bot.context.clock()) == []


def test_a_6000_character_reply_arrives_as_two_valid_parts(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    """Issue "Telegram as Telegram is", point 2: text[:4096] could cut inside a tag, and
    Telegram refused the whole reply."""
    bot = bot_on(telegram, tmp_path)
    lines = [f"<b>C{i:04d}</b> spot <code>{i},000.5</code> &amp; more" for i in range(140)]
    text = "\n".join(lines)
    assert len(text) > 6000
    bot.send(111, text, 5)
    assert telegram.refusals == [] and len(telegram.sent) == 2
    assert "\n".join(m["text"] for m in telegram.sent) == text
    first, second = telegram.sent
    assert first["reply_parameters"] == {"message_id": 5, "allow_sending_without_reply": True}
    assert "reply_parameters" not in second and "reply_to_message_id" not in first


def test_a_429_delays_the_reply_and_it_still_arrives(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    bot = bot_on(telegram, tmp_path)
    telegram.throttle = 1
    bot.send(111, "<b>status</b>", None)
    assert telegram.replies() == ["<b>status</b>"]
    assert telegram.sent_at[0] - telegram.throttled[0] >= 1.9  # retry_after: 2
