"""One small exception hierarchy.

Each class carries the CLI exit code it maps to, so the CLI never needs a table
of special cases: 2 for anything the user can fix in config or on the command
line, 3 for an exchange that cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class WatcherError(Exception):
    """Base for every error watcher raises on purpose."""

    exit_code = 1


class ConfigError(WatcherError):
    """Settings or command-line usage the user must fix."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One located problem in a rules or test file: ``PATH:LINE:COL: rule NAME: what``."""

    path: str
    line: int
    column: int
    message: str
    rule: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        who = f" rule {self.rule}:" if self.rule else ""
        return f"{where}:{who} {self.message}"


@dataclass(frozen=True)
class Where:
    """Where a value stood in a rules file: a problem found after parsing (an unset
    ``${VAR}``, a URL apprise cannot use) still names its file, line and column."""

    path: str
    line: int
    column: int

    def problem(self, message: str) -> Problem:
        return Problem(self.path, self.line, self.column, message)


NOWHERE = Where("", 0, 0)


class RulesError(ConfigError):
    """A rules file with one or more located problems."""

    def __init__(self, problems: list[Problem], partial: Any = None) -> None:
        self.problems = problems
        self.partial = partial  # what did parse, so a later check can add its problems too
        super().__init__("\n".join(str(p) for p in problems))


class ExchangeError(WatcherError):
    """The exchange answered with an error code (either body shape)."""

    exit_code = 3

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class AuthError(ExchangeError):
    """Key rejected or expired; retrying cannot help, the user must act."""


class RateLimited(ExchangeError):
    """The exchange or wrapper asked us to slow down."""


class TransportError(ExchangeError):
    """No usable HTTP answer: DNS, connect, reset, timeout or a 5xx page."""


class Blocked(ExchangeError):
    """MEXC's web front (Akamai) refused the request: not the key, the address or headers."""


class PollCrashed(ExchangeError):
    """Reading the exchange failed in a way no source foresaw; it still counts as a failed poll."""


class BadResponse(ExchangeError):
    """An answer that is not what the spec promises (says which field)."""


class NetworkMismatch(ExchangeError):
    """``is_testnet`` disagrees with the configured network: numbers are not real."""


class StoreError(WatcherError):
    """The state database cannot be used (schema from the future, disk, lock)."""

    exit_code = 2


class StateUnwritable(StoreError):
    """A write was refused (disk full, read-only, I/O error): retrying later can help, so
    the daemon keeps evaluating in memory and holds what it decided until writes work."""


class Deposed(StoreError):
    """This instance no longer holds the lease of a pair: a standby took over while it was
    paused or cut off. Its write is refused, and it steps down."""
