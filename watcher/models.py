"""Typed answers of ``getAssetsOverview``.

Amounts arrive as strings or JSON numbers; the client parses JSON with
``parse_float=Decimal`` so no amount ever passes through a float.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

WALLETS = ("total", "spot", "otc", "contract", "strategy", "robot", "alpha")
ORIGIN_WALLETS = tuple("origin" + w.capitalize() for w in WALLETS)
MAX_AMOUNT = Decimal("1e18")

Amount = Annotated[Decimal, Field(ge=0, lt=MAX_AMOUNT, allow_inf_nan=False)]
ZERO = Decimal(0)


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
    is_testnet: bool
    timestamp: int | None = None
    currencies: dict[str, Balance] | None = None
    totals: Totals | None = None

    def balance(self, currency: str) -> Balance:
        rows = self.currencies or {}
        return rows.get(currency) or zero_balance(currency)
