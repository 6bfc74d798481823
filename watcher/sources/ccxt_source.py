"""Any exchange's official, read-only API key, through ccxt (an optional extra).

Each configured balance type (``wallets``) is one ``fetch_balance``; native
amounts go to the ``origin*`` fields (spot to ``originSpot``; swap, future,
contract and margin to ``originContract``, using the exchange's equity where it
reports one; funding to ``originOtc``; anything else to ``originAlpha``), and
the converted fields are their value in ``quote`` from the exchange's tickers
(last price, or the bid/ask mid). Pegged stablecoins count as 1. A currency
without a price is no data, never zero. Amounts are Decimals parsed from the
exchange's own strings where ccxt keeps them in ``info`` (MEXC, Binance, Bybit).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from watcher.config.model import AccountSpec
from watcher.core import logs
from watcher.core.errors import (
    AuthError,
    BadResponse,
    ExchangeError,
    RateLimited,
    TransportError,
)
from watcher.core.models import (
    ORIGIN_WALLETS,
    WALLETS,
    ZERO,
    Balance,
    Overview,
    Totals,
    in_range,
)
from watcher.core.positions import Position, unrealised
from watcher.core.secrets import Masker
from watcher.core.text import currency_code
from watcher.net.client import bounded_session, trust_bundle, watched
from watcher.sources.futures import not_read

DEFAULT_WALLETS = {"mexc": ("spot", "swap")}
CONTRACT_TYPES = ("swap", "future", "futures", "contract", "margin", "linear", "inverse")
ORIGIN_OF = {"spot": "originSpot", "funding": "originOtc"}
log = logs.get("watcher.source")


class CcxtSource:
    def __init__(
        self,
        spec: AccountSpec,
        timeout: float,
        clock: Callable[[], datetime],
        budget: float = 60.0,
        ca_file: str | None = None,
    ) -> None:
        import ccxt  # the optional extra, imported only when an account uses it

        self.ccxt = ccxt
        self.spec = spec
        self.clock = clock
        self.exchange_id = spec.exchange or "mexc"
        config = {
            "apiKey": spec.api_key,
            "secret": spec.secret,
            "timeout": int(timeout * 1000),
            "enableRateLimit": True,  # ccxt's own rate limiter
        }
        if spec.password:
            config["password"] = spec.password
        self.exchange = getattr(ccxt, self.exchange_id)(config)
        # ccxt's sync client takes a requests session (its manual: exchange.session); this
        # one has the bounds of the web sources: deadline, size cap, no redirect, depth
        self.exchange.session = bounded_session(timeout)
        if ca_file:  # WATCHER_CA_FILE: a private gateway's CA, beside the public ones
            self.exchange.session.verify = trust_bundle(ca_file)
        self.budget = max(budget, timeout)  # one poll's deadline over every request it makes
        if spec.proxy:
            self.exchange.proxies = {"http": spec.proxy, "https": spec.proxy}
        if spec.base_url:  # tests and the simulator: every API URL on that host
            self.exchange.urls["api"] = rehost(self.exchange.urls["api"], spec.base_url)
        self.wallets = spec.wallets or DEFAULT_WALLETS.get(self.exchange_id, ("spot",))
        self.scrub = Masker(spec.secrets())
        self.warned = False

    def describe(self) -> str:
        return f"{self.exchange_id} official API (ccxt, {', '.join(self.wallets)})"

    def close(self) -> None:
        close = getattr(self.exchange, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:  # closing must never fail a stop
                log.debug("ccxt close", error=type(exc).__name__)

    def fetch(self, rows: bool, totals: bool, positions: bool = False) -> Overview:
        """Every balance type and the prices, within one poll's deadline: a server that drips
        is cut there, and the poll fails as unreachable instead of running for minutes."""
        with watched(self.budget) as watch:
            try:
                overview = self._fetch()
                return self.with_positions(overview) if positions else overview
            except ExchangeError:
                if watch.cut:
                    raise TransportError(
                        f"{self.exchange_id} answered too slowly (poll deadline {self.budget:.0f}s)"
                    ) from None
                raise

    def _fetch(self) -> Overview:
        native: dict[str, dict[str, Decimal]] = {}
        try:
            for wallet in self.wallets:
                balance = self.exchange.fetch_balance({"type": wallet})
                self.warn_permissions(balance.get("info"))
                for code, amount in amounts(self.exchange_id, wallet, balance).items():
                    field = origin_field(wallet)
                    slot = native.setdefault(code, dict.fromkeys(ORIGIN_WALLETS, ZERO))
                    slot[field] += amount
            prices = self.prices(native)
        except self.ccxt.BaseError as exc:
            raise self.error(exc) from None
        return replace(overview(native, prices, self.clock()), quote=self.spec.quote)

    def with_positions(self, overview: Overview) -> Overview:
        """``fetch_positions()`` where the exchange has it; otherwise, or when it fails, the
        positions are no data and the overview says why."""
        if not self.exchange.has.get("fetchPositions"):
            return not_read(overview, f"ccxt's {self.exchange_id} cannot read positions")
        try:
            found = self.exchange.fetch_positions()
        except self.ccxt.BaseError as exc:
            error = self.error(exc)
            log.warning("futures positions not read", error=str(error), code=error.code)
            return replace(overview, positions_error=str(error))
        prices = {c: r.total / r.originTotal for c, r in (overview.currencies or {}).items()
                  if r.originTotal}  # fmt: skip
        held = [unified(p, prices) for p in found if isinstance(p, dict)]
        return replace(overview, positions=tuple(p for p in held if p is not None))

    def prices(self, native: dict[str, dict[str, Decimal]]) -> dict[str, Decimal]:
        quote = self.spec.quote
        wanted = [c for c in native if c != quote and c not in self.spec.pegged]
        found = {c: Decimal(1) for c in native if c == quote or c in self.spec.pegged}
        if not wanted:
            return found
        self.exchange.load_markets()
        symbols = [f"{c}/{quote}" for c in wanted if f"{c}/{quote}" in self.exchange.markets]
        tickers = self.exchange.fetch_tickers(symbols) if symbols else {}
        for code in wanted:
            price = ticker_price(tickers.get(f"{code}/{quote}"))
            if price is not None:
                found[code] = price
        return found

    def warn_permissions(self, info: Any) -> None:
        """A key that can trade or withdraw is a risk watcher does not need: say so once.
        MEXC and Binance say so in the account answer; Bybit in its key's own info."""
        if self.warned or not isinstance(info, dict):
            return
        self.warned = True  # one look, once, whatever it finds
        if self.exchange_id == "bybit":
            key = self.exchange.privateGetV5UserQueryApi().get("result") or {}
            risky = ["not readOnly"] if str(key.get("readOnly")) == "0" else []
        elif self.exchange_id == "binance":  # the account's canTrade is not the key's
            key = self.exchange.sapiGetAccountApiRestrictions()
            risky = [k for k in BINANCE_RISKY if key.get(k) is True]
        else:  # MEXC and others say nothing of the key itself: never a false warning
            log.info(
                "the exchange does not say what this API key may do; watcher cannot check "
                "that it is read-only: make it so on the exchange's API page",
                exchange=self.exchange_id,
            )
            return
        if risky:
            log.warning(
                "this API key can trade or withdraw; watcher only reads: make a read-only key",
                exchange=self.exchange_id,
                permissions=", ".join(risky),
            )

    def error(self, exc: Exception) -> ExchangeError:
        """ccxt's errors onto watcher's, with no secret in the message."""
        text = self.scrub.short(f"{type(exc).__name__}: {exc}")
        name = self.exchange_id
        ccxt = self.ccxt
        if isinstance(exc.__cause__, requests.TooManyRedirects):
            return TransportError(
                f"{name} answered with a redirect; watcher follows none, so nothing (no key, "
                "no signature) was sent there"
            )
        code = exchange_code(str(exc))
        if code in KEY_CODES:  # ccxt calls some of these BadRequest; they are the key
            hint = KEY_CODES[code]
            return AuthError(f"{name} refused the API key ({text}): {hint}", code)
        if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied):
            return AuthError(
                f"{name} refused the API key ({text}): check the key and secret, and that the "
                "key may read balances"
            )
        if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
            return RateLimited(f"{name} asked us to slow down ({text})")
        if isinstance(exc, ccxt.NetworkError | ccxt.ExchangeNotAvailable | ccxt.RequestTimeout):
            return TransportError(f"cannot reach {name}: {text}")
        if isinstance(exc, ccxt.BadRequest):  # not the key: the exchange's own words
            return TransportError(f"{name} refused the request: {text}", code)
        return ExchangeError(f"{name} error: {text}")


BINANCE_RISKY = (  # /sapi/v1/account/apiRestrictions: what the key itself may do
    "enableSpotAndMarginTrading",
    "enableWithdrawals",
    "enableInternalTransfer",
    "enableMargin",
    "enableFutures",
    "permitsUniversalTransfer",
    "enableVanillaOptions",
    "enablePortfolioMarginTrading",
)
CHECK_KEY = "check the key and secret, and that the key may read balances"
KEY_CODES = {  # exchange codes that mean the key, whatever ccxt's class for them
    10072: CHECK_KEY,  # MEXC: invalid access key
    700002: CHECK_KEY,  # MEXC: signature not valid (a wrong secret)
    602: CHECK_KEY,  # MEXC contract API: signature verification failed
    401: CHECK_KEY,
    402: "the key has expired: make a new read-only key",
    700006: "add this server's IP address to the key's whitelist on the exchange",
    -2015: "check the key, its permissions and its IP whitelist",  # Binance
    -1022: CHECK_KEY,  # Binance: signature not valid
}
_CODE = re.compile(r'"code"\s*:\s*"?(-?\d+)')


def exchange_code(text: str) -> int | None:
    """The exchange's own error code in ccxt's message (it quotes the answer's JSON)."""
    found = _CODE.search(text)
    return int(found.group(1)) if found else None


def unified(found: dict[str, Any], prices: dict[str, Decimal]) -> Position | None:
    """ccxt's unified position; a figure it leaves None stays None (no data, never zero).
    Without a mark price, the base currency's price in the quote stands in for it."""
    contracts = exact(found.get("contracts"))
    if not contracts:
        return None  # ccxt lists flat positions on some exchanges
    symbol = str(found.get("symbol") or "?")
    base = symbol.split("/")[0]
    info = found.get("info") if isinstance(found.get("info"), dict) else {}
    side = "short" if found.get("side") == "short" else "long"
    contract_size = exact(found.get("contractSize"))
    mark = exact(found.get("markPrice")) or prices.get(base)
    entry = exact(found.get("entryPrice"))
    pnl = exact(found.get("unrealizedPnl"))
    if pnl is None and None not in (mark, entry, contract_size):
        pnl = unrealised(side, mark, entry, contracts * contract_size)  # type: ignore[arg-type]
    return Position(
        symbol=str(info.get("symbol") or symbol),
        side=side,
        margin_mode=str(found.get("marginMode") or "unknown"),
        size=contracts,
        contract_size=contract_size,
        entry=entry,
        mark=mark,
        liquidation=exact(found.get("liquidationPrice")),
        leverage=exact(found.get("leverage")),
        margin=exact(found.get("initialMargin")),
        pnl=pnl,
        margin_ratio=exact(found.get("marginRatio")),
    )


def api_url(exchange: str) -> str | None:
    """The first API address ccxt would call for ``exchange`` (what ``doctor`` checks)."""
    import ccxt

    found: list[str] = []

    def walk(urls: Any) -> None:
        if isinstance(urls, dict):
            for value in urls.values():
                walk(value)
        elif isinstance(urls, str) and urls.startswith("http"):
            found.append(urls)

    client = getattr(ccxt, exchange)()
    walk(client.urls.get("api"))
    return client.implode_hostname(found[0]) if found else None  # api.{hostname}: bybit


def rehost(urls: Any, base: str) -> Any:
    """Every URL in ccxt's (nested) ``urls['api']`` moved to ``base``'s scheme and host."""
    if isinstance(urls, dict):
        return {k: rehost(v, base) for k, v in urls.items()}
    if isinstance(urls, str) and urls.startswith("http"):
        target, parts = urlsplit(base), urlsplit(urls)
        return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))
    return urls


def origin_field(wallet: str) -> str:
    if wallet in ORIGIN_OF:
        return ORIGIN_OF[wallet]
    if wallet in CONTRACT_TYPES:
        return "originContract"
    return "originAlpha"  # documented: other balance types


def exact(value: Any) -> Decimal | None:
    """A Decimal from the exchange's string (or ccxt's float, by its shortest repr)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    # a JSON number comes as ccxt's float: 800.0 is 800, as the exchange's string would say
    if number != number.to_integral_value():
        return number.normalize()
    try:
        return number.quantize(ONE)
    except InvalidOperation:  # beyond the context's precision: the range check says no data
        return number


ONE = Decimal(1)


def amounts(exchange: str, wallet: str, balance: dict[str, Any]) -> dict[str, Decimal]:
    """Native amounts per currency for one balance type, exact where ``info`` has strings.

    An answer without the exchange's balance list is a bad answer, never an empty account:
    read as empty, every rule on a balance would fire at once."""
    info = balance.get("info")
    if exchange in ("mexc", "binance") and wallet == "spot" and isinstance(info, dict):
        found = {}
        for row in _listed(info, "balances", exchange):
            free, locked = exact(row.get("free")), exact(row.get("locked"))
            if row.get("asset") and free is not None and locked is not None and free + locked:
                found[str(row["asset"]).upper()] = free + locked
        return found
    if exchange == "mexc" and wallet in CONTRACT_TYPES and isinstance(info, dict):
        found = {}
        for row in _listed(info, "data", exchange):
            equity = exact(row.get("equity"))  # MEXC reports equity: margin plus unrealized
            if row.get("currency") and equity is not None and equity:
                found[str(row["currency"]).upper()] = equity
        return found
    if exchange == "bybit" and isinstance(info, dict):
        return bybit_amounts(info)
    totals = balance.get("total")
    if not isinstance(totals, dict):
        raise BadResponse(f"{exchange} answered without a balance structure")
    return {c.upper(): v for c, t in totals.items() if (v := exact(t)) is not None and v}


def _listed(info: dict[str, Any], key: str, exchange: str) -> list[dict[str, Any]]:
    rows = info.get(key)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise BadResponse(f"{exchange} answered without its list of balances ('{key}')")
    return rows


def bybit_amounts(info: dict[str, Any]) -> dict[str, Decimal]:
    """Bybit's wallet balance per coin, from its own strings (ccxt's ``total``)."""
    found: dict[str, Decimal] = {}
    result = info.get("result")
    accounts = result.get("list") if isinstance(result, dict) else None
    if not isinstance(accounts, list):
        raise BadResponse("bybit answered without its list of balances ('result.list')")
    for account in accounts:
        for row in (account.get("coin") if isinstance(account, dict) else None) or []:
            amount = exact(row.get("walletBalance")) if isinstance(row, dict) else None
            if amount and row.get("coin"):
                code = str(row["coin"]).upper()
                found[code] = found.get(code, ZERO) + amount
    return found


def ticker_price(ticker: dict[str, Any] | None) -> Decimal | None:
    if not ticker:
        return None
    info = ticker.get("info") or {}
    last = exact(info.get("lastPrice")) if isinstance(info, dict) else None
    last = last or exact(ticker.get("last"))
    if last:
        return last
    bid, ask = exact(ticker.get("bid")), exact(ticker.get("ask"))
    return (bid + ask) / 2 if bid and ask else None


def overview(
    native: dict[str, dict[str, Decimal]], prices: dict[str, Decimal], at: datetime
) -> Overview:
    """Rows from native amounts and prices; totals are the sum of the rows, and no data
    while any held currency has no price (a smaller sum would read as a fall)."""
    rows, nodata, problems, complete = {}, set(), [], True
    for raw, origin in sorted(native.items()):
        code = currency_code(raw)
        if code is None:  # a newline or an escape in a code could forge a message line
            complete = False
            problems.append("a currency code that is not plain; currencies not listed are no data")
            continue
        origin["originTotal"] = sum((origin[o] for o in ORIGIN_WALLETS[1:]), ZERO)
        price = prices.get(raw)
        if price is None:
            nodata.add(code)
            problems.append(f"{code}: no price in the quote currency; no data this poll")
            continue
        converted = {w: origin[o] * price for w, o in zip(WALLETS, ORIGIN_WALLETS, strict=True)}
        if not in_range([*converted.values(), *origin.values()]):
            nodata.add(code)  # the same bound as the web sources' rows
            problems.append(f"{code}: an amount beyond 1e18; no data this poll")
            continue
        rows[code] = Balance(currency=code, **converted, **origin)
    whole = complete and not nodata
    sums = {w: sum((getattr(r, w) for r in rows.values()), ZERO) for w in WALLETS}
    return Overview(
        fetched_at=at,
        currencies=rows,
        totals=Totals(**sums) if whole else None,
        nodata=frozenset(nodata),
        complete=complete,
        problems=tuple(problems),
    )
