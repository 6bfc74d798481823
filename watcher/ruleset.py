"""The compiled rules as the engine sees them: rules, their policies, the channels' names.

Types only. Loading a rules file (YAML, locations, channel URLs) lives in
``watcher.rules``; the engine imports this module, never the loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import TYPE_CHECKING, Any

from watcher.expr import Compiled, Needs

if TYPE_CHECKING:
    from watcher.channels import Channel

SEVERITIES = ("info", "warning", "critical")
BUILTIN_RULES = ("exchange-unreachable", "auth-failed", "network-mismatch", "web-key-expiry")
DEFAULT_CHANNEL = "default"


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


@dataclass(frozen=True)
class Heartbeat:
    """An outside service watching for watcher's pings (healthchecks.io, Uptime Kuma, ...)."""

    url: str
    every: timedelta = timedelta(minutes=5)
    style: str = "healthchecks"  # healthchecks (GET URL, URL/fail) | kuma (status=) | plain


@dataclass(frozen=True)
class Digest:
    """One all-clear-or-not message a day, at ``at`` local time in ``timezone``."""

    at: time
    timezone: str = "UTC"
    notify: tuple[str, ...] = (DEFAULT_CHANNEL,)


@dataclass(frozen=True)
class RuleSet:
    path: str
    rules: tuple[Rule, ...]
    channels: Mapping[str, Channel]
    needs: Needs = field(default_factory=Needs)
    warnings: tuple[Any, ...] = ()  # located ``Problem``s that do not stop the rules
    heartbeats: tuple[Heartbeat, ...] = ()
    digest: Digest | None = None

    def get(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    @property
    def history_keep(self) -> timedelta:
        """How much balance history the rules can ask for, plus a margin."""
        window = self.needs.window
        return window + max(window / 10, timedelta(minutes=5)) if window else timedelta(0)
