"""The rules file's ``heartbeat:`` and ``digest:`` sections, parsed with located problems.

Kept out of ``rules.py`` so that the loader of rules stays about rules; both
sections are small and share its ``Loader.problem`` for their errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watcher.config.channels import ChannelError, expand
from watcher.config.model import Digest, Heartbeat
from watcher.config.yamlloc import Loc, LocList, LocMap
from watcher.core.durations import parse_duration

HEARTBEAT_KEYS = ("url", "every", "style")
DIGEST_KEYS = ("at", "timezone", "notify")
STYLES = ("healthchecks", "kuma", "plain")
_HOUR = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
Report = Callable[[Loc, str], None]


def heartbeats(section: Any, loc: Loc, env: Mapping[str, str] | None, report: Report) -> tuple:
    """``heartbeat: {url: ..., every: 5m}``, or a list of them."""
    if section is None:
        return ()
    items = (
        list(zip(section, section.locs, strict=True))
        if isinstance(section, LocList)
        else [(section, loc)]
    )
    found = []
    for item, where in items:
        beat = heartbeat(item, where, env, report)
        if beat is not None:
            found.append(beat)
    return tuple(found)


def heartbeat(
    item: Any, loc: Loc, env: Mapping[str, str] | None, report: Report
) -> Heartbeat | None:
    if not isinstance(item, LocMap) or "url" not in item:
        report(loc, 'heartbeat needs a url, e.g. heartbeat: {url: "${HC_URL}", every: 5m}')
        return None
    for key in item:
        if key not in HEARTBEAT_KEYS:
            report(item.key_locs[key], f"unknown heartbeat key '{key}' (keys: url, every, style)")
    try:
        url = expand(str(item["url"]), env)
    except ChannelError as exc:
        report(item.locs["url"], f"heartbeat: {exc}")
        return None
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        report(item.locs["url"], "heartbeat: the url must be http(s)://...")
        return None
    every = timedelta(minutes=5)
    if "every" in item:
        try:
            every = parse_duration(item["every"])
        except ValueError as exc:
            report(item.locs["every"], f"heartbeat every: {exc}")
        if every < timedelta(seconds=1):
            report(item.locs["every"], "heartbeat every: at least 1s")
    style = str(item.get("style") or ("kuma" if "/api/push/" in url else "healthchecks"))
    if style not in STYLES:
        report(item.locs["style"], f"heartbeat style must be one of {', '.join(STYLES)}")
    return Heartbeat(url, every, style)


def digest(section: Any, loc: Loc, channel_names: set[str], report: Report) -> Digest | None:
    """``digest: {at: "08:00", timezone: Europe/Berlin, notify: [default]}``."""
    if section is None:
        return None
    if not isinstance(section, LocMap) or "at" not in section:
        report(loc, 'digest needs at, e.g. digest: {at: "08:00", timezone: Europe/Berlin}')
        return None
    for key in section:
        if key not in DIGEST_KEYS:
            report(
                section.key_locs[key], f"unknown digest key '{key}' (keys: at, timezone, notify)"
            )
    match = _HOUR.match(str(section["at"]))
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        report(section.locs["at"], 'digest at must be a time of day such as "08:00"')
        return None
    zone = str(section.get("timezone") or "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        report(section.locs.get("timezone", loc), f"unknown time zone {zone!r}")
        return None
    notify = section.get("notify") or ["default"]
    notify = [notify] if isinstance(notify, str) else list(notify)
    for name in notify:
        if name not in channel_names:
            report(section.locs.get("notify", loc), f"digest notify: no channel named '{name}'")
    return Digest(time(int(match[1]), int(match[2])), zone, tuple(str(n) for n in notify))


COMMAND_KEYS = ("token", "chats", "users", "api_url")


def telegram(section: Any, loc: Loc, env: Mapping[str, str] | None, report: Report) -> Any:
    """``commands: {telegram: {token: "${VAR}", chats: [id], users: [id], api_url: ...}}``."""
    from watcher.config.model import TelegramCommands

    if section is None:
        return None
    if not isinstance(section, LocMap) or set(section) - {"telegram"}:
        report(loc, "commands: only 'telegram' is known, e.g. commands: {telegram: {...}}")
        return None
    spec = section.get("telegram")
    where = section.locs.get("telegram", loc)
    if not isinstance(spec, LocMap):
        report(where, "commands telegram: a mapping with token and chats")
        return None
    for key in spec:
        if key not in COMMAND_KEYS:
            report(
                spec.key_locs[key],
                f"unknown telegram key '{key}' (keys: {', '.join(COMMAND_KEYS)})",
            )
    raw = str(spec.get("token", ""))
    if "${" not in raw:
        report(
            spec.locs.get("token", where), 'telegram token must be "${VAR}", never the token itself'
        )
        return None
    try:
        token = expand(raw, env)
    except ChannelError as exc:
        report(spec.locs["token"], f"telegram token: {exc}")
        return None
    chats = _ids(spec, "chats", where, report, required=True)
    users = _ids(spec, "users", where, report, required=False)
    api = str(spec.get("api_url") or "https://api.telegram.org").rstrip("/")
    if urlsplit(api).scheme not in ("http", "https"):
        report(spec.locs.get("api_url", where), "telegram api_url must be http(s)://...")
    return TelegramCommands(token, chats or (), users, api)


def _ids(
    spec: LocMap, key: str, loc: Loc, report: Report, required: bool
) -> tuple[int, ...] | None:
    value = spec.get(key)
    if value is None:
        if required:
            report(loc, f"telegram {key}: required, e.g. {key}: [123456789]")
        return None
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        report(spec.locs[key], f"telegram {key}: a non-empty list of numeric ids")
        return None
    return tuple(items)
