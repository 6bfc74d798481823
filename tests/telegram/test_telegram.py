"""Telegram commands against a local fake of the Bot API, with `watcher run` as a process."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from tests.support.daemon_harness import DaemonProcess, wait_for
from tests.support.receivers import Receiver
from tests.telegram.conftest import bot_on, state
from watcher.sim.bot_api import TOKEN, FakeTelegram
from watcher.sim.exchange import SimExchange
from watcher.telegram.bot import STOP_WAIT


def rules(receiver: Receiver, telegram: FakeTelegram) -> str:
    return f"""
commands:
  telegram:
    token: "${{TG_TOKEN}}"
    chats: [111]
    api_url: "{telegram.url}"
channels:
  default: "{receiver.url()}"
rules:
  - name: low
    when: USDT.spot < 100
    repeat: 1s
"""


def test_commands_from_the_phone(tmp_path: Path, sim: SimExchange, receiver, telegram) -> None:
    daemon = DaemonProcess(tmp_path, sim, rules(receiver, telegram), TG_TOKEN=TOKEN)
    try:
        daemon.start()
        wait_for(lambda: telegram.offsets, what="the bot polling")
        wait_for(lambda: sim.served >= 2, what="a poll")
        telegram.say("/balances")
        wait_for(lambda: telegram.replies(), what="/balances reply")
        table = telegram.replies()[-1]
        assert table.startswith("<pre>") and "USDT" in table and "2,300" in table
        assert "1,500" in table and "BTC" in table
        # A firing alert repeats every second until acknowledged; its RESOLVED still comes.
        sim.set_coin("USDT", "1", spot="50")
        wait_for(
            lambda: any("STILL FIRING low" in p["message"] for p in receiver.posts), what="a repeat"
        )
        telegram.say("/ack low")
        wait_for(lambda: len(telegram.replies()) == 2, what="/ack reply")
        assert telegram.replies()[-1] == "acknowledged: low (main); no repeats until it resolves"
        time.sleep(0.5)  # a repeat decided just before the ack may still be on its way
        seen = len(receiver.posts)
        time.sleep(2.5)
        assert len(receiver.posts) == seen  # no repeats while acknowledged
        telegram.say("/alerts")
        wait_for(lambda: len(telegram.replies()) == 3, what="/alerts reply")
        assert "FIRING low (main) since" in telegram.replies()[-1]
        assert "(acknowledged)" in telegram.replies()[-1]
        sim.set_coin("USDT", "1", spot="5000")
        wait_for(
            lambda: any(p["message"].startswith("RESOLVED low") for p in receiver.posts),
            what="RESOLVED after the ack",
        )
        # /silence and /unsilence, a stranger, a stale command, a mistake.
        telegram.say("/silence low 1h topping up")
        wait_for(lambda: len(telegram.replies()) == 4, what="/silence reply")
        assert telegram.replies()[-1] == "silence 1: low muted for 1h"
        telegram.say("/unsilence 1")
        telegram.say("/silence low 1h", chat=999, user=7)  # not on the list
        telegram.say("/status", age=11 * 60)  # sent while watcher was down
        telegram.say("/silence nope 2h")
        telegram.say("/frobnicate")
        wait_for(lambda: len(telegram.replies()) == 8, what="four more replies")
        assert telegram.replies()[4:] == [
            "silence 1 removed",
            "too old, not applied (sent while watcher was not running)",
            "no rule named 'nope'; /alerts lists what fires",
            "unknown command /frobnicate; try /help",
        ]
        assert telegram.replies(chat=999) == []
        assert daemon.output().count("not on the list was ignored") == 1
        assert TOKEN not in daemon.output()
        # A restart applies nothing twice: every update was answered exactly once.
        daemon.stop()
        daemon.start()
        wait_for(lambda: daemon.output().count("watcher started") == 2, what="restart")
        offsets = len(telegram.offsets)
        wait_for(lambda: len(telegram.offsets) > offsets + 1, what="polling again")
        assert len(telegram.replies()) == 8  # nothing ran twice
        assert daemon.stop()[0] == 0
    finally:
        daemon.close()


def test_telegram_down_does_not_stop_polls_or_alerts(tmp_path: Path, sim, receiver) -> None:
    down = FakeTelegram()
    down.stop()  # nothing listens: every getUpdates fails
    daemon = DaemonProcess(tmp_path, sim, rules(receiver, down), TG_TOKEN=TOKEN)
    try:
        daemon.start()
        sim.set_coin("USDT", "1", spot="50")
        wait_for(lambda: receiver.posts, what="an alert while Telegram is down")
        from watcher.cli.main import main

        state = tmp_path / "w.db"
        wait_for(
            lambda: (
                main(["status", "--state", str(state), "--rules", str(daemon.rules)]) == 0
                and "not connected" in (Path(state).exists() and _telegram_state(state) or "")
            ),
            what="status saying the bot is not connected",
        )
        assert daemon.stop()[0] == 0
    finally:
        daemon.close()


@pytest.mark.parametrize(
    ("body", "headers", "error"),
    [
        (b'{"ok": true, "result": [' + b'{"update_id": 1},' * 150_000 + b"{}]}", {}, "larger"),
        (gzip.compress(b" " * 40_000_000), {"Content-Encoding": "gzip"}, "larger than 2 MB"),
        (b"[" * 100_000, {}, "nests deeper"),
        (b"<html>502 Bad Gateway</html>", {}, "Telegram said 200"),
        (b'{"ok": true, "result": {"update_id": 5}}', {}, "not a list of updates"),
        (b'{"ok": true, "result": [{"update_id": 5, "message": {"chat": 1}}]}', {}, None),
    ],
    ids=["huge", "gzip-bomb", "deep", "html", "odd-result", "odd-update"],
)
def test_a_broken_telegram_answer_is_one_error_and_the_next_reads_fine(
    tmp_path: Path, telegram: FakeTelegram, body: bytes, headers: dict, error: str | None
) -> None:
    """Read like an exchange's answer: bounded in size, depth and time; never a dead bot."""
    telegram.junk.append((200, body, headers))
    bot = bot_on(telegram, tmp_path).start()
    try:
        if error is not None:
            wait_for(lambda: error in state(bot), what=f"the state naming {error!r}")
            assert TOKEN not in state(bot)
        telegram.say("/help")
        wait_for(lambda: telegram.replies(), timeout=20, what="/help answered after the junk")
        assert bot.thread.is_alive() and "/status" in telegram.replies()[0]
    finally:
        bot.stop()
    assert set(telegram.encodings) == {"gzip, deflate"}  # only what the reader can inflate


def test_telegram_refusals_are_reported_in_its_own_words_never_with_the_token(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    """409 (another instance or a webhook holds the updates) is what a trader must fix."""
    conflict = (
        "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running"
    )
    body = json.dumps({"ok": False, "error_code": 409, "description": conflict}).encode()
    telegram.junk.append((409, body, {"Content-Type": "application/json"}))
    bot = bot_on(telegram, tmp_path).start()
    try:
        wait_for(lambda: "409" in _telegram_state(tmp_path / "w.db"), what="the state")
        state = _telegram_state(tmp_path / "w.db")
        assert state == f"not connected (Telegram said 409: {conflict}); retrying"
        telegram.say("/help")
        wait_for(lambda: telegram.replies(), timeout=30, what="/help once the conflict ends")
    finally:
        bot.stop()
    wrong = bot_on(telegram, tmp_path / "other", token="987654:wrong-token-abcdef").start()
    try:
        wanted = "not connected (Telegram said 401: Unauthorized); retrying"
        wait_for(lambda: _telegram_state(tmp_path / "other" / "w.db") == wanted, what="the 401")
    finally:
        wrong.stop()


def test_the_bot_stops_within_the_daemons_budget(tmp_path: Path, telegram: FakeTelegram) -> None:
    bot = bot_on(telegram, tmp_path)
    bot.long_poll = 20  # a long poll under way when the stop comes
    bot.start()
    wait_for(lambda: telegram.calls, what="polling")
    started = time.monotonic()
    bot.stop()
    assert not bot.thread.is_alive() and time.monotonic() - started < STOP_WAIT


def _telegram_state(path: Path) -> str:
    import sqlite3

    with sqlite3.connect(path) as db:
        row = db.execute("SELECT value FROM meta WHERE key='telegram_state'").fetchone()
    return row[0] if row else ""


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("commands: {telegram: {token: '123:abc', chats: [1]}}\n", "never the secret itself"),
        ("commands: {telegram: {token: '${TG}'}}\n", "missing 'chats:', e.g. chats: [123456789]"),
        ("commands: {telegram: {token: '${TG}', chats: []}}\n", "a non-empty list"),
        ("commands: {slack: {}}\n", "commands: unknown key 'slack' (keys: telegram)"),
        (
            "commands: {telegram: {token: '${TG}', chats: [1], tokn: x}}\n",
            "telegram: unknown key 'tokn'; did you mean 'token'?",
        ),
    ],
)
def test_bad_commands_sections_are_located(tmp_path, capsys, monkeypatch, section, problem):
    from watcher.cli.main import main

    monkeypatch.setenv("TG", TOKEN)
    path = tmp_path / "rules.yaml"
    path.write_text('channels:\n  default: "console://"\n' + section + "rules: []\n")
    assert main(["check", "--rules", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3:" in err and problem in err and "123:abc" not in err
