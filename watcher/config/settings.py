"""Settings from ``WATCHER_*`` environment variables, ``.env`` and systemd credentials.

pydantic-settings does the reading: ``load_settings`` builds an ``Environment``, whose
sources are, strongest first, keyword arguments, the environment, ``.env`` in the
working directory and the two systemd credentials. An empty variable counts as unset,
as ``WATCHER_PROXY=`` in an ``EnvironmentFile`` means. Names are case-insensitive, like
the shell's users expect. ``Settings`` itself reads nothing: built in code it holds
what it is given, checked the same way.

Each field has one check below (text from the environment -> typed value); a bad value
is one line that names the variable, in watcher's words, never pydantic's.

systemd's ``LoadCredential=api_key:...`` puts plain file names in
``$CREDENTIALS_DIRECTORY``, hence a small source of its own for the two keys.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from watcher.config.credentials import credential
from watcher.core.durations import format_duration, parse_duration
from watcher.core.errors import ConfigError
from watcher.core.times import zone_of

ENV_PREFIX = "WATCHER_"
CREDENTIAL_FIELDS = ("api_key", "web_key", "state_password")
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


class Settings(BaseSettings):
    """Everything the daemon reads from its environment; secrets are ``SecretStr``.

    Every field also accepts its text form (``interval="5m"``, ``web_key="WEB..."``),
    as the environment gives it; construction converts and checks all of them and
    raises one ``ConfigError`` line per bad variable.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        case_sensitive=False,
        extra="ignore",  # WATCHER_NO_SUCH_THING in .env is not ours to refuse
        frozen=True,
    )

    name: str = Field(default_factory=socket.gethostname)
    source: Literal["mexc", "bypass"] = "mexc"
    api_key: SecretStr | None = None
    web_key: SecretStr | None = None
    web_key_issued: datetime | None = None
    network: Literal["MAINNET", "TESTNET"] = "MAINNET"
    mexc_url: str = "https://www.mexc.com"
    mexc_futures_url: str = "https://futures.mexc.com"
    base_url: str = "https://api.mexc-bypass.xyz/v1"
    proxy: SecretStr | None = None
    tls: Literal["auto", "python", "browser"] = "auto"
    ca_file: Path | None = None
    rules: Path = Path("rules.yaml")
    state: Path | str = Field(default_factory=_default_state)  # a file, or postgresql://
    state_password: SecretStr | None = None
    lease: timedelta = timedelta(seconds=15)
    interval: timedelta = timedelta(seconds=60)
    timeout: timedelta = timedelta(seconds=10)
    stale_after: timedelta = timedelta(minutes=5)
    history_keep: timedelta = timedelta(days=7)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    metrics_addr: str | None = None
    timezone: str = "UTC"  # how times read for people; JSON and logs stay UTC

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError("\n".join(_lines(exc))) from None

    reads_environment: ClassVar[bool] = False  # Environment reads; Settings(...) does not

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Settings built in code hold what they are given; ``Environment`` adds the
        environment, ``.env`` and the credentials, the first that has a field winning."""
        if not cls.reads_environment:
            return (init_settings,)
        return init_settings, env_settings, dotenv_settings, Credentials(settings_cls)

    @field_validator("*", mode="before")
    @classmethod
    def _check(cls, value: Any, info: ValidationInfo) -> Any:
        """The field's own check, in words; pydantic then only confirms the type."""
        try:
            return CHECKS[info.field_name](value)
        except (TypeError, OverflowError) as exc:
            raise ValueError(str(exc)) from None

    @property
    def given(self) -> frozenset[str]:
        """The fields set explicitly (not left at their default), for commands that pick
        their own default when the user said nothing."""
        return frozenset(self.model_fields_set)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, checked again (``model_copy`` would not check)."""
        kept = {name: getattr(self, name) for name in self.model_fields_set}
        return Settings(**(kept | changes))

    @property
    def metrics_bind(self) -> tuple[str, int] | None:
        if not self.metrics_addr:
            return None
        host, _, port = self.metrics_addr.rpartition(":")
        return host.strip("[]"), int(port)

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log masking processor (a proxy's password too)."""
        secrets = (self.api_key, self.web_key, self.proxy, self.state_password)
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


class Environment(Settings):
    """``Settings`` as the daemon starts: keyword arguments, then the environment, then
    ``.env``, then systemd credentials, the first that has a field winning."""

    reads_environment: ClassVar[bool] = True


class Credentials(PydanticBaseSettingsSource):
    """systemd credentials under their plain names (``api_key``, ``web_key``): the
    ``secrets_dir`` source would look for ``WATCHER_API_KEY`` files instead."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        found = credential(field_name) if field_name in CREDENTIAL_FIELDS else None
        return found or None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {name: credential(name) for name in CREDENTIAL_FIELDS}
        return {name: value for name, value in found.items() if value}


def field_names() -> tuple[str, ...]:
    """The settings a user can set, each as ``WATCHER_`` plus its upper-case name."""
    return tuple(Settings.model_fields)


def load_settings(env_file: str | Path | None = ENV_FILE, **overrides: Any) -> Settings:
    """Settings from credentials, ``env_file``, the environment and ``overrides``."""
    return Environment(_env_file=env_file, **overrides)


def _lines(exc: ValidationError) -> list[str]:
    """One line per bad field, ``WATCHER_NAME: what``; the checks below raise the words."""
    lines = []
    for error in exc.errors(include_url=False):
        name = f"{ENV_PREFIX}{str(error['loc'][0]).upper()}" if error["loc"] else "settings"
        cause = error.get("ctx", {}).get("error")
        what = str(cause) if cause is not None else f"not a value watcher can use ({error['type']})"
        lines.append(f"{name}: {what}")
    return lines


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


def _source(value: Any) -> str:
    """mexc or bypass; ccxt (and several accounts) live in the rules file, so say where."""
    try:
        return _one_of("mexc", "bypass")(value)
    except ValueError as exc:
        raise ValueError(
            f"{exc}; the ccxt source is set per account, under 'accounts:' in the rules file"
        ) from None


def _name(value: Any) -> str:
    text = str(value).strip() or socket.gethostname()
    if len(text) > 64:
        raise ValueError("must be at most 64 characters")
    return text


def _key(value: Any) -> SecretStr | None:
    """A key travels in a header: a pasted '…' or space can never work, so say so now."""
    text = _text_of(value).strip()
    if not text:
        return None
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in text):
        raise ValueError(
            "contains a character that cannot be sent (a space, a '…' or another non-ASCII "
            "character from copying); paste the key again"
        )
    return SecretStr(text)


def pasted_cookie(text: str) -> str | None:
    """Why a web key looks like the whole cookie pasted (``u_id=WEB...;``), or None."""
    if text.lower().startswith("u_id=") or text.rstrip().endswith(";"):
        return "looks like the cookie as copied (u_id=...;): keep only the value after u_id="
    return None


def _web_key(value: Any) -> SecretStr | None:
    """A key, and not the cookie line it was copied from: MEXC's refusal of ``u_id=WEB...``
    would say "log in again", which sends the user the wrong way."""
    key = _key(value)
    if key is not None and (problem := pasted_cookie(key.get_secret_value())):
        raise ValueError(problem)
    return key


def _ca_file(value: Any) -> Path | None:
    """A PEM file of extra CAs to trust: checked now, so a typo is not a TLS error later."""
    text = _text_of(value).strip()
    if not text:
        return None
    path = Path(text)
    try:
        head = path.read_bytes()[:4096]
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise ValueError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return path


def _state(value: Any) -> Path | str:
    """A file path, or a PostgreSQL URL whose password lives elsewhere: the URL is shown
    in logs and ``status``, the password never is."""
    if isinstance(value, Path):
        return value
    text = _text_of(value).strip()
    if not text.startswith(("postgresql://", "postgres://")):
        return Path(text)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a bad port raises here, not at the first connection
    except ValueError as exc:
        raise ValueError(f"not a PostgreSQL URL ({exc})") from None
    if parts.password is not None or "password=" in parts.query.lower():
        raise ValueError(
            "a password in the URL would be shown wherever the URL is; put it in "
            "WATCHER_STATE_PASSWORD, a credential named state_password, or ~/.pgpass"
        )
    if not parts.hostname:
        raise ValueError("expected postgresql://USER@HOST[:PORT]/DATABASE")
    return text


def _secret(value: Any) -> SecretStr | None:
    text = _text_of(value).strip()
    return SecretStr(text) if text else None


def _proxy(value: Any) -> SecretStr | None:
    text = _text_of(value).strip()
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
        raise ValueError("must be a proxy URL such as socks5://user:pass@host:1080")
    return SecretStr(text)


def _text_of(value: Any) -> str:
    if value is None:
        return ""
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


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


def _zone_name(value: Any) -> str:
    text = str(value).strip() or "UTC"
    zone_of(text)  # raises the words
    return text


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
    "source": _source,
    "api_key": _key,
    "web_key": _web_key,
    "web_key_issued": _login_time,
    "network": _one_of("MAINNET", "TESTNET"),
    "mexc_url": _https_unless_loopback,
    "mexc_futures_url": _https_unless_loopback,
    "base_url": _https_unless_loopback,
    "proxy": _proxy,
    "tls": _one_of("auto", "python", "browser"),
    "ca_file": _ca_file,
    "rules": Path,
    "state": _state,
    "state_password": _secret,
    "lease": _duration(positive=True, floor=timedelta(seconds=3)),
    "interval": _duration(positive=True, floor=MIN_INTERVAL),
    "timeout": _duration(positive=True),
    "stale_after": _duration(positive=True),
    "history_keep": _duration(positive=False),
    "log_format": _one_of("auto", "json", "console"),
    "log_level": _one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "metrics_addr": _host_port,
    "timezone": _zone_name,
}
