"""The rules file's ``heartbeat:``, ``digest:`` and ``commands:`` sections, parsed with
located problems.

Kept out of ``rules_file.py`` so that the loader of rules stays about rules; the
sections are small and share its ``RulesCompiler.problem`` for their errors. URLs and tokens
are kept as written (``${VAR}``); ``watcher.config.resolve`` expands them at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watcher.config.model import Digest, Heartbeat
from watcher.config.resolve import is_reference
from watcher.config.settings import is_loopback
from watcher.config.yamlloc import Loc, LocList, LocMap
from watcher.core.durations import parse_duration
from watcher.core.errors import Where

HEARTBEAT_KEYS = ("url", "every", "style")
DIGEST_KEYS = ("at", "timezone", "notify")
STYLES = ("healthchecks", "kuma", "plain")
_HOUR = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
Complain = Callable[[Loc, str], None]
Locate = Callable[[Loc], Where]


def heartbeats(section: Any, loc: Loc, locate: Locate, complain: Complain) -> tuple:
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
        beat = heartbeat(item, where, locate, complain)
        if beat is not None:
            found.append(beat)
    return tuple(found)


def heartbeat(item: Any, loc: Loc, locate: Locate, complain: Complain) -> Heartbeat | None:
    if not isinstance(item, LocMap) or "url" not in item:
        complain(loc, 'heartbeat needs a url, e.g. heartbeat: {url: "${HC_URL}", every: 5m}')
        return None
    for key in item:
        if key not in HEARTBEAT_KEYS:
            complain(item.key_locs[key], f"unknown heartbeat key '{key}' (keys: url, every, style)")
    url = str(item["url"])
    every = timedelta(minutes=5)
    if "every" in item:
        try:
            every = parse_duration(item["every"])
        except ValueError as exc:
            complain(item.locs["every"], f"heartbeat every: {exc}")
        if every < timedelta(seconds=1):
            complain(item.locs["every"], "heartbeat every: at least 1s")
    style = str(item["style"]) if item.get("style") else None  # None: inferred once resolved
    if style is not None and style not in STYLES:
        complain(item.locs["style"], f"heartbeat style must be one of {', '.join(STYLES)}")
    return Heartbeat(url, every, style, locate(item.locs["url"]))


def digest(section: Any, loc: Loc, channel_names: set[str], complain: Complain) -> Digest | None:
    """``digest: {at: "08:00", timezone: Europe/Berlin, notify: [default]}``."""
    if section is None:
        return None
    if not isinstance(section, LocMap) or "at" not in section:
        complain(loc, 'digest needs at, e.g. digest: {at: "08:00", timezone: Europe/Berlin}')
        return None
    for key in section:
        if key not in DIGEST_KEYS:
            complain(
                section.key_locs[key], f"unknown digest key '{key}' (keys: at, timezone, notify)"
            )
    match = _HOUR.match(str(section["at"]))
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        complain(section.locs["at"], 'digest at must be a time of day such as "08:00"')
        return None
    zone = str(section.get("timezone") or "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        complain(section.locs.get("timezone", loc), f"unknown time zone {zone!r}")
        return None
    notify = section.get("notify") or ["default"]
    notify = [notify] if isinstance(notify, str) else list(notify)
    for name in notify:
        if name not in channel_names:
            complain(section.locs.get("notify", loc), f"digest notify: no channel named '{name}'")
    return Digest(time(int(match[1]), int(match[2])), zone, tuple(str(n) for n in notify))


COMMAND_KEYS = ("token", "chats", "users", "api_url")


def telegram(section: Any, loc: Loc, locate: Locate, complain: Complain) -> Any:
    """``commands: {telegram: {token: "${VAR}", chats: [id], users: [id], api_url: ...}}``."""
    from watcher.config.model import TelegramCommands

    if section is None:
        return None
    if not isinstance(section, LocMap) or set(section) - {"telegram"}:
        complain(loc, "commands: only 'telegram' is known, e.g. commands: {telegram: {...}}")
        return None
    spec = section.get("telegram")
    where = section.locs.get("telegram", loc)
    if not isinstance(spec, LocMap):
        complain(where, "commands telegram: a mapping with token and chats")
        return None
    for key in spec:
        if key not in COMMAND_KEYS:
            complain(
                spec.key_locs[key],
                f"unknown telegram key '{key}' (keys: {', '.join(COMMAND_KEYS)})",
            )
    raw = str(spec.get("token", ""))
    if not is_reference(raw):
        complain(
            spec.locs.get("token", where), 'telegram token must be "${VAR}", never the token itself'
        )
        return None
    chats = _ids(spec, "chats", where, complain, required=True)
    users = _ids(spec, "users", where, complain, required=False)
    api = str(spec.get("api_url") or "https://api.telegram.org").rstrip("/")
    parts = urlsplit(api)
    if parts.scheme not in ("http", "https"):
        complain(spec.locs.get("api_url", where), "telegram api_url must be http(s)://...")
    elif parts.scheme == "http" and not is_loopback(parts.hostname):
        message = "telegram api_url must be https (plain http only for loopback): the token"
        complain(spec.locs.get("api_url", where), f"{message} is in every request")
    return TelegramCommands(raw, chats or (), users, api, locate(spec.locs["token"]))


def _ids(
    spec: LocMap, key: str, loc: Loc, complain: Complain, required: bool
) -> tuple[int, ...] | None:
    value = spec.get(key)
    if value is None:
        if required:
            complain(loc, f"telegram {key}: required, e.g. {key}: [123456789]")
        return None
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        complain(spec.locs[key], f"telegram {key}: a non-empty list of numeric ids")
        return None
    return tuple(items)
