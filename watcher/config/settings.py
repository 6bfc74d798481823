"""Settings from ``WATCHER_*`` environment variables, ``.env`` and systemd credentials.

A plain frozen dataclass that checks every field on construction, rather than
pydantic-settings: the daemon's whole resident size goal (45 MB) could not carry
pydantic's ten megabytes for sixteen fields. Later sources win: systemd
credentials, then ``.env`` in the working directory, then the environment, then
keyword arguments. An empty variable counts as unset, as ``WATCHER_PROXY=`` in an
``EnvironmentFile`` means. Names are case-insensitive, like the shell's users expect.

systemd's ``LoadCredential=api_key:...`` puts plain file names in
``$CREDENTIALS_DIRECTORY``, hence the explicit mapping for the two keys.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from watcher.config.credentials import credential
from watcher.core.durations import format_duration, parse_duration
from watcher.core.errors import ConfigError
from watcher.core.secrets import Secret

ENV_PREFIX = "WATCHER_"
CREDENTIAL_FIELDS = ("api_key", "web_key")
MIN_INTERVAL = timedelta(seconds=1)  # a poll a second is already more than an exchange likes
ENV_FILE = ".env"


def is_loopback(host: str | None) -> bool:
    """True for localhost and loopback addresses, where plain http cannot leak a key."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_state() -> Path:
    state_dir = os.environ.get("STATE_DIRECTORY")
    # systemd may list several directories separated by ':'; the first is ours.
    return Path(state_dir.split(":")[0]) / "watcher.db" if state_dir else Path("watcher.db")


@dataclass(frozen=True)
class Settings:
    """Everything the daemon reads from its environment; secrets are ``Secret``.

    Every field also accepts its text form (``interval="5m"``, ``web_key="WEB..."``),
    as the environment gives it; construction converts and checks all of them and
    raises one ``ConfigError`` line per bad variable.
    """

    name: str = field(default_factory=socket.gethostname)
    source: Literal["mexc", "bypass"] = "mexc"
    api_key: Secret | None = None
    web_key: Secret | None = None
    web_key_issued: datetime | None = None
    network: Literal["MAINNET", "TESTNET"] = "MAINNET"
    mexc_url: str = "https://www.mexc.com"
    base_url: str = "https://api.mexc-bypass.xyz/v1"
    proxy: Secret | None = None
    rules: Path = Path("rules.yaml")
    state: Path = field(default_factory=_default_state)
    interval: timedelta = timedelta(seconds=60)
    timeout: timedelta = timedelta(seconds=10)
    stale_after: timedelta = timedelta(minutes=5)
    history_keep: timedelta = timedelta(days=7)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    metrics_addr: str | None = None
    given: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    """The fields set explicitly (not left at their default), for commands that pick
    their own default when the user said nothing."""

    def __post_init__(self) -> None:
        problems = []
        for name, check in CHECKS.items():
            try:
                object.__setattr__(self, name, check(getattr(self, name)))
            except (ValueError, TypeError, OverflowError) as exc:
                problems.append(f"{ENV_PREFIX}{name.upper()}: {exc}")
        if problems:
            raise ConfigError("\n".join(problems))

    @property
    def metrics_bind(self) -> tuple[str, int] | None:
        if not self.metrics_addr:
            return None
        host, _, port = self.metrics_addr.rpartition(":")
        return host.strip("[]"), int(port)

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log masking processor (a proxy's password too)."""
        secrets = (self.api_key, self.web_key, self.proxy)
        found = [s.get_secret_value() for s in secrets if s]
        if self.proxy:
            found.append(urlsplit(self.proxy.get_secret_value()).password or "")
        return [s for s in found if s]

    def require_api_key(self) -> str:
        if not self.api_key:
            raise ConfigError(
                "WATCHER_API_KEY is not set: the bypass source needs your gateway's API key in "
                "the environment, .env, or a systemd credential named api_key"
            )
        return self.api_key.get_secret_value()

    def require_web_key(self) -> str:
        if not self.web_key:
            raise ConfigError(
                "WATCHER_WEB_KEY is not set: copy the u_id cookie of a logged-in MEXC session "
                "(it starts with WEB) into the environment, .env, or a systemd credential "
                "named web_key"
            )
        return self.web_key.get_secret_value()

    def require_secrets(self) -> None:
        """Stop at once, with one line, when the configured source cannot authenticate."""
        if self.source == "bypass":
            self.require_api_key()
        else:
            self.require_web_key()


def field_names() -> tuple[str, ...]:
    """The settings a user can set, each as ``WATCHER_`` plus its upper-case name."""
    return tuple(f.name for f in fields(Settings) if f.name != "given")


def load_settings(env_file: str | Path | None = ENV_FILE, **overrides: Any) -> Settings:
    """Settings from credentials, ``env_file``, the environment and ``overrides``."""
    values = _credentials()
    if env_file is not None:
        from dotenv import dotenv_values  # only here: code that builds Settings needs none

        values |= _prefixed(dotenv_values(env_file, encoding="utf-8"))
    values |= _prefixed(os.environ) | overrides
    return Settings(**values, given=frozenset(values))


def _credentials() -> dict[str, Any]:
    found = {name: credential(name) for name in CREDENTIAL_FIELDS}
    return {name: value for name, value in found.items() if value}


def _prefixed(variables: Mapping[str, str | None]) -> dict[str, str]:
    """``WATCHER_*`` variables by field name; unknown names and empty values are ignored."""
    known = set(field_names())
    found = {}
    for key, value in variables.items():
        name = key[len(ENV_PREFIX) :].lower()
        if key.upper().startswith(ENV_PREFIX) and name in known and value:
            found[name] = value
    return found


# --- one check per field: value (typed, or text from the environment) -> typed value ---


def _one_of(*allowed: str) -> Callable[[Any], str]:
    """A word from a fixed list, in whatever letter case it was written."""
    words = {word.upper(): word for word in allowed}
    listed = ", ".join(allowed[:-1]) + f" or {allowed[-1]}"

    def check(value: Any) -> str:
        word = words.get(str(value).strip().upper())
        if word is None:
            raise ValueError(f"must be {listed}, not {str(value)[:40]!r}")
        return word

    return check


def _name(value: Any) -> str:
    text = str(value).strip() or socket.gethostname()
    if len(text) > 64:
        raise ValueError("must be at most 64 characters")
    return text


def _key(value: Any) -> Secret | None:
    """A key travels in a header: a pasted '…' or space can never work, so say so now."""
    text = _text_of(value).strip()
    if not text:
        return None
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in text):
        raise ValueError(
            "contains a character that cannot be sent (a space, a '…' or another non-ASCII "
            "character from copying); paste the key again"
        )
    return Secret(text)


def pasted_cookie(text: str) -> str | None:
    """Why a web key looks like the whole cookie pasted (``u_id=WEB...;``), or None."""
    if text.lower().startswith("u_id=") or text.rstrip().endswith(";"):
        return "looks like the cookie as copied (u_id=...;): keep only the value after u_id="
    return None


def _web_key(value: Any) -> Secret | None:
    """A key, and not the cookie line it was copied from: MEXC's refusal of ``u_id=WEB...``
    would say "log in again", which sends the user the wrong way."""
    key = _key(value)
    if key is not None and (problem := pasted_cookie(key.get_secret_value())):
        raise ValueError(problem)
    return key


def _proxy(value: Any) -> Secret | None:
    text = _text_of(value).strip()
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
        raise ValueError("must be a proxy URL such as socks5://user:pass@host:1080")
    return Secret(text)


def _text_of(value: Any) -> str:
    if value is None:
        return ""
    return value.get_secret_value() if isinstance(value, Secret) else str(value)


def _https_unless_loopback(value: Any) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://www.mexc.com")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("plain http would send the key in clear; use https")
    return text.rstrip("/")


def _login_time(value: Any) -> datetime | None:
    """When the web key's session began; a date the expiry arithmetic could overflow on
    can never be right."""
    years = "must be a login time between the years 2000 and 2100"
    if value is None or isinstance(value, datetime):
        when = value
    elif str(value).strip().isdigit():  # Unix seconds
        try:
            when = datetime.fromtimestamp(int(str(value).strip()), UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(years) from None
    else:
        try:
            when = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError("must be a time such as 2026-11-26T08:00:00+00:00") from None
    if when is not None and not 2000 <= when.year <= 2100:
        raise ValueError(years)
    return when


def _duration(positive: bool, floor: timedelta | None = None) -> Callable[[Any], timedelta]:
    def check(value: Any) -> timedelta:
        delta = parse_duration(value)
        if positive and delta <= timedelta(0):
            raise ValueError("must be longer than 0s")
        if floor is not None and delta < floor:
            raise ValueError(f"must be at least {format_duration(floor)}, got {value!r}")
        return delta

    return check


def _host_port(value: Any) -> str | None:
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT such as 127.0.0.1:9108")
    return text


CHECKS: dict[str, Callable[[Any], Any]] = {
    "name": _name,
    "source": _one_of("mexc", "bypass"),
    "api_key": _key,
    "web_key": _web_key,
    "web_key_issued": _login_time,
    "network": _one_of("MAINNET", "TESTNET"),
    "mexc_url": _https_unless_loopback,
    "base_url": _https_unless_loopback,
    "proxy": _proxy,
    "rules": Path,
    "state": Path,
    "interval": _duration(positive=True, floor=MIN_INTERVAL),
    "timeout": _duration(positive=True),
    "stale_after": _duration(positive=True),
    "history_keep": _duration(positive=False),
    "log_format": _one_of("auto", "json", "console"),
    "log_level": _one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "metrics_addr": _host_port,
}
