"""MEXC futures with the web key: open positions, fair prices and contract sizes.

Facts from ``../shared/api/positions.md`` (two public clients agree): the host is
``futures.mexc.com`` (``WATCHER_MEXC_FUTURES_URL``), every request goes under
``/api/v1/``, and a private one is signed as the vendor SDK signs it
(``_SignatureGenerator.generate``): ``X-Mxc-Nonce`` is the time in milliseconds,
``X-Mxc-Sign`` is ``md5(ts + P + md5(key + ts)[7:])`` with ``P`` the query string as
sent, and ``Authorization`` is the web key itself. Answers are
``{"success": true, "code": 0, "data": ...}`` with amounts as JSON numbers, read with
``parse_float=Decimal``. Contract sizes change rarely and are kept for hours.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from watcher.core import logs
from watcher.core.errors import BadResponse, ExchangeError
from watcher.core.models import Overview, amount
from watcher.core.positions import Position, unrealised

POSITIONS_PATH = "/api/v1/private/position/open_positions"
TICKER_PATH = "/api/v1/contract/ticker"
DETAIL_PATH = "/api/v1/contract/detail"
log = logs.get("watcher.source")
SIZES_KEPT = 6 * 3600.0  # seconds: contract sizes change rarely
SIDES = {1: "long", 2: "short"}
MODES = {1: "isolated", 2: "cross"}
CLOSED = 3  # `state`: 1 holding, 2 system holding, 3 closed


def with_positions(overview: Overview, read: Callable[[], tuple[Position, ...]]) -> Overview:
    """The overview with the positions ``read`` gives; if it fails, the balances stand and
    the positions are no data, with the reason (logged with its code)."""
    try:
        return replace(overview, positions=read())
    except ExchangeError as exc:
        log.warning("futures positions not read", error=str(exc), code=exc.code)
        return replace(overview, positions_error=str(exc))


def not_read(
    overview: Overview, why: str = "this source does not read futures positions yet"
) -> Overview:
    """A source that does not read positions: its position rules get no data, said."""
    return replace(overview, positions_error=why)


def signature(web_key: str, millis: str, query: str = "") -> str:
    """The vendor SDK's ``X-Mxc-Sign``: ``md5(ts + P + g)`` with ``g = md5(key + ts)[7:]``."""
    inner = hashlib.md5((web_key + millis).encode(), usedforsecurity=False).hexdigest()[7:]
    return hashlib.md5((millis + query + inner).encode(), usedforsecurity=False).hexdigest()


def signed_headers(web_key: str, query: str = "", now: Callable[[], float] = time.time) -> dict:
    millis = str(int(now() * 1000))
    return {
        "Authorization": web_key,
        "X-Mxc-Nonce": millis,
        "X-Mxc-Sign": signature(web_key, millis, query),
        "Content-Type": "application/json",
    }


class ContractSizes:
    """``symbol -> contractSize`` from ``contract/detail``, fetched again after hours."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.sizes: dict[str, Decimal] = {}
        self.fetched: float | None = None

    def stale(self) -> bool:
        return self.fetched is None or self.clock() - self.fetched > SIZES_KEPT

    def keep(self, data: Any) -> None:
        self.sizes = {
            str(row["symbol"]): amount(row["contractSize"])
            for row in _rows(data, "contract details")
            if row.get("symbol") and row.get("contractSize") is not None
        }
        self.fetched = self.clock()


def fair_prices(data: Any) -> dict[str, Decimal]:
    """``contract/ticker`` without a symbol: every contract's ticker, as a list."""
    rows = [data] if isinstance(data, dict) else data
    found = {}
    for row in _rows(rows, "tickers"):
        price = row.get("fairPrice")
        if row.get("symbol") and price is not None:
            found[str(row["symbol"])] = amount(price)
    return found


def positions_from(
    data: Any, prices: dict[str, Decimal], sizes: dict[str, Decimal]
) -> tuple[Position, ...]:
    """Open positions from ``open_positions``; closed ones (state 3) are left out. A row
    without its size, side or symbol is a bad answer: a position read as nothing would
    hide exactly what the rules watch."""
    found = []
    for row in _rows(data, "positions"):
        if row.get("state") == CLOSED:
            continue
        try:
            found.append(position(row, prices, sizes))
        except (KeyError, ValueError, TypeError) as exc:
            raise BadResponse(f"a futures position could not be read ({exc})") from None
    return tuple(found)


def position(
    row: dict[str, Any], prices: dict[str, Decimal], sizes: dict[str, Decimal]
) -> Position:
    symbol = str(row["symbol"])
    side = SIDES[row["positionType"]]
    size = amount(row["holdVol"])
    entry = _maybe(row.get("holdAvgPrice") or row.get("openAvgPrice"))
    mark, contract = prices.get(symbol), sizes.get(symbol)
    pnl = None
    if mark is not None and entry is not None and contract is not None:
        pnl = unrealised(side, mark, entry, size * contract)
    return Position(
        symbol=symbol,
        side=side,
        margin_mode=MODES.get(row.get("openType"), "unknown"),
        size=size,
        contract_size=contract,
        entry=entry,
        mark=mark,
        liquidation=_maybe(row.get("liquidatePrice")),
        leverage=_maybe(row.get("leverage")),
        margin=_maybe(row.get("im")),
        pnl=pnl,
        margin_ratio=_maybe(row.get("marginRatio")),
    )


def _maybe(value: Any) -> Decimal | None:
    return None if value is None else amount(value)


def _rows(data: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BadResponse(f"the futures {what} should be a list of objects")
    return data
