"""The compiled rules as the engine sees them: rules, their policies, the channels' names.

Types only. Loading a rules file (YAML, locations, channel URLs) lives in
``watcher.rules``; the engine imports this module, never the loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from watcher.config.expr import Compiled, Needs
from watcher.core.alerts import MAIN
from watcher.core.errors import NOWHERE, Where

if TYPE_CHECKING:
    from watcher.config.channels import Channel

SEVERITIES = ("info", "warning", "critical")
BUILTIN_RULES = ("exchange-unreachable", "auth-failed", "network-mismatch", "web-key-expiry")
DEFAULT_CHANNEL = "default"
SECRET_FIELDS = ("web_key", "api_key", "proxy", "secret", "password")  # each a ${VAR}


@dataclass(frozen=True)
class Policy:
    """How an alert behaves once its condition is decided (Alertmanager's knobs)."""

    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    repeat: timedelta | None = timedelta(hours=4)
    severity: str = "warning"
    notify: tuple[str, ...] = (DEFAULT_CHANNEL,)
    send_resolved: bool = True


@dataclass(frozen=True)
class Rule:
    name: str
    when: Compiled
    policy: Policy
    clear_when: Compiled | None = None
    each: bool = False
    currencies: tuple[str, ...] | None = None
    exclude: frozenset[str] = frozenset()
    message: str | None = None
    line: int = 0
    accounts: tuple[str, ...] | None = None  # None: every account
    group: str | None = None  # `combined: true`: the label of the summed accounts
    per_position: bool = False  # `each: position`: one instance per open position


@dataclass(frozen=True)
class AccountSpec:
    """One account from the rules file (or the environment's single ``main``)."""

    name: str
    source: str = "mexc"
    web_key: str | None = None
    api_key: str | None = None
    proxy: str | None = None
    mexc_url: str | None = None
    futures_url: str | None = None  # mexc: the futures host (positions)
    tls: str | None = None  # mexc: auto | python | browser (WATCHER_TLS when unset)
    base_url: str | None = None
    network: str | None = None
    exchange: str | None = None  # ccxt: the exchange id (mexc, binance, bybit, ...)
    secret: str | None = None  # ccxt: the API secret
    password: str | None = None  # ccxt: the passphrase some exchanges need
    wallets: tuple[str, ...] | None = None  # ccxt: balance types to read
    quote: str = "USDT"  # ccxt: what converted values are in
    pegged: tuple[str, ...] = ("USDT", "USDC", "FDUSD", "DAI", "TUSD", "USD")
    where: tuple[tuple[str, Where], ...] = field(default=(), compare=False, repr=False)

    def at(self, key: str) -> Where:
        """Where ``key`` of this account stood in the file (the account itself if absent)."""
        found = dict(self.where)
        return found.get(key) or found.get("", NOWHERE)

    def secrets(self) -> list[str]:
        found = (self.web_key, self.api_key, self.proxy, self.secret, self.password)
        return [s for s in found if s]


@dataclass(frozen=True)
class Heartbeat:
    """An outside service watching for watcher's pings (healthchecks.io, Uptime Kuma, ...)."""

    url: str
    every: timedelta = timedelta(minutes=5)
    # healthchecks (GET URL, URL/fail) | kuma (status=) | plain; None: inferred from the
    # URL once its ${VAR} is expanded
    style: str | None = "healthchecks"
    where: Where = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Digest:
    """One all-clear-or-not message a day, at ``at`` local time in ``timezone``."""

    at: time
    timezone: str = "UTC"
    notify: tuple[str, ...] = (DEFAULT_CHANNEL,)


@dataclass(frozen=True)
class TelegramCommands:
    """A bot of watcher's own that answers commands from the listed chats (and users)."""

    token: str
    chats: tuple[int, ...]
    users: tuple[int, ...] | None = None
    api_url: str = "https://api.telegram.org"
    where: Where = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class RuleSet:
    path: str
    rules: tuple[Rule, ...]
    channels: Mapping[str, Channel]
    needs: Needs = field(default_factory=Needs)
    warnings: tuple[Any, ...] = ()  # located ``Problem``s that do not stop the rules
    heartbeats: tuple[Heartbeat, ...] = ()
    digest: Digest | None = None
    accounts: tuple[AccountSpec, ...] = ()  # empty: one account, `main`, from the environment
    telegram: TelegramCommands | None = None

    @property
    def shows_positions(self) -> bool:
        """Positions are fetched when a rule reads them, or the digest or the Telegram
        bot (``/positions``) can show them; a set-up with none of the three makes no
        futures request."""
        return self.needs.positions or self.digest is not None or self.telegram is not None

    @cached_property
    def account_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.accounts) or (MAIN,)

    @property
    def labelled(self) -> bool:
        """Messages name the account only when the rules file declares accounts."""
        return bool(self.accounts)

    @cached_property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Combined rules' labels and the accounts each sums."""
        return {r.group: r.accounts or self.account_names for r in self.rules if r.group}

    def rules_for(self, account: str) -> tuple[Rule, ...]:
        """The rules one account evaluates (or, for a group label, its combined rules)."""
        if account in self.groups:
            return tuple(r for r in self.rules if r.group == account)
        return tuple(
            r
            for r in self.rules
            if r.group is None and (r.accounts is None or account in r.accounts)
        )

    def get(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    @property
    def history_keep(self) -> timedelta:
        """How much balance history the rules can ask for, plus a margin."""
        window = self.needs.window
        return window + max(window / 10, timedelta(minutes=5)) if window else timedelta(0)
