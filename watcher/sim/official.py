"""The simulator's official exchange APIs, for the ccxt source: MEXC's spot and contract
endpoints and Binance's spot account, with their real signature checks (Bybit's v5
is ``sim_bybit``).

MEXC spot (and Binance) sign the query string with HMAC-SHA256 of the secret;
MEXC's contract API signs ``apiKey + Request-Time + params``. A wrong key or
signature is refused the way the exchange refuses it, so the ccxt source's
auth errors are tested for real. Amounts come from the simulator's coins.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

EMPTY_LISTS = {
    "/api/v3/capital/config/getall",
    "/sapi/v1/capital/config/getall",
    "/sapi/v1/margin/allPairs",
    "/sapi/v1/margin/isolated/allPairs",
}
EMPTY_SYMBOLS = {"/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo", "/eapi/v1/exchangeInfo"}


def official(sim: Any, raw_path: str, headers: Any) -> tuple[int, Any] | None:
    """(status, JSON body) for an official endpoint, or None when the path is not one."""
    parts = urlsplit(raw_path)
    path = parts.path
    if path in EMPTY_LISTS:
        return 200, []
    if path in EMPTY_SYMBOLS:
        return 200, {"timezone": "UTC", "serverTime": 1, "symbols": [], "rateLimits": []}
    if path == "/api/v1/contract/detail":
        return 200, {"success": True, "code": 0, "data": []}
    if path == "/api/v3/exchangeInfo":
        return 200, {"timezone": "UTC", "serverTime": 1, "symbols": markets(sim)}
    if path == "/api/v3/ticker/24hr":
        rows = tickers(sim)
        wanted = parse_qs(parts.query).get("symbol")
        if wanted:  # one symbol: one object, as the exchange answers
            found = [r for r in rows if r["symbol"] == wanted[0]]
            return (200, found[0]) if found else (400, {"code": -1121, "msg": "Invalid symbol."})
        return 200, rows
    if path == "/api/v3/account":
        return spot_account(sim, parts.query, headers)
    if path == "/sapi/v1/account/apiRestrictions":
        return api_restrictions(sim, parts.query, headers)
    if path == "/api/v1/private/account/assets":
        return contract_assets(sim, headers)
    return None


def priced(sim: Any) -> dict[str, str]:
    """Every coin but USDT with its price in USDT, by code: the spot markets every fake
    exchange lists."""
    with sim.lock:
        return {c: str(sim.coins[c].price) for c in sorted(sim.coins) if c != "USDT"}


def now_ms() -> int:
    return int(time.time() * 1000)


def markets(sim: Any) -> list[dict[str, Any]]:
    return [
        {
            "symbol": f"{code}USDT",
            "status": "1",  # MEXC's "online"
            "baseAsset": code,
            "quoteAsset": "USDT",
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "permissions": ["SPOT"],
            "baseSizePrecision": "0.0001",
            "quoteAmountPrecision": "5",
            "filters": [],
        }
        for code in priced(sim)
    ]


def tickers(sim: Any) -> list[dict[str, Any]]:
    rows = []
    for code, text in priced(sim).items():
        rows.append(
            {
                "symbol": f"{code}USDT",
                "lastPrice": text,
                "bidPrice": text,
                "askPrice": text,
                "openPrice": text,
                "highPrice": text,
                "lowPrice": text,
                "volume": "1",
                "quoteVolume": text,
                "openTime": 1,
                "closeTime": 2,
                "prevClosePrice": text,
                "priceChange": "0",
                "priceChangePercent": "0",
                "weightedAvgPrice": text,
            }
        )
    return rows


def signed(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def refused(sim: Any, query: str, headers: Any) -> tuple[int, Any] | None:
    """The query string signed with HMAC-SHA256, refused in each exchange's own words:
    MEXC's 700002; Binance's -2015 for the key and -1022 for the signature
    (developers.binance.com, "Error codes")."""
    binance = "X-MBX-APIKEY" in headers
    key = headers.get("X-MBX-APIKEY") if binance else headers.get("X-MEXC-APIKEY")
    unsigned, _, signature = query.rpartition("&signature=")
    if binance and key != sim.official_key:
        return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
    if binance and signature != signed(sim.official_secret, unsigned):
        return 400, {"code": -1022, "msg": "Signature for this request is not valid."}
    if key != sim.official_key or signature != signed(sim.official_secret, unsigned):
        return 401, {"code": 700002, "msg": "Signature for this request is not valid."}
    return None


def api_restrictions(sim: Any, query: str, headers: Any) -> tuple[int, Any]:
    """Binance's ``/sapi/v1/account/apiRestrictions``: what the key itself may do."""
    no = refused(sim, query, headers)
    if no is not None:
        return no
    return 200, {
        "ipRestrict": False,
        "createTime": 1698645219000,
        "enableReading": True,
        "enableWithdrawals": sim.key_can_withdraw,
        "enableInternalTransfer": False,
        "enableMargin": False,
        "enableFutures": False,
        "permitsUniversalTransfer": False,
        "enableVanillaOptions": False,
        "enableSpotAndMarginTrading": sim.key_can_trade,
        "enablePortfolioMarginTrading": False,
    }


def spot_account(sim: Any, query: str, headers: Any) -> tuple[int, Any]:
    """``/api/v3/account``: the query string signed with HMAC-SHA256 (MEXC and Binance)."""
    no = refused(sim, query, headers)
    if no is not None:
        return no
    with sim.lock:
        balances = [
            {"asset": code, "free": str(coin.amounts.get("spot", Decimal(0))), "locked": "0"}
            for code, coin in sorted(sim.coins.items())
            if coin.amounts.get("spot")
        ]
    return 200, {
        "canTrade": sim.key_can_trade,
        "canWithdraw": sim.key_can_withdraw,
        "canDeposit": False,
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
    }


def contract_assets(sim: Any, headers: Any) -> tuple[int, Any]:
    """MEXC's contract signature: HMAC-SHA256 of apiKey + Request-Time + params."""
    key, when = headers.get("ApiKey", ""), headers.get("Request-Time", "")
    if key != sim.official_key or headers.get("Signature") != signed(
        sim.official_secret, key + when
    ):
        return 401, {"success": False, "code": 602, "message": "Signature verification failed!"}
    with sim.lock:
        data = [
            {
                "currency": code,
                "positionMargin": 0,
                "availableBalance": float(coin.amounts.get("contract", Decimal(0))),
                "cashBalance": float(coin.amounts.get("contract", Decimal(0))),
                "frozenBalance": 0,
                "equity": float(
                    coin.amounts.get("contract", Decimal(0))
                ),  # a JSON number, as MEXC sends it
                "unrealized": 0,
                "bonus": 0,
            }
            for code, coin in sorted(sim.coins.items())
            if coin.amounts.get("contract")
        ]
    return 200, {"success": True, "code": 0, "data": data}
