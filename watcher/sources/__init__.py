"""Where balances come from. Everything above this package sees only ``Source``.

A source fetches what the rules need (rows per currency, account totals, or
both) and returns one ``Overview``, or raises a subclass of ``ExchangeError``.
One module per source; the HTTP pieces they share live in ``http``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from watcher.models import Overview
from watcher.settings import Settings
from watcher.sources.http import BACKOFF


class Source(Protocol):
    """What the poll loop needs from any source."""

    def fetch(self, rows: bool, totals: bool) -> Overview:
        """Rows, totals or both; raises ``ExchangeError`` subclasses on failure."""
        ...

    def close(self) -> None: ...

    def describe(self) -> str:
        """One line for logs and ``status``: which source, which host (never a secret)."""
        ...


def open_source(
    settings: Settings, clock: Callable[[], datetime], backoff: float = BACKOFF
) -> Source:
    """The source the settings name, with its secrets checked (``ConfigError`` if missing).

    ``backoff`` is the first retry's wait (doubling after), injectable so tests need not sleep.
    """
    timeout = settings.timeout.total_seconds()
    interval = settings.interval.total_seconds()
    proxy = settings.proxy.get_secret_value() if settings.proxy else None
    if settings.source == "bypass":
        from watcher.sources.bypass import BypassSource

        web_key = settings.web_key.get_secret_value() if settings.web_key else None
        return BypassSource(
            settings.base_url,
            settings.require_api_key(),
            web_key,
            settings.network,
            timeout,
            interval,
            clock,
            upstream_proxy=proxy,
            backoff=backoff,
        )
    from watcher.sources.mexc import MexcWebSource

    return MexcWebSource(
        settings.mexc_url,
        settings.require_web_key(),
        timeout,
        interval,
        clock,
        proxy=proxy,
        backoff=backoff,
    )
