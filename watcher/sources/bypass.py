"""A Bypass-compatible HTTP API: ``GET {base_url}/getAssetsOverview`` with static headers.

Kept for anyone running a compatible gateway (self-hosted or revived). What
the first version got wrong is fixed here (see ``shared/api/sources.md``):
``convert=1`` for rows and no parameter for totals, the shape of ``data``
decides what came back; no redirect is followed, so no key reaches another
host; MEXC codes map the same in both envelope shapes; an absent
``is_testnet`` is not a mismatch.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from watcher.core import logs
from watcher.core.errors import (
    AuthError,
    BadResponse,
    ExchangeError,
    NetworkMismatch,
    RateLimited,
    TransportError,
)
from watcher.core.models import Overview
from watcher.core.secrets import Masker
from watcher.net.client import BACKOFF, Answer, HttpClient, decode_json
from watcher.sources.futures import ContractSizes, fair_prices, positions_from, with_positions
from watcher.sources.parse import (
    AUTH_CODES,
    RATE_CODES,
    ROWS,
    TOTALS,
    code_error,
    fetch_overview,
    integer,
    message_of,
    overview_from,
)

PATH = "/getAssetsOverview"
POSITIONS = "/getFuturesOpenPositions"  # MEXC's open_positions, in the gateway's envelope
TICKERS = "/getFuturesTickers"  # every contract's ticker (fairPrice)
CONTRACTS = "/getFuturesContracts"  # contract details (contractSize), kept for hours
WEB_KEY_HINT = (
    "the MEXC web key may have expired (it lives 5 days and dies on logout): "
    "log in to MEXC again and update WATCHER_WEB_KEY"
)
API_KEY_HINT = "check WATCHER_API_KEY (your Bypass gateway's API key)"
log = logs.get("watcher.source")


class BypassSource:
    """``fetch`` through a Bypass-compatible gateway, one request per kind of data."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        web_key: str | None,
        network: str,
        timeout: float,
        interval: float,
        clock: Callable[[], datetime],
        upstream_proxy: str | None = None,
        backoff: float = BACKOFF,
        ca_file: str | None = None,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.url = self.base + PATH
        self.sizes = ContractSizes()
        self.network = network
        self.clock = clock
        headers = {
            "X-MEXC-BYPASS-API-KEY": api_key,
            "X-MEXC-NETWORK": network,
            "Accept": "application/json",
            "User-Agent": "watcher/0.2",
        }
        if web_key:
            headers["X-MEXC-WEB-KEY"] = web_key
        if upstream_proxy:
            headers["X-MEXC-PROXY"] = upstream_proxy  # the gateway's own way out
        self.scrub = Masker((api_key, web_key or "", upstream_proxy or ""))
        self.http = HttpClient(
            headers, timeout, interval, self.scrub, backoff=backoff, ca_file=ca_file
        )
        self.host = urlsplit(base_url).hostname or "?"

    def describe(self) -> str:
        return f"Bypass gateway ({self.host}, {self.network})"

    def close(self) -> None:
        self.http.close()

    def fetch(self, rows: bool, totals: bool, positions: bool = False) -> Overview:
        deadline = self.http.deadline()
        asks: dict[str, dict[str, str] | None] = {ROWS: {"convert": "1"}, TOTALS: None}

        def get(kind: str) -> Overview:
            return self.parse(self.http.get(self.url, asks[kind], deadline), kind)

        try:
            overview = fetch_overview(rows, totals, get)
            if positions:
                overview = with_positions(overview, lambda: self.positions(deadline))
            return overview
        finally:
            self.http.rest()

    def positions(self, deadline: float) -> tuple[Any, ...]:
        """Open positions through the gateway, with fair prices and contract sizes."""

        def data(path: str) -> Any:
            return self.envelope(self.http.get(self.base + path, None, deadline)).get("data")

        held = data(POSITIONS)
        if not held:
            return ()
        if self.sizes.stale():
            self.sizes.keep(data(CONTRACTS))
        return positions_from(held, fair_prices(data(TICKERS)), self.sizes.sizes)

    def parse(self, answer: Answer, asked: str | None = None) -> Overview:
        document = self.envelope(answer)
        is_testnet = document.get("is_testnet")
        data = document.get("data")
        return overview_from(data, self.clock(), is_testnet, document.get("timestamp"), asked)

    def envelope(self, answer: Answer) -> dict[str, Any]:
        """One answer of the gateway, checked: its status, its code, its network."""
        if 300 <= answer.status < 400:
            raise TransportError(
                f"the gateway redirected to {answer.location_host} (HTTP {answer.status}); "
                "watcher follows no redirect, so nothing was sent there: check WATCHER_BASE_URL",
                answer.status,
            )
        document, kind = decode_json(answer)
        if document is None:
            raise self.not_json(answer.status, kind or "not JSON")
        if not isinstance(document, dict):
            raise BadResponse(f"response should be a JSON object, got {type(document).__name__}")
        if not 200 <= answer.status < 300 or document.get("success") is False:
            raise self.refused(answer, document)
        self.check_code(document)
        is_testnet = document.get("is_testnet")
        if is_testnet is not None and not isinstance(is_testnet, bool):
            raise BadResponse("field 'is_testnet' is not true/false")
        if is_testnet is not None and is_testnet != (self.network == "TESTNET"):
            served = "TESTNET" if is_testnet else "MAINNET"
            raise NetworkMismatch(
                f"asked for {self.network} but the gateway served {served} balances; "
                "these are not your real numbers (check WATCHER_NETWORK)"
            )
        return document

    def not_json(self, status: int, kind: str) -> ExchangeError:
        if status >= 500:
            return TransportError(f"gateway returned HTTP {status} with {kind}", status)
        if status in (401, 403):
            return AuthError(f"gateway refused access (HTTP {status}): {API_KEY_HINT}", status)
        if status == 429:
            return RateLimited("gateway asked us to slow down (HTTP 429)", 429)
        return BadResponse(f"response is {kind} (HTTP {status})")

    def refused(self, answer: Answer, document: dict[str, Any]) -> ExchangeError:
        """``success:false`` or an HTTP error: MEXC codes first, then the HTTP status."""
        status = answer.status
        code = integer(document.get("code"))
        code = status if code is None else code
        message = message_of(document, self.scrub.short)
        if code == 0:
            return TransportError(f"the gateway could not reach MEXC: {message}", 0)
        if code in AUTH_CODES - {401} or code in RATE_CODES:
            return code_error(code, message, WEB_KEY_HINT)
        if status in (401, 403) or code in (401, 403):
            return AuthError(f"the gateway refused the request ({code}: {message}): {API_KEY_HINT}")
        if status == 429 or code == 429:
            wait = _retry_after(answer.headers.get("Retry-After"))
            return RateLimited(f"gateway asked us to slow down (HTTP 429: {message}{wait})", code)
        if status >= 500:
            return TransportError(f"gateway returned HTTP {status}: {message}", code)
        return ExchangeError(f"exchange error {code}: {message}", code)

    def check_code(self, document: dict[str, Any]) -> None:
        """MEXC's envelope: code 0 is success, and so is ``success:true`` with code 200."""
        code = integer(document.get("code"))
        if code is None:
            raise BadResponse("field 'code' is missing or not a number")
        if code == 0 or (code == 200 and document.get("success") is True):
            return
        message = message_of(document, self.scrub.short)
        hint = WEB_KEY_HINT if code in AUTH_CODES else API_KEY_HINT
        raise code_error(code, message, hint)


def _retry_after(value: str | None) -> str:
    """Only a plain, sane number of seconds is repeated; anything else could carry junk."""
    if value and value.strip().isdigit() and int(value) < 86400:
        return f", retry after {int(value)}s"
    return ""
