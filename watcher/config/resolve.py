"""Start-up's first step after parsing: every ``${VAR}`` the rules file names, expanded.

Parsing is pure and keeps ``${VAR}`` as written, so a rules file can be read and checked
without the service's environment. When ``check``, ``run`` or ``once`` starts, this
module fills each one from the environment or a systemd credential of that name, and
says at once, with file, line and column, every variable that is missing. The values
live only in memory: the resolved ``RuleSet`` is what sends and signs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from urllib.parse import urlsplit

from watcher.config.channels import Channel
from watcher.config.credentials import credential
from watcher.config.model import SECRET_FIELDS, AccountSpec, Heartbeat, RuleSet
from watcher.config.settings import is_loopback, pasted_cookie
from watcher.core.errors import Problem, RulesError, Where
from watcher.core.secrets import MASKER

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


HEALTHCHECKS_HOSTS = ("hc-ping.com", "healthchecks.io")


def inferred_style(url: str) -> str:
    """A style from what the URL says for sure: healthchecks.io's hosts, Uptime Kuma's
    ``/api/push/`` path; anything else is ``plain`` (a self-hosted healthchecks instance
    says ``style: healthchecks``)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if any(host == h or host.endswith("." + h) for h in HEALTHCHECKS_HOSTS):
        return "healthchecks"
    return "kuma" if "/api/push/" in parts.path else "plain"


def is_reference(text: str) -> bool:
    """A secret in the rules file is exactly one ``${VAR}``: never the secret, nor a part
    of it glued to a variable (``WEBliteral${EMPTY}``)."""
    return _VAR.fullmatch(text.strip()) is not None


SENDABLE_KEYS = ("web_key", "api_key")  # sent in a header: printable ASCII only


class Unset(LookupError):
    """A ``${VAR}`` with neither an environment variable nor a credential behind it."""


def expand(text: str, env: Mapping[str, str] | None = None) -> str:
    """Replace ``${VAR}`` from the environment or a systemd credential of that name."""
    env = os.environ if env is None else env

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        value = env.get(name)
        if value is None:
            value = credential(name) or credential(name.lower())
        if value is None:
            raise Unset(f"environment variable {name} is not set")
        return value

    return _VAR.sub(one, text)


def resolve(rules: RuleSet, env: Mapping[str, str] | None = None) -> RuleSet:
    """The same rules with every ``${VAR}`` filled in; ``RulesError`` lists all that cannot be."""
    resolved, problems = resolve_all(rules, env)
    if problems:
        raise RulesError(problems)
    return resolved


def unresolved(text: str) -> bool:
    """True while ``text`` still holds a ``${VAR}`` (it could not be filled)."""
    return _VAR.search(text) is not None


def resolve_all(
    rules: RuleSet, env: Mapping[str, str] | None = None
) -> tuple[RuleSet, list[Problem]]:
    """Every ``${VAR}`` that can be filled, and a located problem for each that cannot
    (left as written)."""
    problems: list[Problem] = []

    def fill(text: str, where: Where, label: str) -> str:
        try:
            return expand(text, env)
        except Unset as exc:
            problems.append(where.problem(f"{label}: {exc}"))
            return text

    channels = {name: _channel(channel, fill) for name, channel in rules.channels.items()}
    accounts = tuple(_account(a, fill, problems) for a in rules.accounts)
    beats = tuple(_heartbeat(b, fill, problems) for b in rules.heartbeats)
    bot = rules.telegram
    if bot is not None:
        bot = replace(bot, token=fill(bot.token, bot.where, "telegram token"))
    resolved = replace(rules, channels=channels, accounts=accounts, heartbeats=beats, telegram=bot)
    hide(resolved)
    return resolved, sorted(problems, key=lambda p: (p.line, p.column))


def hide(rules: RuleSet) -> None:
    """Every secret the rules file brought into memory joins the log masker: account
    secrets, the Telegram token, and the tokens inside channel and heartbeat URLs."""
    for account in rules.accounts:
        for secret in account.secrets():
            MASKER.add(secret)
    if rules.telegram is not None:
        MASKER.add(rules.telegram.token)
    for channel in rules.channels.values():
        for url in channel.urls:
            MASKER.add(url)
    for beat in rules.heartbeats:
        MASKER.add(beat.url)


Fill = Callable[[str, Where, str], str]


def _channel(channel: Channel, fill: Fill) -> Channel:
    label = f"channel {channel.name}"
    return replace(channel, urls=tuple(fill(url, where, label) for url, where in channel.located()))


def _account(account: AccountSpec, fill: Fill, problems: list[Problem]) -> AccountSpec:
    values = {}
    for key in SECRET_FIELDS:
        raw = getattr(account, key)
        if raw is not None:
            values[key] = fill(raw, account.at(key), f"account {account.name}: {key}")
    pasted = pasted_cookie(values.get("web_key") or "")
    if pasted:
        problems.append(account.at("web_key").problem(f"account {account.name}: web_key {pasted}"))
    sendable = (values.get(k) or "" for k in SENDABLE_KEYS)
    if any(not 0x21 <= ord(c) <= 0x7E for text in sendable for c in text):
        message = f"account {account.name}: a key contains a character that cannot be sent"
        problems.append(account.at("").problem(message))
    return replace(account, **values)


def _heartbeat(beat: Heartbeat, fill: Fill, problems: list[Problem]) -> Heartbeat:
    url = fill(beat.url, beat.where, "heartbeat")
    parts = urlsplit(url)
    if unresolved(url):
        pass  # its problem is the unset variable
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(beat.where.problem("heartbeat: the url must be http(s)://..."))
    elif parts.scheme == "http" and not is_loopback(parts.hostname):
        message = "heartbeat: the url must be https (plain http only for loopback)"
        problems.append(beat.where.problem(message))
    style = beat.style or inferred_style(url)
    return replace(beat, url=url, style=style)
