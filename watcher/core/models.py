"""Typed balances every source returns: rows per currency and account totals.

Amounts arrive as strings or JSON numbers; the sources parse JSON with
``parse_float=Decimal`` so no amount ever passes through a float. Negative
amounts are real (futures equity, debts) and kept as reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

WALLETS = ("total", "spot", "otc", "contract", "strategy", "robot", "alpha")
ORIGIN_WALLETS = tuple("origin" + w.capitalize() for w in WALLETS)
ROW_FIELDS = WALLETS + ORIGIN_WALLETS  # every amount of a currency row, in Balance order
MAX_AMOUNT = Decimal("1e18")
ZERO = Decimal(0)


class NoData(Exception):
    """A value that cannot be known this evaluation (missing history, an unreadable row)."""


class UnknownTotals:
    """Account totals that this poll could not establish (a held currency without a
    price): every field is no data, never zero."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Decimal:
        raise NoData(f"ACCOUNT.{name}")


UNKNOWN_TOTALS = UnknownTotals()


def in_range(numbers: Sequence[Decimal]) -> bool:
    """Every finite number within ±1e18, the most any real balance can hold; min and max
    run in C, which matters on a 500-currency answer. A NaN raises InvalidOperation."""
    return min(numbers) > -MAX_AMOUNT and max(numbers) < MAX_AMOUNT


def amount(value: Any) -> Decimal:
    """An amount as the API writes it (a string or a JSON number), exact and bounded.

    A float never gets here (JSON is decoded with ``parse_float=Decimal``), and a
    ``true`` is an int to Python but never an amount."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and "_" not in value:
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ValueError("should be a number, not text") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    else:
        raise ValueError(f"should be a number, not {_json_kind(value)}")
    if not number.is_finite():
        raise ValueError("should be a finite number")
    if not in_range((number,)):
        raise ValueError("should be between -1e18 and 1e18")
    return number


def _json_kind(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    kinds = {dict: "an object", list: "a list", str: "text", float: "a float"}
    return kinds.get(type(value), type(value).__name__)


@dataclass(slots=True)
class Totals:
    """Account totals (``convert=false``), converted to the quote currency.

    Plain dataclasses: the sources check what arrives from outside
    (``sources.parse``), and code that builds one passes ``Decimal`` amounts. Never
    assigned to once built (``dataclasses.replace`` makes a changed copy); not
    ``frozen`` only because a frozen ``__init__`` would cost five times as much on
    a 500-currency answer.
    """

    total: Decimal
    spot: Decimal
    otc: Decimal
    contract: Decimal
    strategy: Decimal
    robot: Decimal
    alpha: Decimal


@dataclass(slots=True)
class Balance(Totals):
    """One currency row (``convert=true``): converted amounts plus native ``origin*``,
    in ``ROW_FIELDS`` order, so a row can be built from one list."""

    originTotal: Decimal  # MEXC's own field names, kept so rows read like the API
    originSpot: Decimal
    originOtc: Decimal
    originContract: Decimal
    originStrategy: Decimal
    originRobot: Decimal
    originAlpha: Decimal
    currency: str = field(kw_only=True)
    coinId: str | None = field(default=None, kw_only=True)


def zero_balance(currency: str) -> Balance:
    """A currency the API did not list holds nothing."""
    return Balance(currency=currency, **dict.fromkeys(ROW_FIELDS, ZERO))


@dataclass(frozen=True)
class Overview:
    """One poll's view of the account: rows and/or totals, whichever the rules need."""

    fetched_at: datetime
    is_testnet: bool | None = None  # only a Bypass gateway says; MEXC itself is always live
    timestamp: int | None = None
    currencies: dict[str, Balance] | None = None
    totals: Totals | None = None
    nodata: frozenset[str] = frozenset()  # currencies whose row could not be read this poll
    complete: bool = True  # False when a row named no currency: then absent is not zero
    problems: tuple[str, ...] = ()  # what made them unreadable, one line each
    quote: str | None = None  # what converted amounts are in, where the source knows (ccxt)
    positions: tuple[Any, ...] | None = None  # open futures positions; None: not read
    positions_error: str | None = None  # why they could not be read, when asked for

    def unknown(self, currency: str) -> bool:
        """True when this poll cannot say what ``currency`` holds (not even zero)."""
        if currency in self.nodata:
            return True
        return not self.complete and currency not in (self.currencies or {})

    def balance(self, currency: str) -> Balance:
        """A currency's row; absent means it holds nothing, unreadable means no data."""
        if self.unknown(currency):
            raise NoData(currency)
        rows = self.currencies or {}
        return rows.get(currency) or zero_balance(currency)


def combine(parts: list[Overview], at: datetime) -> Overview:
    """Several accounts as one: rows added per currency, totals added. A currency one of
    them cannot read is no data for the sum; an account without totals leaves none."""
    rows: dict[str, dict[str, Decimal]] = {}
    for part in parts:
        for code, row in (part.currencies or {}).items():
            sums = rows.setdefault(code, dict.fromkeys(ROW_FIELDS, ZERO))
            for name in ROW_FIELDS:
                sums[name] += getattr(row, name)
    totals = None
    if all(p.totals is not None for p in parts):
        totals = Totals(
            **{w: sum((getattr(p.totals, w) for p in parts), ZERO) for w in WALLETS}  # type: ignore[union-attr]
        )
    have_rows = any(p.currencies is not None for p in parts)
    return Overview(
        fetched_at=at,
        currencies={c: Balance(currency=c, **v) for c, v in rows.items()} if have_rows else None,
        totals=totals,
        nodata=frozenset().union(*(p.nodata for p in parts)),
        complete=all(p.complete for p in parts),
    )
