"""Telegram updates as a hostile Bot API can serve them (second adversarial round,
finding 10), commands addressed to another bot and replies as Telegram takes them
(issue "Telegram as Telegram is"), against the local fake of the Bot API."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from tests.support.daemon_harness import wait_for
from tests.support.helpers import overview, row
from tests.telegram.conftest import bot_on
from watcher.sim.bot_api import BOT_NAME, FakeTelegram


def polls(telegram: FakeTelegram, more: int = 2) -> None:
    """Wait until the bot has asked for updates ``more`` times again."""
    seen = len(telegram.calls)
    wait_for(lambda: len(telegram.calls) >= seen + more, what=f"{more} more getUpdates")


def test_a_command_for_another_bot_is_ignored_and_one_for_this_bot_is_answered(
    bot, telegram: FakeTelegram
) -> None:
    telegram.say("/help@other_bot")
    telegram.say(f"/help@{BOT_NAME}")
    telegram.say("/help")
    wait_for(lambda: len(telegram.replies()) == 2, what="two replies")
    polls(telegram)
    assert len(telegram.replies()) == 2


def test_an_update_served_again_runs_once(bot, telegram: FakeTelegram) -> None:
    """A Bot API that re-serves one /silence made 3,359 silences in 10 s."""
    telegram.say("/silence exchange-unreachable 1h")
    wait_for(lambda: telegram.replies(), what="the /silence reply")
    again = json.dumps({"ok": True, "result": copy.deepcopy(telegram.updates)}).encode()
    telegram.junk += [(200, again, {})] * 5
    wait_for(lambda: not telegram.junk, what="the same update served five more times")
    polls(telegram)
    assert len(bot.context.store.silences(bot.context.clock())) == 1
    assert len(telegram.replies()) == 1


def test_every_poll_asks_for_messages_and_taps_only(bot, telegram: FakeTelegram) -> None:
    for _ in range(120):  # more than one answer holds (Telegram gives 100 at most)
        telegram.say("/help")
    wait_for(lambda: len(telegram.replies()) == 120, timeout=60, what="120 replies")
    asked = {json.loads(a) for a in telegram.allowed if a} if False else telegram.allowed
    assert asked and all(json.loads(a) == ["message", "callback_query"] for a in asked)


def test_instant_empty_answers_get_a_gap_not_a_busy_loop(tmp_path, telegram) -> None:
    telegram.instant_empty = True
    bot = bot_on(telegram, tmp_path).start()
    time.sleep(3)
    bot.stop()
    assert 1 <= len(telegram.calls) <= 5  # one a second at most, not thousands


def test_odd_ids_get_one_clear_reply(bot, telegram: FakeTelegram) -> None:
    for odd in ("²", "99999999999999999999", "\u0661\u0662"):
        telegram.say(f"/unsilence {odd}")
    wait_for(lambda: len(telegram.replies()) == 3, what="three replies")
    assert telegram.replies() == ["usage: /unsilence ID (the number /silence gave)"] * 3


def test_an_edited_message_never_runs_its_command_again(bot, telegram: FakeTelegram) -> None:
    ident = telegram.say("/help")
    with telegram.ready:
        first = telegram.updates[-1]
        telegram.next_id += 1
        edited = {"update_id": telegram.next_id, "edited_message": first["message"]}
        telegram.updates.append(edited)
        telegram.ready.notify_all()
    wait_for(lambda: telegram.replies(), what="the reply")
    polls(telegram)
    assert len(telegram.replies()) == 1 and ident < edited["update_id"]


def test_a_message_dated_in_the_future_is_refused(bot, telegram: FakeTelegram) -> None:
    telegram.say("/silence exchange-unreachable 1h", age=-600)  # ten minutes ahead
    wait_for(lambda: telegram.replies(), what="the reply")
    assert telegram.replies() == ["dated in the future, not applied (check this server's clock)"]
    assert bot.context.store.silences(bot.context.clock()) == []


def test_balances_of_20_accounts_arrive_whole_in_valid_parts(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    """Issue "Telegram as Telegram is", point 2: text[:4096] could cut inside a tag, and
    Telegram refused the whole reply; /balances is about 760 characters per account."""
    coins = [row(f"C{i:02d}", "1", spot=str(1000 + i), contract="5") for i in range(12)]
    accounts = {f"account-{n:02d}": overview(*coins) for n in range(20)}
    bot = bot_on(telegram, tmp_path, balances=lambda: accounts).start()
    try:
        asked = telegram.say("/balances")
        wait_for(lambda: len(telegram.sent) >= 2, what="the reply in parts")
        polls(telegram)
    finally:
        bot.stop()
    assert telegram.refusals == []
    whole = "\n".join(m["text"] for m in telegram.sent)
    assert len(whole) > 6000 and all(len(m["text"]) <= 4096 for m in telegram.sent)
    for coin in range(12):  # every row of every account's table, once
        assert whole.count(f"C{coin:02d}  1,{5 + coin:03d}  1,{coin:03d}") == 20
    first, *rest = telegram.sent
    assert first["reply_parameters"] == {"message_id": asked, "allow_sending_without_reply": True}
    assert all("reply_parameters" not in m for m in rest)


def test_a_429_delays_the_reply_and_it_still_arrives(bot, telegram: FakeTelegram) -> None:
    telegram.throttle = 1
    telegram.say("/help")
    wait_for(lambda: telegram.replies(), timeout=20, what="the reply after the 429")
    assert len(telegram.replies()) == 1 and telegram.replies()[0].startswith("watcher commands")
    assert telegram.sent_at[0] - telegram.throttled[0] >= 1.9  # retry_after: 2


def test_killed_between_acting_and_confirming_a_restart_runs_nothing_twice(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    """A kill -9 can fall after a command ran and before Telegram heard the confirming
    offset: Telegram then serves it again to the next process, which must not act again."""
    first = bot_on(telegram, tmp_path).start()
    telegram.say("/silence exchange-unreachable 1h")
    wait_for(lambda: telegram.replies(), what="the /silence reply")
    first.stop()
    with telegram.ready:
        telegram.confirmed = 0  # as if the confirming getUpdates never arrived
    restarted = bot_on(telegram, tmp_path).start()
    try:
        telegram.say("/help")
        wait_for(lambda: len(telegram.replies()) == 2, what="the next command answered")
        polls(telegram)
    finally:
        restarted.stop()
    assert len(restarted.context.store.silences(restarted.context.clock())) == 1
    assert telegram.replies()[1].startswith("watcher commands")
