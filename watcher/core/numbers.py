"""One number format wherever a person reads: ``7,779``, ``0.01151``, ``82.1%``.

Messages, the digest, ``once``, ``status``, the Telegram bot and a rule's own
``message:`` template all go through ``human``; JSON and the database keep the exact
``Decimal`` text.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


def human(value: Decimal | None, percent: bool = False) -> str:
    """``7,779`` not ``7,779.00000``; ``0.01151``; ``82.1%`` for a share."""
    if value is None:
        return "-"
    if percent:
        return _plain(value * 100, 1) + "%"
    return _plain(value, 2)


def _plain(value: Decimal, places: int) -> str:
    if value.is_zero():
        return "0"
    if abs(value) < 1:  # four significant digits for small amounts and shares
        places = min(-value.adjusted() + 3, 12)
    rounded = value.quantize(Decimal(1).scaleb(-places))
    text = format(rounded, ",f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Shown:
    """A value for a ``message:`` template: ``{value}`` reads as the built-in lines do
    (``1,500``, ``61.2%``); a format spec (``{value:.1f}``) formats the number itself, in
    percent for a percent rule."""

    value: Decimal | None
    percent: bool = False

    def __format__(self, spec: str) -> str:
        if self.value is None:  # with a spec, the line falls back to the built-in one
            if spec:
                raise TypeError(f"no value to format with {spec!r}")
            return "-"
        if not spec:
            return human(self.value, self.percent)
        return format(self.value * 100 if self.percent else self.value, spec)

    def __str__(self) -> str:
        return format(self, "")
