"""The fake Bot API for every Telegram test, and the bot running against it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.config.model import TelegramCommands
from watcher.config.rules_file import parse_rules
from watcher.sim.bot_api import TOKEN, FakeTelegram
from watcher.store import Store
from watcher.telegram.bot import Bot
from watcher.telegram.commands import Context


@pytest.fixture
def telegram():
    fake = FakeTelegram()
    yield fake
    fake.stop()


def bot_on(telegram: FakeTelegram, tmp_path: Path, balances=dict, token: str = TOKEN) -> Bot:
    """A bot (not started) on the fake, with an empty rules file and a fresh state."""
    rules = parse_rules('channels: {default: "console://"}\nrules: []\n')
    context = Context(Store(tmp_path / "w.db"), lambda: rules, balances, lambda: datetime.now(UTC))
    return Bot(TelegramCommands(token, (111,), api_url=telegram.url), context, long_poll=1)


@pytest.fixture
def bot(telegram: FakeTelegram, tmp_path: Path) -> Iterator[Bot]:
    """The bot, running."""
    running = bot_on(telegram, tmp_path).start()
    yield running
    running.stop()


def state(bot: Bot) -> str:
    return bot.context.store.meta().get("telegram_state", "")
