"""Notification channels from the rules file: names, apprise URLs, quiet hours.

A channel URL is a secret (tokens live inside it). Parsing keeps its text as written,
``${VAR}`` and all; ``watcher.config.resolve`` expands it in memory when check, run or
once starts, and ``watcher.app.preflight`` asks apprise whether it makes a service.
Anything shown to a person uses apprise's privacy form, and the database keys a URL by
a hash, never by its text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watcher.core.errors import NOWHERE, Where

_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
CHANNEL_KEYS = ("urls", "quiet_hours", "timezone")


class ChannelError(ValueError):
    """One problem with a channel, raised while parsing; the rules loader locates it."""

    def __init__(self, message: str, key: str | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.index = index
        self.urls: tuple[str, ...] = ()  # the URLs that did parse, if any


@dataclass(frozen=True)
class QuietHours:
    """A daily window, possibly across midnight, in one time zone."""

    start: time
    end: time
    zone: ZoneInfo | None

    def release(self, now: datetime) -> datetime | None:
        """When a message decided at ``now`` may go out: None if not inside the window."""
        local = now.astimezone(self.zone) if self.zone else now.astimezone()
        start = local.replace(hour=self.start.hour, minute=self.start.minute, second=0)
        start = start.replace(microsecond=0)
        end = start.replace(hour=self.end.hour, minute=self.end.minute)
        if self.start <= self.end:
            inside = start <= local < end
        else:  # across midnight: 23:00-07:00
            if local < end:
                start -= timedelta(days=1)
            else:
                end += timedelta(days=1)
            inside = start <= local < end
        return end.astimezone(now.tzinfo) if inside else None


@dataclass(frozen=True)
class Channel:
    name: str
    urls: tuple[str, ...]
    quiet_hours: QuietHours | None = None
    where: tuple[Where, ...] = field(default=(), compare=False, repr=False)  # one per URL

    def located(self) -> list[tuple[str, Where]]:
        """Each URL with where it stood in the rules file (nowhere for one built in code)."""
        return list(zip(self.urls, self.where or (NOWHERE,) * len(self.urls), strict=True))


def url_key(url: str) -> str:
    """A stable name for a URL that reveals nothing about it."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def parse_quiet_hours(text: Any, zone_name: Any) -> QuietHours:
    match = _HOURS.match(str(text))
    if not match:
        raise ChannelError("quiet_hours must look like 23:00-07:00", "quiet_hours")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ChannelError("quiet_hours has an impossible time", "quiet_hours")
    zone = None
    if zone_name is not None:
        try:
            zone = ZoneInfo(str(zone_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ChannelError(f"unknown time zone {zone_name!r}", "timezone") from None
    return QuietHours(time(h1, m1), time(h2, m2), zone)


def parse_channel(name: str, spec: Any) -> Channel:
    """One channel from its YAML value: a URL string or a mapping with ``urls``, as written."""
    if isinstance(spec, str):
        spec = {"urls": [spec]}
    if not isinstance(spec, dict):
        raise ChannelError("a channel is a URL or a mapping with 'urls'")
    unknown = [k for k in spec if k not in CHANNEL_KEYS]
    if unknown:
        raise ChannelError(f"unknown channel key '{unknown[0]}'", unknown[0])
    raw = spec.get("urls")
    raw = [raw] if isinstance(raw, str) else raw
    if not raw or not isinstance(raw, list):
        raise ChannelError("'urls' must be a URL or a list of URLs", "urls")
    urls = []
    for index, url in enumerate(raw):
        if not isinstance(url, str):
            raise ChannelError("each URL must be text", "urls", index)
        urls.append(url)
    try:
        quiet = _quiet(spec)
    except ChannelError as exc:
        exc.urls = tuple(urls)  # still worth checking at start-up, beside this problem
        raise
    return Channel(name, tuple(urls), quiet)


def _quiet(spec: dict[str, Any]) -> QuietHours | None:
    if spec.get("quiet_hours") is not None:
        return parse_quiet_hours(spec["quiet_hours"], spec.get("timezone"))
    if spec.get("timezone") is not None:
        raise ChannelError("'timezone' only matters with 'quiet_hours'", "timezone")
    return None
