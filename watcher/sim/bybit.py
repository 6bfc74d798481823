"""The simulator's Bybit v5 API, for the ccxt source: a unified trading account.

Public market data (spot instruments and tickers for the simulator's coins; the
other categories answer empty) and the private endpoints ccxt reads for a
balance. A private request is checked as Bybit checks it: the key, the
``X-BAPI-SIGN`` HMAC-SHA256 of ``timestamp + key + recvWindow + query``, and a
timestamp within the receive window; a failure answers with Bybit's own
``retCode`` (10003, 10004, 10002). The unified account holds the simulator's
spot amounts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import SplitResult, parse_qs

from watcher.sim.official import now_ms, priced, signed

PUBLIC = "/v5/market/"


def bybit(sim: Any, parts: SplitResult, headers: Any) -> tuple[int, Any]:
    """(status, JSON body) for one ``/v5/`` request."""
    path, query = parts.path, parts.query
    if path.startswith(PUBLIC):
        category = parse_qs(query).get("category", [""])[0]
        if category != "spot":
            return answer({"category": category, "list": [], "nextPageCursor": ""})
        if path == PUBLIC + "instruments-info":
            return answer({"category": "spot", "list": instruments(sim), "nextPageCursor": ""})
        if path == PUBLIC + "tickers":
            return answer({"category": "spot", "list": tickers(sim)})
        return 404, {"retCode": 10001, "retMsg": "unknown path"}
    refused = refusal(sim, query, headers)
    if refused is not None:
        return answer({}, *refused)
    private = {
        "/v5/asset/coin/query-info": lambda: {"rows": []},
        "/v5/user/query-api": lambda: key_info(sim),
        "/v5/account/info": lambda: {"unifiedMarginStatus": 6, "marginMode": "REGULAR_MARGIN"},
        "/v5/account/wallet-balance": lambda: {"list": [unified_wallet(sim)]},
    }
    if path not in private:
        return 404, {"retCode": 10001, "retMsg": "unknown path"}
    return answer(private[path]())


def answer(result: Any, code: int = 0, message: str = "OK") -> tuple[int, Any]:
    """Bybit's envelope: HTTP 200, and ``retCode`` says whether it worked."""
    return 200, {"retCode": code, "retMsg": message, "result": result, "time": now_ms()}


def refusal(sim: Any, query: str, headers: Any) -> tuple[int, str] | None:
    """None for a request Bybit would accept; else its retCode and message."""
    key = headers.get("X-BAPI-API-KEY", "")
    stamp, window = headers.get("X-BAPI-TIMESTAMP", ""), headers.get("X-BAPI-RECV-WINDOW", "5000")
    if key != sim.official_key:
        return 10003, "API key is invalid."
    if not stamp.isdigit() or not window.isdigit() or abs(now_ms() - int(stamp)) > int(window):
        return 10002, "invalid request, please check your server timestamp or recv_window param"
    if headers.get("X-BAPI-SIGN") != signed(sim.official_secret, stamp + key + window + query):
        return 10004, "Error sign, please check your signature generation algorithm."
    return None


def key_info(sim: Any) -> dict[str, Any]:
    trade = ["SpotTrade"] if sim.key_can_trade else []
    return {
        "readOnly": 0 if sim.key_can_trade or sim.key_can_withdraw else 1,
        "permissions": {"Spot": trade, "Wallet": ["AccountTransfer"] if trade else []},
        "unified": 0,
        "uta": 1,
    }


def instruments(sim: Any) -> list[dict[str, Any]]:
    return [
        {
            "symbol": f"{code}USDT",
            "baseCoin": code,
            "quoteCoin": "USDT",
            "status": "Trading",
            "innovation": "0",
            "marginTrading": "none",
            "lotSizeFilter": {
                "basePrecision": "0.000001",
                "quotePrecision": "0.00000001",
                "minOrderQty": "0.000048",
                "maxOrderQty": "71.73956243",
                "minOrderAmt": "1",
                "maxOrderAmt": "2000000",
            },
            "priceFilter": {"tickSize": "0.01"},
        }
        for code in priced(sim)
    ]


def tickers(sim: Any) -> list[dict[str, Any]]:
    return [
        {
            "symbol": f"{code}USDT",
            "lastPrice": price,
            "bid1Price": price,
            "ask1Price": price,
            "prevPrice24h": price,
            "highPrice24h": price,
            "lowPrice24h": price,
            "volume24h": "1",
            "turnover24h": price,
        }
        for code, price in priced(sim).items()
    ]


def unified_wallet(sim: Any) -> dict[str, Any]:
    with sim.lock:
        spot = {c: coin.amounts.get("spot", Decimal(0)) for c, coin in sorted(sim.coins.items())}
    coins = [
        {"coin": code, "walletBalance": str(amount), "equity": str(amount), "locked": "0"}
        for code, amount in spot.items()
        if amount
    ]
    return {"accountType": "UNIFIED", "coin": coins}
