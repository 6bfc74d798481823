"""Time as users write it (``30s``, ``5m``, ``1h30m``, ``90``) to ``timedelta``, and the real
clock that every ``clock`` argument defaults to."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

MAX_DURATION = timedelta(days=366)  # no balance alert looks back, waits or repeats longer
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")


def parse_duration(value: object) -> timedelta:
    """Parse a duration; plain numbers are seconds. Raises ValueError with a hint."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif _WHOLE.fullmatch(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"a duration can be at most 366d, got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Shortest readable form, e.g. ``1h30m``; used in messages and status."""
    total = int(delta.total_seconds())
    if total == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def utcnow() -> datetime:
    """The real clock, the default of every ``clock`` argument (tests pass their own)."""
    return datetime.now(UTC)


def counted(number: int, word: str) -> str:
    """``1 channel``, ``2 channels``: a count a person reads, in good grammar."""
    return f"{number} {word}" if number == 1 else f"{number} {word}s"
