"""Text from outside (an exchange's message, a currency code, Telegram's words) made safe to
show on a terminal, in a log line or in a notification.

An exchange can send ANSI escapes that repaint a terminal, a newline that forges a line
of a notification, or U+202E that reverses what a phone shows. None of that survives.
"""

from __future__ import annotations

import re
import unicodedata

CURRENCY_CODE = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,31}")  # BTC, 1INCH, USDT.E, BTC-PERP
_HIDDEN = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})  # control, format (bidi), private


def printable(text: str) -> str:
    """One line: any run of white space (newlines too) becomes one space, and control and
    format characters (ESC, bidi overrides, zero-width joiners) are dropped."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in _HIDDEN
    )
    return " ".join(kept.split())


def currency_code(value: object) -> str | None:
    """An exchange's currency code, upper-cased, or None when it is not a plain code."""
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    return code if CURRENCY_CODE.fullmatch(code) else None
