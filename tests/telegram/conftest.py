"""The fake Bot API for every Telegram test."""

from __future__ import annotations

import pytest

from tests.support.bot_api import FakeTelegram


@pytest.fixture
def telegram():
    fake = FakeTelegram()
    yield fake
    fake.stop()
