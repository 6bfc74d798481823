"""Shared fixtures: real local servers on 127.0.0.1, never mocks of our own code."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.postgres import fresh_schema, pg_url  # noqa: F401 - a fixture
from tests.support.receivers import Mailbox, Receiver
from watcher.config.settings import Settings
from watcher.core import logs
from watcher.sim.exchange import SimExchange

API_KEY = "sim-api-key-0123456789abcdef"
WEB_KEY = "WEB0123456789abcdefSECRETWEBKEY"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    """Tests never read the developer's WATCHER_* variables or .env."""
    for name in list(os.environ):
        if name.startswith("WATCHER_") or name in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    logs.reset()


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """Where a test's state lives: a file, or a fresh PostgreSQL schema. The store's own
    tests and the outbox's take it, and so run on both backends."""
    if request.param == "sqlite":
        yield tmp_path / "w.db"
    else:
        yield from fresh_schema()


@pytest.fixture
def sim() -> Iterator[SimExchange]:
    exchange = SimExchange(api_key=API_KEY, web_key=WEB_KEY)
    exchange.set_coin("USDT", "1", spot="1500", contract="800")
    exchange.set_coin("BTC", "60000", spot="0.05", contract="0.01")
    with exchange:
        yield exchange


@pytest.fixture
def settings(sim: SimExchange, tmp_path) -> Settings:
    """The default source, MEXC's web endpoints, played by the simulator."""
    return Settings(
        web_key=WEB_KEY,
        mexc_url=sim.mexc_url,
        interval="5s",
        timeout="1s",
        state=tmp_path / "watcher.db",
    )


@pytest.fixture
def bypass_settings(sim: SimExchange, tmp_path) -> Settings:
    """The Bypass-compatible source against the simulator's gateway endpoint."""
    return Settings(
        source="bypass",
        api_key=API_KEY,
        web_key=WEB_KEY,
        base_url=sim.url,
        interval="5s",
        timeout="1s",
        state=tmp_path / "watcher.db",
    )


def at(hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    """A fixed point on the fake clock used by engine tests."""
    from datetime import timedelta

    base = datetime(2026, 1, 1, tzinfo=UTC)
    return base + timedelta(hours=hours, minutes=minutes, seconds=seconds)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    server = Mailbox()
    yield server
    server.stop()


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)])
    if done.returncode != 0:
        pytest.skip("needs root to mount a 2 MB tmpfs (CI runs as root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


@pytest.fixture(autouse=True)
def _display_zone_back_to_utc():
    """A command under WATCHER_TIMEZONE sets the process's display zone; the next test
    starts from the default again."""
    yield
    from watcher.core import times

    times.use_zone("UTC")
