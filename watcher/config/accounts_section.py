"""The rules file's ``accounts:`` section: names, sources, their settings and secrets.

A secret (web key, API key, proxy) is written as ``${VAR}``, which comes from the
environment or a systemd credential of that name; a literal secret in the file is
refused, because rules files get copied, pasted and committed. Parsing keeps the
``${VAR}`` text and where it stood: ``watcher.config.resolve`` expands it at start-up,
and ``watcher.app.preflight`` asks ccxt whether it knows the exchange.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from watcher.config.model import SECRET_FIELDS, AccountSpec
from watcher.config.resolve import is_reference
from watcher.config.settings import is_loopback
from watcher.config.yamlloc import Loc, LocMap
from watcher.core.errors import Where

SECRET_KEYS = SECRET_FIELDS
PLAIN_KEYS = ("source", "mexc_url", "base_url", "network", "exchange", "quote")
LIST_KEYS = ("wallets", "pegged")
ACCOUNT_KEYS = (*PLAIN_KEYS, *SECRET_KEYS, *LIST_KEYS)
SOURCES = ("mexc", "bypass", "ccxt")
NEEDS = {"mexc": ("web_key",), "bypass": ("api_key",), "ccxt": ("exchange", "api_key", "secret")}
NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_BARE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")  # $VAR: a shell habit, without braces
Complain = Callable[[Loc, str], None]
Locate = Callable[[Loc], Where]


def accounts(section: Any, loc: Loc, locate: Locate, complain: Complain) -> tuple[AccountSpec, ...]:
    if section is None:
        return ()
    if not isinstance(section, LocMap) or not section:
        complain(loc, "accounts: a mapping of names, e.g. main: {source: mexc, web_key: ...}")
        return ()
    found = []
    for name, spec in section.items():
        where = section.key_locs[name]
        if not isinstance(name, str) or not NAME.fullmatch(name):
            complain(where, f"account name {name!r} must be lower case, digits and dashes")
            continue
        account = one(name, spec, section.locs[name], locate, complain)
        if account is not None:
            found.append(account)
    return tuple(found)


def one(name: str, spec: Any, loc: Loc, locate: Locate, complain: Complain) -> AccountSpec | None:
    if not isinstance(spec, LocMap):
        complain(loc, f'account {name}: a mapping such as {{source: mexc, web_key: "${{VAR}}"}}')
        return None
    values: dict[str, Any] = {}
    for key, value in spec.items():
        where = spec.locs[key]
        if key in LIST_KEYS:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                complain(where, f"account {name}: {key} must be a list of names")
                continue
            values[key] = tuple(i if key == "wallets" else i.upper() for i in items)
            continue
        if key not in ACCOUNT_KEYS:
            complain(
                spec.key_locs[key],
                f"account {name}: unknown key '{key}' (keys: {', '.join(ACCOUNT_KEYS)})",
            )
            continue
        text = str(value)
        if key in SECRET_KEYS and not is_reference(text):
            bare = _BARE.fullmatch(text.strip())
            complain(
                where,
                f"account {name}: {key}: write ${{{bare.group(1)}}}, with braces"
                if bare
                else f"account {name}: {key} must be ${{VAR}} (an environment variable or "
                "credential), never the secret itself",
            )
            continue
        values[key] = text
    source = values.get("source", "mexc")
    if source not in SOURCES:
        where = spec.locs.get("source", loc)
        complain(where, f"account {name}: source must be mexc, bypass or ccxt")
        return None
    for need in NEEDS[source]:
        if need not in spec:
            example = "mexc" if need == "exchange" else '"${VAR}"'
            complain(loc, f"account {name}: the {source} source needs {need}: {example}")
            return None
        if need not in values:
            return None  # its problem is reported above
    for key in ("mexc_url", "base_url"):
        if key in values and not _url_ok(values[key]):
            complain(
                spec.locs[key],
                f"account {name}: {key} must be https (plain http only for loopback)",
            )
            return None
    where = {"": locate(loc), **{key: locate(spec.locs[key]) for key in spec if key in values}}
    return AccountSpec(name=name, **values, where=tuple(where.items()))


def _url_ok(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and is_loopback(parts.hostname)
