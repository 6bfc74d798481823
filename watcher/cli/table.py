"""Plain-text tables for the console: aligned columns, thousands separators, converted
amounts as every message reads them and coins to the satoshi."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from watcher.core.models import Overview
from watcher.core.numbers import human
from watcher.core.positions import Position

SHOWN_WALLETS = ("total", "spot", "contract", "otc", "strategy", "robot", "alpha")


COIN_PLACES = 8  # a satoshi: no exchange balance is finer than that in practice


def coins(value: Decimal | None) -> str:
    """A native amount (``originTotal``): up to 8 decimals, no trailing zeros, thousands
    separated. Converted amounts read as everywhere else (``human``: ``1,500.25``)."""
    if value is None:
        return "-"
    if value.is_zero():
        return "0"
    text = format(round(value, COIN_PLACES).normalize(), ",f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Columns padded to their widest cell; numeric columns right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def balances(overview: Overview) -> str:
    """The balances table shown by ``once``, ``demo`` and ``status``."""
    wallets = [w for w in SHOWN_WALLETS if _used(overview, w)]
    unit = f" ({overview.quote})" if overview.quote else ""  # ccxt names it; MEXC does not
    headers = ["currency", *(f"{w}{unit}" for w in wallets), "originTotal"]
    rows = []
    for code, row in sorted((overview.currencies or {}).items()):
        rows.append([code, *(human(getattr(row, w)) for w in wallets), coins(row.originTotal)])
    if overview.totals is not None:
        rows.append(["ACCOUNT", *(human(getattr(overview.totals, w)) for w in wallets), ""])
    return render(headers, rows, right=set(range(1, len(headers))))


def positions(held: Sequence[Position]) -> str:
    """Open futures positions: what a trader checks first, the distance to liquidation."""
    headers = ["position", "leverage", "size", "entry", "mark", "liquidation", "distance", "pnl"]
    rows = [
        [
            p.instance,
            f"{human(p.leverage)}x" if p.leverage else "-",
            coins(p.size),
            human(p.entry),
            human(p.mark),
            human(p.liquidation) if p.liquidation else "-",
            human(p.liq_distance, True),
            human(p.pnl),
        ]
        for p in held
    ]
    return render(headers, rows, right=set(range(1, len(headers))))


def _used(overview: Overview, wallet: str) -> bool:
    if wallet in ("total", "spot", "contract"):
        return True
    rows = list((overview.currencies or {}).values())
    values = [getattr(r, wallet) for r in rows]
    if overview.totals is not None:
        values.append(getattr(overview.totals, wallet))
    return any(values)
