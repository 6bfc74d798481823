"""Settings from ``WATCHER_*`` environment variables, ``.env`` and systemd credentials.

systemd's ``LoadCredential=api_key:...`` puts plain file names in
``$CREDENTIALS_DIRECTORY``; pydantic-settings' ``secrets_dir`` would look for
``watcher_api_key``, so the mapping is explicit here.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from watcher.durations import parse_duration
from watcher.errors import ConfigError
from watcher.systemd import credential

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
ENV_PREFIX = "WATCHER_"
CREDENTIAL_FIELDS = ("api_key", "web_key")


def _default_state() -> Path:
    state_dir = os.environ.get("STATE_DIRECTORY")
    # systemd may list several directories separated by ':'; the first is ours.
    return Path(state_dir.split(":")[0]) / "watcher.db" if state_dir else Path("watcher.db")


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


class CredentialsSource(PydanticBaseSettingsSource):
    """Reads ``api_key`` and ``web_key`` from ``$CREDENTIALS_DIRECTORY``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return credential(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {name: credential(name) for name in CREDENTIAL_FIELDS}
        return {name: value for name, value in found.items() if value}


class Settings(BaseSettings):
    """Everything the daemon reads from its environment; secrets stay ``SecretStr``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", validate_default=True
    )

    name: str = Field(default_factory=socket.gethostname, max_length=64)
    source: Literal["mexc", "bypass"] = "mexc"
    api_key: SecretStr | None = None
    web_key: SecretStr | None = None
    web_key_issued: datetime | None = None
    network: Literal["MAINNET", "TESTNET"] = "MAINNET"
    mexc_url: str = "https://www.mexc.com"
    base_url: str = "https://api.mexc-bypass.xyz/v1"
    proxy: SecretStr | None = None
    rules: Path = Path("rules.yaml")
    state: Path = Field(default_factory=_default_state)
    interval: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=10)
    stale_after: Duration = timedelta(minutes=5)
    history_keep: Duration = timedelta(days=7)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    metrics_addr: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, dotenv_settings, CredentialsSource(settings_cls)

    @field_validator("network", "log_format", "log_level", "source", mode="before")
    @classmethod
    def _case_insensitive(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        upper = value.strip().upper()
        lower = ("AUTO", "JSON", "CONSOLE", "MEXC", "BYPASS")
        return upper.lower() if upper in lower else upper

    @field_validator("base_url", "mexc_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://www.mexc.com")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError("plain http would send the key in clear; use https")
        return value.rstrip("/")

    @field_validator("api_key", "web_key")
    @classmethod
    def _header_safe(cls, value: SecretStr | None) -> SecretStr | None:
        """A key travels in a header: a pasted '…' or space can never work, so say so now."""
        if value is None:
            return None
        text = value.get_secret_value().strip()
        if any(not 0x21 <= ord(ch) <= 0x7E for ch in text):
            raise ValueError(
                "contains a character that cannot be sent (a space, a '…' or another non-ASCII "
                "character from copying); paste the key again"
            )
        return SecretStr(text)

    @field_validator("web_key_issued")
    @classmethod
    def _plausible_time(cls, value: datetime | None) -> datetime | None:
        """A date that the expiry arithmetic could overflow on can never be right."""
        if value is not None and not 2000 <= value.year <= 2100:
            raise ValueError("must be a login time between the years 2000 and 2100")
        return value

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
            raise ValueError("must be a proxy URL such as socks5://user:pass@host:1080")
        return value

    @field_validator("interval", "timeout", "stale_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value

    @field_validator("metrics_addr")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected HOST:PORT such as 127.0.0.1:9108")
        return value

    @property
    def metrics_bind(self) -> tuple[str, int] | None:
        if not self.metrics_addr:
            return None
        host, _, port = self.metrics_addr.rpartition(":")
        return host.strip("[]"), int(port)

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log masking processor (a proxy's password too)."""
        secrets = (self.api_key, self.web_key, self.proxy)
        found = [s.get_secret_value() for s in secrets if s and s.get_secret_value()]
        if self.proxy:
            found.append(urlsplit(self.proxy.get_secret_value()).password or "")
        return [s for s in found if s]

    def require_api_key(self) -> str:
        if self.api_key is None or not self.api_key.get_secret_value():
            raise ConfigError(
                "WATCHER_API_KEY is not set: the bypass source needs your gateway's API key in "
                "the environment, .env, or a systemd credential named api_key"
            )
        return self.api_key.get_secret_value()

    def require_web_key(self) -> str:
        if self.web_key is None or not self.web_key.get_secret_value():
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


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one line per variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            field = str(error["loc"][0]) if error["loc"] else "settings"
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{ENV_PREFIX}{field.upper()}: {message}")
        raise ConfigError("\n".join(lines)) from None
