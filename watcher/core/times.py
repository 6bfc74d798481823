"""How times read: for people in one display zone (``WATCHER_TIMEZONE``, default UTC),
for machines in UTC ISO-8601 to the second.

Messages, the digest, ``status``, ``once``, ``silence --list`` and the Telegram bot show
``shown(at)``: ``2026-11-30 09:15 CET``. JSON shows ``stamp(at)``; logs stamp UTC the
same way. The zone is chosen once, by the command or daemon at start (``use_zone``):
every message of one process reads in one zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_zone: tzinfo = UTC


def zone_of(name: str) -> tzinfo:
    """The zone called ``name`` (``UTC``, ``Europe/Berlin``); ValueError in words if none."""
    if name.strip().upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; e.g. UTC or Europe/Berlin") from None


def use_zone(name: str) -> None:
    global _zone
    _zone = zone_of(name)


def local(at: datetime) -> datetime:
    return at.astimezone(_zone)


def shown(at: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``2026-11-30 09:15 CET``: the time and the zone's name at that time."""
    moment = local(at)
    return f"{moment.strftime(fmt)} {label(at)}"


def label(at: datetime | None = None) -> str:
    """The display zone's abbreviation at ``at`` (``CET`` in winter, ``CEST`` in summer)."""
    return local(at or datetime.now(UTC)).tzname() or "UTC"


def stamp(at: datetime | None) -> str | None:
    """UTC ISO-8601 to the second, for JSON: ``2026-11-30T08:15:00+00:00``."""
    return at.astimezone(UTC).isoformat(timespec="seconds") if at else None
