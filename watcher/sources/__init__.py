"""Where balances come from. Everything above this package sees only ``Source``.

A source fetches what the rules need (rows per currency, account totals, or
both) and returns one ``Overview``, or raises a subclass of ``ExchangeError``.
One module per source; the hardened HTTP client they share lives in ``watcher.net``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from watcher.config.model import AccountSpec
from watcher.config.settings import Settings
from watcher.core.alerts import MAIN
from watcher.core.models import Overview
from watcher.net.client import BACKOFF


class Source(Protocol):
    """What the poll loop needs from any source."""

    def fetch(self, rows: bool, totals: bool, positions: bool = False) -> Overview:
        """Rows, totals or both (and open futures positions where the source reads them);
        raises ``ExchangeError`` subclasses on failure."""
        ...

    def close(self) -> None: ...

    def describe(self) -> str:
        """One line for logs and ``status``: which source, which host (never a secret)."""
        ...


def open_source(
    settings: Settings,
    clock: Callable[[], datetime],
    backoff: float = BACKOFF,
    account: AccountSpec | None = None,
) -> Source:
    """The source of one account: from the rules file's ``accounts:``, or (``account``
    None) the environment's single account, with its secrets checked (``ConfigError``).

    ``backoff`` is the first retry's wait (doubling after), injectable so tests need not sleep.
    """
    spec = account or spec_from(settings)
    timeout = settings.timeout.total_seconds()
    interval = settings.interval.total_seconds()
    ca_file = str(settings.ca_file) if settings.ca_file else None
    if spec.source == "ccxt":
        from watcher.sources.ccxt_source import CcxtSource

        return CcxtSource(spec, timeout, clock, budget=interval, ca_file=ca_file)
    if spec.source == "bypass":
        from watcher.sources.bypass import BypassSource

        if not spec.api_key:
            settings.require_api_key()  # says which variable is missing
        return BypassSource(
            spec.base_url or settings.base_url,
            spec.api_key or "",
            spec.web_key,
            spec.network or settings.network,
            timeout,
            interval,
            clock,
            upstream_proxy=spec.proxy,
            backoff=backoff,
            ca_file=ca_file,
        )
    from watcher.sources.mexc import MexcWebSource

    if not spec.web_key:
        settings.require_web_key()
    return MexcWebSource(
        spec.mexc_url or settings.mexc_url,
        spec.web_key or "",
        timeout,
        interval,
        clock,
        proxy=spec.proxy,
        backoff=backoff,
        futures_url=spec.futures_url or settings.mexc_futures_url,
        tls=spec.tls or settings.tls,
        ca_file=ca_file,
    )


def spec_from(settings: Settings) -> AccountSpec:
    """The single account ``main`` that the environment describes."""

    def secret(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    return AccountSpec(
        name=MAIN,
        source=settings.source,
        web_key=secret(settings.web_key),
        api_key=secret(settings.api_key),
        proxy=secret(settings.proxy),
        mexc_url=settings.mexc_url,
        futures_url=settings.mexc_futures_url,
        base_url=settings.base_url,
        network=settings.network,
    )


def exchange_problem(exchange: str, positions: bool = False) -> tuple[str, str] | None:
    """Why a ccxt account cannot start, as (the account's key to blame, what), or None:
    the extra is missing, ccxt does not know the exchange, or a rule reads positions that
    ccxt cannot read there (no ``fetchPositions``). Asked at start-up, never while parsing
    (it imports ccxt)."""
    try:
        missing = importlib.util.find_spec("ccxt") is None
    except (ValueError, ImportError):  # blocked or broken: as good as missing
        missing = True
    if missing:
        return "source", "the ccxt source needs the extra: pip install 'watcher[ccxt]'"
    import ccxt

    if exchange not in ccxt.exchanges:
        return "exchange", f"ccxt knows no exchange {exchange!r}"
    if positions and not getattr(ccxt, exchange)().has.get("fetchPositions"):
        return "exchange", f"ccxt cannot read positions on {exchange} (no fetchPositions)"
    return None
