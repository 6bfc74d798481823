"""One poll, wired end to end: source -> engine -> store (-> notify, separately).

Used by ``once``, ``run`` and ``demo`` alike, so what the demo shows is what the
daemon does. Built-in alerts (exchange unreachable, auth failed, network
mismatch, web key expiry) go through the same lifecycle as user rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from watcher import logs
from watcher.durations import format_duration
from watcher.engine import (
    FIRING,
    Evaluation,
    History,
    Outcome,
    Sample,
    absent_is_zero,
    record_history,
    watched_series,
)
from watcher.errors import AuthError, ExchangeError, NetworkMismatch
from watcher.models import Overview
from watcher.notify import Deliverer, DeliveryReport, route
from watcher.rules import Policy, RuleSet
from watcher.settings import Settings
from watcher.sources import Source, open_source
from watcher.store import Store

Clock = Callable[[], datetime]
WEB_KEY_LIFE = timedelta(days=5)
WEB_KEY_WARN = timedelta(hours=12)
CRITICAL = Policy(severity="critical")
WARNING = Policy(severity="warning")
log = logs.get("watcher.poll")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PollResult:
    at: datetime
    overview: Overview | None
    error: ExchangeError | None
    outcome: Outcome

    @property
    def firing(self) -> int:
        return sum(1 for a in self.outcome.alerts.values() if a.state == FIRING)


class Watcher:
    """The state that lives across polls: rules, alert instances, history."""

    def __init__(
        self,
        settings: Settings,
        rules: RuleSet,
        store: Store,
        source: Source | None = None,
        clock: Clock = utcnow,
        deliverer: Deliverer | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.store = store
        self.clock = clock
        self.source = source or open_source(settings, clock)
        self.started = clock()
        self.alerts = store.load_alerts()
        self.history = self.load_history()
        success = store.meta().get("last_success")
        self.last_success = datetime.fromisoformat(success) if success else None
        self.deliverer = deliverer or Deliverer(store, rules.channels)
        self.last: PollResult | None = None

    def reload(self, rules: RuleSet) -> None:
        """New rules; instances of rules that still exist keep their state."""
        self.rules = rules
        self.deliverer.set_channels(rules.channels)
        self.history = self.load_history()

    def load_history(self) -> History:
        """What ``change``/``delta`` look back on, rebuilt from the database."""
        history = History()
        series = self.rules.needs.series
        if not series:
            return history
        since = self.clock() - self.rules.history_keep
        return self.store.load_history(history, since, watched_series(series))

    def fetch(self) -> Overview:
        needs = self.rules.needs
        return self.source.fetch(rows=needs.rows, totals=needs.totals or not needs.rows)

    def poll(self, dry_run: bool = False) -> PollResult:
        """Fetch, evaluate, and (unless ``dry_run``) persist state and outbox in one go."""
        now = self.clock()
        overview, error = self.try_fetch()
        return self.process(now, overview, error, dry_run)

    def try_fetch(self) -> tuple[Overview | None, ExchangeError | None]:
        try:
            return self.fetch(), None
        except ExchangeError as exc:
            log.warning("poll failed", error=str(exc), kind=type(exc).__name__, code=exc.code)
            return None, exc

    def process(
        self,
        now: datetime,
        overview: Overview | None,
        error: ExchangeError | None,
        dry_run: bool = False,
    ) -> PollResult:
        """Everything after the HTTP answer: pure evaluation, then one transaction."""
        silences = self.store.silences(now)
        evaluation = Evaluation(
            self.alerts, now, lambda r, c: any(s.covers(r, c, now) for s in silences)
        )
        samples: list[Sample] = []
        if overview is not None:
            if overview.problems:
                log.warning(
                    "unreadable rows are no data this poll", rows="; ".join(overview.problems)
                )
            samples = record_history(self.rules, overview, self.history)
            evaluation.rules(self.rules, overview, self.history)
        self.builtins(evaluation, error, now)
        outcome = evaluation.outcome
        for message in outcome.errors:
            log.warning(message)
        result = PollResult(now, overview, error, outcome)
        self.last = result
        if dry_run:
            return result
        if error is None:
            self.last_success = now
        keep = max(self.rules.history_keep, self.settings.history_keep)
        self.store.commit(
            outcome.alerts,
            route(outcome.notices, self.rules.channels, now),
            samples,
            self.poll_meta(result),
            prune_before=now - keep,
            absent_is_zero=absent_is_zero(self.rules, overview),
        )
        self.alerts = outcome.alerts
        for notice in outcome.notices:
            log.info("alert", rule=notice.rule, currency=notice.currency, kind=notice.kind)
        return result

    def poll_meta(self, result: PollResult) -> dict[str, str]:
        meta = {
            "last_poll": result.at.isoformat(),
            "last_result": "ok" if result.error is None else type(result.error).__name__,
            "last_error": "" if result.error is None else str(result.error),
        }
        if self.last_success:
            meta["last_success"] = self.last_success.isoformat()
        return meta

    def deliver(self) -> DeliveryReport:
        return self.deliverer.deliver(self.clock())

    # --- built-in alerts ------------------------------------------------------
    def builtins(self, evaluation: Evaluation, error: ExchangeError | None, now: datetime) -> None:
        def fact(kind: type[ExchangeError]) -> bool | None:
            if error is None:
                return False
            return True if isinstance(error, kind) else None

        auth, mismatch = fact(AuthError), fact(NetworkMismatch)
        step = evaluation.step
        text = str(error)
        step(("auth-failed", None), auth, _not(auth), CRITICAL, (None, None), text=text)
        step(
            ("network-mismatch", None), mismatch, _not(mismatch), CRITICAL, (None, None), text=text
        )
        last_ok = now if error is None else (self.last_success or self.started)
        stale: bool | None = now - last_ok >= self.settings.stale_after
        if auth or mismatch:
            stale = None  # the user already has the precise alert
        text = f"no successful poll for {format_duration(now - last_ok)}; last error: {error}"
        step(("exchange-unreachable", None), stale, _not(stale), CRITICAL, (None, None), text=text)
        self.web_key(evaluation, now)

    def web_key(self, evaluation: Evaluation, now: datetime) -> None:
        """Warn 12 h before the 5-day web key dies; only its hash is stored."""
        key = self.settings.web_key
        if key is None or not key.get_secret_value():
            return
        issued = self.settings.web_key_issued
        if issued is None:
            digest = hashlib.sha256(key.get_secret_value().encode()).hexdigest()[:16]
            meta = self.store.meta()
            if meta.get("web_key_hash") != digest:
                self.store.set_meta({"web_key_hash": digest, "web_key_seen": now.isoformat()})
                meta["web_key_seen"] = now.isoformat()
            issued = datetime.fromisoformat(meta["web_key_seen"])
        if issued.tzinfo is None:
            issued = issued.replace(tzinfo=UTC)
        expires = issued + WEB_KEY_LIFE
        soon = now >= expires - WEB_KEY_WARN
        text = (
            f"the MEXC web key expires {expires:%Y-%m-%d %H:%M} UTC "
            f"(in {format_duration(max(expires - now, timedelta(0)))}): log in to MEXC again "
            "and update WATCHER_WEB_KEY"
        )
        evaluation.step(("web-key-expiry", None), soon, not soon, WARNING, (None, None), text=text)


def _not(value: bool | None) -> bool | None:
    return None if value is None else not value
