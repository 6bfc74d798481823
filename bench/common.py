"""Shared helpers for the bench scripts: timing medians and synthetic accounts."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from watcher.core.models import ORIGIN_WALLETS, WALLETS, Balance, Overview, Totals


def median_seconds(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    """Median over ``repeat`` runs of the mean time of one call (machines are noisy)."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - started) / number)
    return statistics.median(samples)


def account(currencies: int) -> Overview:
    """An overview with ``currencies`` rows (USDT, BTC, then C0002...) and account totals."""
    codes = ["USDT", "BTC", *(f"C{i:04d}" for i in range(2, currencies))][:currencies]
    rows = {}
    for index, code in enumerate(codes):
        spot = Decimal(1000 + index) / 7
        contract = Decimal(500 + index * 3) / 11
        values = dict.fromkeys(WALLETS, Decimal(0))
        values.update(total=spot + contract, spot=spot, contract=contract)
        origin = {o: values[w] / 3 for w, o in zip(WALLETS, ORIGIN_WALLETS, strict=True)}
        rows[code] = Balance(currency=code, **values, **origin)
    totals = Totals(**{w: sum((getattr(r, w) for r in rows.values()), Decimal(0)) for w in WALLETS})
    return Overview(
        fetched_at=datetime(2026, 1, 1, tzinfo=UTC),
        is_testnet=False,
        currencies=rows,
        totals=totals,
    )


def raw_rows(currencies: int) -> list[dict[str, str]]:
    """The JSON rows of a ``convert=true`` answer, amounts as strings."""
    overview = account(currencies)
    rows = []
    for row in (overview.currencies or {}).values():
        item = {"currency": row.currency, "coinId": row.currency.lower()}
        item.update({f: str(getattr(row, f)) for f in WALLETS + ORIGIN_WALLETS})
        rows.append(item)
    return rows


def microseconds(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} us"


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"
