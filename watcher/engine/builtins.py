"""Built-in alerts as facts: (poll result, clock, settings, known facts) -> facts.

Pure. The daemon, ``once``, ``replay`` and ``watcher test`` all turn a poll's
outcome into the same facts here, and the engine applies them through the
same lifecycle as user rules. Nothing here reads or writes the database: the
web key's first sighting is handed in, and written by the caller's commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from watcher.config.model import Policy
from watcher.core.alerts import MAIN, Key
from watcher.core.durations import format_duration
from watcher.core.errors import AuthError, ExchangeError, NetworkMismatch
from watcher.core.times import shown

WEB_KEY_LIFE = timedelta(days=5)
WEB_KEY_WARN = timedelta(hours=12)
CRITICAL = Policy(severity="critical")
WARNING = Policy(severity="warning")


@dataclass(frozen=True)
class Fact:
    """What one built-in alert knows this poll: holds, clears (None: cannot tell), its line."""

    key: Key
    holds: bool | None
    clears: bool | None
    policy: Policy
    text: str


@dataclass(frozen=True)
class Known:
    """What the built-ins need besides this poll's result."""

    started: datetime  # when this process started polling
    last_success: datetime | None
    stale_after: timedelta
    web_key_issued: datetime | None = None  # set or first seen; None: no web key
    positions_success: datetime | None = None  # the last poll that read the positions


def _negate(value: bool | None) -> bool | None:
    return None if value is None else not value


def poll_facts(
    error: ExchangeError | None, now: datetime, known: Known, account: str = MAIN
) -> list[Fact]:
    """auth-failed, network-mismatch, exchange-unreachable and web-key-expiry for one
    account's poll."""

    def caused_by(kind: type[ExchangeError]) -> bool | None:
        if error is None:
            return False
        return True if isinstance(error, kind) else None

    auth, mismatch = caused_by(AuthError), caused_by(NetworkMismatch)
    text = str(error)
    facts = [
        Fact((account, "auth-failed", None), auth, _negate(auth), CRITICAL, text),
        Fact((account, "network-mismatch", None), mismatch, _negate(mismatch), CRITICAL, text),
    ]
    last_ok = now if error is None else (known.last_success or known.started)
    stale: bool | None = now - last_ok >= known.stale_after
    if auth or mismatch:
        stale = None  # the user already has the precise alert
    line = (
        f"no successful poll for {format_duration(now - last_ok)}; last error: {error}. "
        "watcher keeps trying: check this server's network and MEXC's status"
    )
    facts.append(
        Fact((account, "exchange-unreachable", None), stale, _negate(stale), CRITICAL, line)
    )
    if known.web_key_issued is not None:
        facts.append(web_key_fact(now, known.web_key_issued, account))
    return facts


def positions_fact(now: datetime, known: Known, problem: str | None, account: str = MAIN) -> Fact:
    """``exchange-unreachable`` for the positions alone (``currency`` is ``positions``):
    the futures host fails while the balances are read, so balance rules go on and
    position rules wait on no data; after ``stale_after`` that is said, once."""
    last_ok = now if problem is None else (known.positions_success or known.started)
    stale = now - last_ok >= known.stale_after
    line = (
        f"futures positions not read for {format_duration(now - last_ok)}; last error: "
        f"{problem}. Balance rules keep evaluating; position rules wait for the positions"
    )
    key = (account, "exchange-unreachable", "positions")
    return Fact(key, stale, not stale, CRITICAL, line)


def web_key_fact(now: datetime, issued: datetime, account: str = MAIN) -> Fact:
    """Warn 12 h before the 5-day web key dies."""
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=UTC)
    expires = issued + WEB_KEY_LIFE
    soon = now >= expires - WEB_KEY_WARN
    text = (
        f"the MEXC web key {expiry(expires, now)}: log in to MEXC again and update WATCHER_WEB_KEY"
    )
    return Fact((account, "web-key-expiry", None), soon, not soon, WARNING, text)


def expiry(expires: datetime, now: datetime) -> str:
    """``expires 2026-12-01 08:00 UTC (in 11h59m)``, or once past it ``expired 1d ago
    (2026-11-29 05:06 UTC)``: never "expires ... (in 0s)" for a key that is already dead.
    Whole minutes: a person reads the time, not the seconds."""
    left = timedelta(minutes=int((expires - now).total_seconds() // 60))
    when = shown(expires)
    if left > timedelta(0):
        return f"expires {when} (in {format_duration(left)})"
    return f"expired {format_duration(max(-left, timedelta(minutes=1)))} ago ({when})"
