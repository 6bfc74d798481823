"""The simulator's MEXC futures host: open positions, tickers and contract details.

What it checks and answers follows ``../shared/api/positions.md``: a private request
carries ``Authorization`` (the web key), ``X-Mxc-Nonce`` (ms) and ``X-Mxc-Sign`` made
as the vendor SDK makes it, over the query string as sent; a wrong signature is code
602 and a wrong key code 401, in the ``{"success": false, "code", "message"}``
envelope; amounts are JSON numbers. The mark (fair) price is the coin's price, and
the liquidation price follows from the entry, the leverage and the contract's
maintenance margin rate (isolated margin, fees left out):
``entry * (1 - 1/leverage + mmr)`` for a long, ``entry * (1 + 1/leverage - mmr)`` for
a short.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import zlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

POSITIONS_PATH = "/api/v1/private/position/open_positions"
TICKER_PATH = "/api/v1/contract/ticker"
DETAIL_PATH = "/api/v1/contract/detail"

CONTRACTS = {  # symbol: (contract size in coins, maintenance margin rate), as MEXC lists them
    "BTC_USDT": (Decimal("0.0001"), Decimal("0.004")),
    "ETH_USDT": (Decimal("0.01"), Decimal("0.005")),
    "SOL_USDT": (Decimal("1"), Decimal("0.01")),
}
NONCE_WINDOW_MS = 60_000  # an old nonce is refused, as a replayed request would be


@dataclass
class SimPosition:
    symbol: str
    side: str  # long | short
    size: Decimal  # contracts
    entry: Decimal
    leverage: int
    opened: int  # ms

    def liquidation(self) -> Decimal:
        mmr = CONTRACTS[self.symbol][1]
        step = 1 / Decimal(self.leverage)
        if self.side == "long":
            return self.entry * (1 - step + mmr)
        return self.entry * (1 + step - mmr)


def futures(sim: Any, path: str, query: str, headers: Any) -> tuple[int, Any] | None:
    """The answer to a futures request, or None when ``path`` is not one."""
    if path == POSITIONS_PATH and headers.get("ApiKey") is not None:  # an official key (ccxt)
        refused = _refused_official(sim, headers)
        return refused or (200, _ok([_row(sim, p) for p in _held(sim)]))
    if path == POSITIONS_PATH:
        refused = _refused(sim, query, headers)
        return refused or (200, _ok([_row(sim, p) for p in _held(sim)]))
    if path == TICKER_PATH:
        return 200, _ok([_ticker(sim, symbol) for symbol in CONTRACTS if _price(sim, symbol)])
    if path == DETAIL_PATH:
        details = [_detail(symbol) for symbol in CONTRACTS]
        return 200, _ok(details)
    return None


GATEWAY = {  # a Bypass-compatible gateway's names for the same data
    "/v1/getFuturesOpenPositions": "positions",
    "/v1/getFuturesTickers": "tickers",
    "/v1/getFuturesContracts": "contracts",
}


def gateway(sim: Any, path: str) -> list[Any] | None:
    """What the gateway's futures methods carry in ``data`` (MEXC's own shapes), or None."""
    kind = GATEWAY.get(path)
    if kind == "positions":
        return _numbers([_row(sim, p) for p in _held(sim)])
    if kind == "tickers":
        return _numbers([_ticker(sim, symbol) for symbol in CONTRACTS if _price(sim, symbol)])
    if kind == "contracts":
        return _numbers([_detail(symbol) for symbol in CONTRACTS])
    return None


def open_position(
    sim: Any, symbol: str, side: str, size: Decimal, entry: Decimal, leverage: int
) -> None:
    """Open (or replace) a position; a size of 0 closes it."""
    if symbol not in CONTRACTS:
        raise ValueError(f"unknown contract {symbol!r}; one of {', '.join(CONTRACTS)}")
    if side not in ("long", "short"):
        raise ValueError("side must be long or short")
    with sim.lock:
        if size == 0:
            sim.positions.pop((symbol, side), None)
            return
        opened = int(time.time() * 1000)
        sim.positions[(symbol, side)] = SimPosition(symbol, side, size, entry, leverage, opened)


def _refused(sim: Any, query: str, headers: Any) -> tuple[int, Any] | None:
    key, nonce = headers.get("Authorization"), headers.get("X-Mxc-Nonce") or ""
    if key != sim.web_key:
        return 200, _error(401, "Not logged in or the login has expired")
    now = int(time.time() * 1000)
    if not nonce.isdigit() or abs(now - int(nonce)) > NONCE_WINDOW_MS:
        return 200, _error(602, "Signature verification failed!")
    if headers.get("X-Mxc-Sign") != signature(key, nonce, query):
        return 200, _error(602, "Signature verification failed!")
    return None


def signature(key: str, nonce: str, query: str) -> str:
    """The vendor SDK's ``_SignatureGenerator.generate``, written out on this side as the
    SDK's source reads, apart from the client's: ``md5(ts + P + md5(key + ts)[7:])``."""
    inner = hashlib.md5(f"{key}{nonce}".encode(), usedforsecurity=False).hexdigest()[7:]
    return hashlib.md5(f"{nonce}{query}{inner}".encode(), usedforsecurity=False).hexdigest()


def _detail(symbol: str) -> dict[str, Any]:
    """A contract as ``contract/detail`` lists it (full names, what ccxt's markets read)."""
    size, mmr = CONTRACTS[symbol]
    base, quote = symbol.split("_")
    return {
        "symbol": symbol,
        "baseCoin": base,
        "quoteCoin": quote,
        "settleCoin": quote,
        "contractSize": size,
        "maintenanceMarginRate": mmr,
        "state": 0,
        "priceUnit": Decimal("0.1"),
        "volUnit": 1,
        "minVol": 1,
        "maxVol": 1_000_000,
        "minLeverage": 1,
        "maxLeverage": 125,
        "takerFeeRate": Decimal("0.0002"),
        "makerFeeRate": 0,
    }


def _refused_official(sim: Any, headers: Any) -> tuple[int, Any] | None:
    """MEXC's contract API signature for an official key: HMAC-SHA256 of the key and
    ``Request-Time`` (no parameters here), as ccxt makes it; code 602 when wrong."""
    key, when = headers.get("ApiKey", ""), headers.get("Request-Time", "")
    made = hmac.new(sim.official_secret.encode(), f"{key}{when}".encode(), hashlib.sha256)
    if key != sim.official_key or headers.get("Signature") != made.hexdigest():
        return 401, _error(602, "Signature verification failed!")
    return None


def _held(sim: Any) -> list[SimPosition]:
    with sim.lock:
        return list(sim.positions.values())


def _price(sim: Any, symbol: str) -> Decimal | None:
    coin = sim.coins.get(symbol.split("_")[0])
    return coin.price if coin is not None else None


def _row(sim: Any, position: SimPosition) -> dict[str, Any]:
    size, mmr = CONTRACTS[position.symbol]
    margin = position.size * size * position.entry / position.leverage
    return {
        "positionId": zlib.crc32(f"{position.symbol} {position.side}".encode()),  # stable
        "symbol": position.symbol,
        "positionType": 1 if position.side == "long" else 2,
        "openType": 1,
        "state": 1,
        "holdVol": position.size,
        "holdAvgPrice": position.entry,
        "openAvgPrice": position.entry,
        "liquidatePrice": position.liquidation().quantize(Decimal("0.1")),
        "im": margin,
        "oim": margin,
        "leverage": position.leverage,
        "marginRatio": mmr,
        "profitRatio": 0,
        "realised": 0,
        "holdFee": 0,
        "createTime": position.opened,
        "updateTime": position.opened,
    }


def _ticker(sim: Any, symbol: str) -> dict[str, Any]:
    price = _price(sim, symbol)
    return {
        "symbol": symbol,
        "fairPrice": price,
        "lastPrice": price,
        "indexPrice": price,
        "timestamp": int(time.time() * 1000),
    }


def _ok(data: Any) -> dict[str, Any]:
    return {"success": True, "code": 0, "data": _numbers(data)}


def _numbers(value: Any) -> Any:
    """Amounts as JSON numbers, as the futures host sends them (not strings)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    return value


def _error(code: int, message: str) -> dict[str, Any]:
    return {"success": False, "code": code, "message": message}
