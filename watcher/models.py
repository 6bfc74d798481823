"""Typed balances every source returns: rows per currency and account totals.

Amounts arrive as strings or JSON numbers; the sources parse JSON with
``parse_float=Decimal`` so no amount ever passes through a float. Negative
amounts are real (futures equity, debts) and kept as reported.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

WALLETS = ("total", "spot", "otc", "contract", "strategy", "robot", "alpha")
ORIGIN_WALLETS = tuple("origin" + w.capitalize() for w in WALLETS)
MAX_AMOUNT = Decimal("1e18")

Amount = Annotated[Decimal, Field(gt=-MAX_AMOUNT, lt=MAX_AMOUNT, allow_inf_nan=False)]
ZERO = Decimal(0)


class NoData(Exception):
    """A value that cannot be known this evaluation (missing history, an unreadable row)."""


class Totals(BaseModel):
    """Account totals (``convert=false``), converted to the quote currency."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    total: Amount
    spot: Amount
    otc: Amount
    contract: Amount
    strategy: Amount
    robot: Amount
    alpha: Amount


class Balance(Totals):
    """One currency row (``convert=true``): converted amounts plus native ``origin*``."""

    currency: Annotated[str, Field(min_length=1, max_length=32)]
    coinId: str | None = None
    originTotal: Amount
    originSpot: Amount
    originOtc: Amount
    originContract: Amount
    originStrategy: Amount
    originRobot: Amount
    originAlpha: Amount


def zero_balance(currency: str) -> Balance:
    """A currency the API did not list holds nothing."""
    return Balance(currency=currency, **dict.fromkeys(WALLETS + ORIGIN_WALLETS, ZERO))


class Overview(BaseModel):
    """One poll's view of the account: rows and/or totals, whichever the rules need."""

    model_config = ConfigDict(frozen=True)

    fetched_at: datetime
    is_testnet: bool | None = None  # only a Bypass gateway says; MEXC itself is always live
    timestamp: int | None = None
    currencies: dict[str, Balance] | None = None
    totals: Totals | None = None
    nodata: frozenset[str] = frozenset()  # currencies whose row could not be read this poll
    complete: bool = True  # False when a row named no currency: then absent is not zero
    problems: tuple[str, ...] = ()  # what made them unreadable, one line each

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
            sums = rows.setdefault(code, dict.fromkeys(WALLETS + ORIGIN_WALLETS, ZERO))
            for name in WALLETS + ORIGIN_WALLETS:
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
