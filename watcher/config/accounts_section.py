"""The rules file's ``accounts:`` section: names, sources, their settings and secrets.

A secret (web key, API key, proxy) is written as ``${VAR}``, which comes from the
environment or a systemd credential of that name; a literal secret in the file is
refused, because rules files get copied, pasted and committed.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from watcher.config.channels import ChannelError, expand
from watcher.config.model import AccountSpec
from watcher.config.settings import is_loopback
from watcher.config.yamlloc import Loc, LocMap

SECRET_KEYS = ("web_key", "api_key", "proxy", "secret", "password")
PLAIN_KEYS = ("source", "mexc_url", "base_url", "network", "exchange", "quote")
LIST_KEYS = ("wallets", "pegged")
ACCOUNT_KEYS = (*PLAIN_KEYS, *SECRET_KEYS, *LIST_KEYS)
SOURCES = ("mexc", "bypass", "ccxt")
NEEDS = {"mexc": ("web_key",), "bypass": ("api_key",), "ccxt": ("exchange", "api_key", "secret")}
NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_VAR = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
Report = Callable[[Loc, str], None]


def accounts(
    section: Any, loc: Loc, env: Mapping[str, str] | None, report: Report
) -> tuple[AccountSpec, ...]:
    if section is None:
        return ()
    if not isinstance(section, LocMap) or not section:
        report(loc, "accounts: a mapping of names, e.g. main: {source: mexc, web_key: ...}")
        return ()
    found = []
    for name, spec in section.items():
        where = section.key_locs[name]
        if not isinstance(name, str) or not NAME.fullmatch(name):
            report(where, f"account name {name!r} must be lower case, digits and dashes")
            continue
        account = one(name, spec, section.locs[name], env, report)
        if account is not None:
            found.append(account)
    return tuple(found)


def one(
    name: str, spec: Any, loc: Loc, env: Mapping[str, str] | None, report: Report
) -> AccountSpec | None:
    if not isinstance(spec, LocMap):
        report(loc, f'account {name}: a mapping such as {{source: mexc, web_key: "${{VAR}}"}}')
        return None
    values: dict[str, Any] = {}
    for key, value in spec.items():
        where = spec.locs[key]
        if key in LIST_KEYS:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                report(where, f"account {name}: {key} must be a list of names")
                continue
            values[key] = tuple(i if key == "wallets" else i.upper() for i in items)
            continue
        if key not in ACCOUNT_KEYS:
            report(
                spec.key_locs[key],
                f"account {name}: unknown key '{key}' (keys: {', '.join(ACCOUNT_KEYS)})",
            )
            continue
        text = str(value)
        if key in SECRET_KEYS:
            if not _VAR.search(text):
                report(
                    where,
                    f"account {name}: {key} must be ${{VAR}} (an environment variable or "
                    "credential), never the secret itself",
                )
                continue
            try:
                text = expand(text, env)
            except ChannelError as exc:
                report(where, f"account {name}: {key}: {exc}")
                continue
        values[key] = text
    source = values.get("source", "mexc")
    if source not in SOURCES:
        where = spec.locs.get("source", loc)
        report(where, f"account {name}: source must be mexc, bypass or ccxt")
        return None
    for need in NEEDS[source]:
        if need not in spec:
            example = "mexc" if need == "exchange" else '"${VAR}"'
            report(loc, f"account {name}: the {source} source needs {need}: {example}")
            return None
        if need not in values:
            return None  # its problem is reported above
    if source == "ccxt" and not ccxt_ready(name, values["exchange"], spec, loc, report):
        return None
    for key in ("mexc_url", "base_url"):
        if key in values and not _url_ok(values[key]):
            report(
                spec.locs[key],
                f"account {name}: {key} must be https (plain http only for loopback)",
            )
            return None
    if any(not 0x21 <= ord(c) <= 0x7E for k in ("web_key", "api_key") for c in values.get(k, "")):
        report(loc, f"account {name}: a key contains a character that cannot be sent")
        return None
    return AccountSpec(name=name, **values)


def ccxt_ready(name: str, exchange: str, spec: LocMap, loc: Loc, report: Report) -> bool:
    """ccxt is an optional extra: say how to install it, and whether it knows the exchange."""
    try:
        missing = importlib.util.find_spec("ccxt") is None
    except (ValueError, ImportError):  # blocked or broken: as good as missing
        missing = True
    if missing:
        report(
            spec.locs.get("source", loc),
            f"account {name}: the ccxt source needs the extra: pip install 'watcher[ccxt]'",
        )
        return False
    import ccxt

    if exchange not in ccxt.exchanges:
        report(spec.locs["exchange"], f"account {name}: ccxt knows no exchange {exchange!r}")
        return False
    return True


def _url_ok(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and is_loopback(parts.hostname)
