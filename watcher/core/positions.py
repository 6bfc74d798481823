"""Open futures positions, and the figures every source must mean the same by.

Definitions (``../shared/api/positions.md``): the distance to liquidation is
``(mark - liquidation) / mark`` for a long and ``(liquidation - mark) / mark`` for a
short, 0 meaning liquidation now. A missing or zero liquidation price (cross margin far
from it can report 0) is no data for that figure, never "0% away". Notional is
``contracts * contract size * mark``. Money and prices are ``Decimal``; a figure a source
does not give is None, and a rule that reads it gets no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from watcher.core.models import NoData, amount

POSITION_FIELDS = (
    "size",
    "contract_size",
    "entry",
    "mark",
    "liquidation",
    "leverage",
    "margin",
    "pnl",
    "notional",
    "margin_ratio",
    "liq_distance",
)
POSITION_TEXT = ("symbol", "side", "margin_mode")
SUMMARY_FIELDS = ("count", "notional", "pnl", "min_liq_distance")


@dataclass(frozen=True)
class Position:
    symbol: str  # BTC_USDT
    side: str  # long | short
    margin_mode: str  # isolated | cross
    size: Decimal  # contracts
    contract_size: Decimal | None
    entry: Decimal | None
    mark: Decimal | None  # the fair (mark) price
    liquidation: Decimal | None
    leverage: Decimal | None
    margin: Decimal | None
    pnl: Decimal | None  # unrealised
    margin_ratio: Decimal | None = None  # the exchange's own, where it gives one

    @property
    def instance(self) -> str:
        """What an alert about this position is called: ``BTC_USDT long``."""
        return f"{self.symbol} {self.side}"

    @property
    def notional(self) -> Decimal | None:
        if self.contract_size is None or self.mark is None:
            return None
        return self.size * self.contract_size * self.mark

    @property
    def liq_distance(self) -> Decimal | None:
        if not self.liquidation or not self.mark:
            return None  # no liquidation price is no data, never "0% away"
        gap = self.mark - self.liquidation if self.side == "long" else self.liquidation - self.mark
        return gap / self.mark


def as_json(position: Position) -> dict[str, str | None]:
    """A position with exact decimal strings; a figure the source did not give is null."""
    found: dict[str, str | None] = {name: getattr(position, name) for name in POSITION_TEXT}
    for name in POSITION_FIELDS:
        value = getattr(position, name)
        found[name] = None if value is None else str(value)
    return found


def unrealised(side: str, mark: Decimal, entry: Decimal, coins: Decimal) -> Decimal:
    """``(mark - entry) * coins`` for a long, the negative for a short."""
    pnl = (mark - entry) * coins
    return pnl if side == "long" else -pnl


class Readable:
    """A position as a rule reads it, every figure worked out once per poll: a figure the
    source did not give is not set, and reading it is no data."""

    def __init__(self, position: Position) -> None:
        for name in POSITION_FIELDS + POSITION_TEXT:
            value = getattr(position, name)
            if value is not None:
                setattr(self, name, value)

    def __getattr__(self, name: str) -> object:  # only for what was not set
        raise NoData(f"position.{name}")


@dataclass(frozen=True)
class Summary:
    """The account's positions at a glance: ``positions.count`` and friends in rules."""

    positions: tuple[Position, ...]

    @property
    def count(self) -> Decimal:
        return Decimal(len(self.positions))

    @property
    def notional(self) -> Decimal:
        return _sum([p.notional for p in self.positions])

    @property
    def pnl(self) -> Decimal:
        return _sum([p.pnl for p in self.positions])

    @property
    def min_liq_distance(self) -> Decimal:
        known = [d for p in self.positions if (d := p.liq_distance) is not None]
        if not known:
            raise NoData("positions.min_liq_distance")
        return min(known)


def _sum(values: list[Decimal | None]) -> Decimal:
    if any(v is None for v in values):
        raise NoData("a position without that figure")
    return sum((v for v in values if v is not None), Decimal(0))


class UnknownPositions:
    """Positions this poll could not read (or did not ask for): every figure is no data."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Decimal:
        raise NoData(f"positions.{name}")


UNKNOWN_POSITIONS = UnknownPositions()


STORED = ("size", "contract_size", "entry", "mark", "liquidation", "leverage", "margin", "pnl",
          "margin_ratio")  # fmt: skip
MARK = "@"  # a stored position's keys: ``@BTC_USDT long.mark``; ``.open`` is 1 while held


def position_samples(position: Position) -> list[tuple[str, Decimal]]:
    """A position as history keys (for replay): its figures, its margin mode, and an
    ``open`` flag that a poll which no longer finds the position sets to zero."""
    head = f"{MARK}{position.instance}."
    found = [(head + name, getattr(position, name)) for name in STORED]
    found = [(key, value) for key, value in found if value is not None]
    isolated = Decimal(1 if position.margin_mode == "isolated" else 0)
    return [*found, (head + "isolated", isolated), (head + "open", Decimal(1))]


def positions_at(values: dict[str, dict[str, Decimal]]) -> tuple[Position, ...]:
    """The positions open at one stored poll, from their keys grouped by instance
    (``{"@BTC_USDT long": {"mark": ..., "open": 1}}``)."""
    held = []
    for instance, figures in values.items():
        if figures.get("open") != 1 or " " not in instance:
            continue
        symbol, side = instance[len(MARK) :].rsplit(" ", 1)
        mode = "isolated" if figures.get("isolated") == 1 else "cross"
        known = {name: figures.get(name) for name in STORED}
        known["size"] = known["size"] if known["size"] is not None else Decimal(0)
        held.append(Position(symbol, side, mode, **known))  # type: ignore[arg-type]
    return tuple(held)


def from_json(data: dict[str, Any]) -> Position:
    """A position as ``as_json`` wrote it (a ``watcher record`` line); the derived figures
    (notional, distance) are computed again, not read."""
    side, mode = data["side"], data.get("margin_mode") or "cross"
    if side not in ("long", "short") or mode not in ("isolated", "cross"):
        raise ValueError(f"position {data.get('symbol')!r}: side {side!r}, margin mode {mode!r}")
    figures = {name: amount(data[name]) if data.get(name) is not None else None for name in STORED}
    figures["size"] = figures["size"] if figures["size"] is not None else Decimal(0)
    return Position(str(data["symbol"]), side, mode, **figures)  # type: ignore[arg-type]
