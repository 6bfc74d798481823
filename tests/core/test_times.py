"""WATCHER_TIMEZONE (#30, 8): people read one zone; JSON and logs stay UTC to the second."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.notify.test_notify import notice
from tests.support.helpers import at
from watcher.config.settings import Settings
from watcher.core import times
from watcher.core.errors import ConfigError
from watcher.engine.builtins import expiry
from watcher.notify.messages import Style, history


@pytest.fixture
def berlin() -> Iterator[None]:
    times.use_zone("Europe/Berlin")
    yield
    times.use_zone("UTC")


def test_a_history_line_reads_in_the_display_zone(berlin) -> None:
    winter = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
    lines = history(
        [notice(at=winter), notice(kind="resolved", at=winter.replace(hour=9))], Style(False)
    )
    assert "FIRING 09:00 -> RESOLVED 10:00 CET (resolved)" in lines
    summer = datetime(2026, 7, 10, 8, 0, tzinfo=UTC)
    assert "FIRING 10:00 -> STILL FIRING 10:00 CEST" in history(
        [notice(at=summer), notice(kind="repeat", at=summer)], Style(False)
    )


def test_the_key_expiry_and_times_shown_name_their_zone(berlin) -> None:
    expires = datetime(2026, 11, 29, 5, 6, tzinfo=UTC)
    assert expiry(expires, expires.replace(day=30)) == "expired 1d ago (2026-11-29 06:06 CET)"
    assert times.shown(at(0)).endswith(("CET", "CEST"))


def test_utc_stays_the_default_and_machine_stamps_are_utc_to_the_second() -> None:
    moment = datetime(2026, 11, 30, 8, 15, 7, 123456, tzinfo=UTC)
    assert times.shown(moment) == "2026-11-30 08:15 UTC"
    assert times.stamp(moment) == "2026-11-30T08:15:07+00:00"


def test_an_unknown_zone_is_one_line_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^WATCHER_TIMEZONE: unknown time zone 'Mars/Base'"):
        Settings(timezone="Mars/Base")
    assert Settings(timezone="Europe/Berlin").timezone == "Europe/Berlin"


def test_the_digest_reads_in_the_display_zone(berlin) -> None:
    """#30, 8: a silence's end and a late digest's sending time, in the display zone."""
    from datetime import time as clock

    from tests.support.helpers import overview, row
    from watcher.config.model import Digest
    from watcher.core.alerts import Silence
    from watcher.notify.digest import Book, Facts, compose

    now = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    muted = Silence(1, "low", None, now, datetime(2026, 1, 10, 15, 0, tzinfo=UTC), "topping up")
    book = Book(None, overview(row("USDT", spot="100"), total="100"))
    text = compose(Digest(at=clock(8, 0)), Facts("vps-1", now, (book,), silences=(muted,)), True)
    assert "sent 2026-01-10 13:00 CET" in text.splitlines()[0]
    assert "Silenced: low until 2026-01-10 16:00 CET" in text
