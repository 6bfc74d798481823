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
from pathlib import Path

from watcher import digest, logs
from watcher.alerts import FIRING, Notice, Outcome
from watcher.builtins import WEB_KEY_LIFE, Known, poll_facts
from watcher.digest import Facts
from watcher.engine import evaluate_poll, silenced_by
from watcher.errors import ExchangeError, PollCrashed, Problem
from watcher.history import History, absent_is_zero, watched_series
from watcher.models import Overview
from watcher.notify import Deliverer, DeliveryReport, route
from watcher.ruleset import DEFAULT_CHANNEL, RuleSet
from watcher.settings import Settings
from watcher.sources import Source, open_source
from watcher.store import Store

Clock = Callable[[], datetime]
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
        meta = store.meta()
        success = meta.get("last_success")
        self.last_success = datetime.fromisoformat(success) if success else None
        self.web_key_meta, self.web_key_issued = self.web_key_sighting(meta)
        self.deliverer = deliverer or Deliverer(store, rules.channels, name=settings.name)
        self.last: PollResult | None = None

    def web_key_sighting(self, meta: dict[str, str]) -> tuple[dict[str, str], datetime | None]:
        """When the web key was issued or first seen, read once at start; only its hash is
        stored. A new key's first sighting is written with the next poll's commit."""
        key = self.settings.web_key
        if key is None or not key.get_secret_value():
            return {}, None
        if self.settings.web_key_issued is not None:
            return {}, self.settings.web_key_issued
        digest = hashlib.sha256(key.get_secret_value().encode()).hexdigest()[:16]
        if meta.get("web_key_hash") == digest and meta.get("web_key_seen"):
            return {}, datetime.fromisoformat(meta["web_key_seen"])
        seen = self.started
        return {"web_key_hash": digest, "web_key_seen": seen.isoformat()}, seen

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
        except Exception as exc:  # whatever the fetch raises must reach the built-ins
            log.error("poll crashed", kind=type(exc).__name__, exc_info=True)
            return None, PollCrashed(
                f"reading the exchange failed unexpectedly ({type(exc).__name__}); "
                "the details are in the log"
            )

    def known(self) -> Known:
        return Known(
            started=self.started,
            last_success=self.last_success,
            stale_after=self.settings.stale_after,
            web_key_issued=self.web_key_issued,
        )

    def process(
        self,
        now: datetime,
        overview: Overview | None,
        error: ExchangeError | None,
        dry_run: bool = False,
    ) -> PollResult:
        """Everything after the HTTP answer: pure evaluation, then one transaction."""
        if overview is not None and overview.problems:
            log.warning("unreadable rows are no data this poll", rows="; ".join(overview.problems))
        outcome, samples = evaluate_poll(
            self.rules,
            self.alerts,
            self.history,
            now,
            overview,
            poll_facts(error, now, self.known()),
            silenced_by(self.store.silences(now), now),
        )
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
            {**self.poll_meta(result), **self.web_key_meta},
            prune_before=now - keep,
            absent_is_zero=absent_is_zero(self.rules, overview),
        )
        self.web_key_meta = {}
        self.alerts = outcome.alerts
        for notice in outcome.notices:
            log.info("alert", rule=notice.rule, currency=notice.currency, kind=notice.kind)
        return result

    def announce_reload(self, problem: Problem | None, digest: str | None) -> None:
        """Tell ``default`` once per rejected file content; after a rejection, that a good
        reload went through. Straight to the outbox, with the marker, in one transaction."""
        rejected = self.store.meta().get("reload_rejected", "")
        if problem is None and not rejected:
            return
        if problem is not None and rejected == digest:
            return
        now = self.clock()
        name = Path(str(self.settings.rules)).name
        if problem is None:
            kind, text, marker = "reloaded", "the new rules run now", ""
        else:
            where = f"{problem.line}:{problem.column}"
            who = f" rule {problem.rule}:" if problem.rule else ""
            text = f"{where}:{who} {problem.message}; the old rules keep running"
            kind, marker = "rejected", digest or ""
        notice = Notice(name, None, kind, "warning", (DEFAULT_CHANNEL,), None, None, now, now, text)
        self.store.announce(route([notice], self.rules.channels, now), {"reload_rejected": marker})

    def digest_facts(self, now: datetime) -> Facts:
        """What today's digest says: fresh balances, 24 h ago, alerts, silences, outbox."""
        try:
            overview, error = self.source.fetch(rows=True, totals=True), None
        except Exception as exc:  # the digest says so; it is no reason not to send
            overview, error = (
                None,
                str(exc) if isinstance(exc, ExchangeError) else type(exc).__name__,
            )
        expires = self.web_key_issued + WEB_KEY_LIFE if self.web_key_issued else None
        return Facts(
            name=self.settings.name,
            now=now,
            overview=overview,
            error=error,
            total_24h_ago=self.store.value_at("ACCOUNT.total", now - timedelta(hours=24)),
            alerts=tuple(self.alerts.values()),
            silences=tuple(self.store.silences(now)),
            outbox=self.store.outbox_depth(),
            oldest=self.store.oldest(),
            web_key_expires=expires,
        )

    def digest_text(self, now: datetime) -> str | None:
        spec = self.rules.digest
        return None if spec is None else digest.compose(spec, self.digest_facts(now))

    def maybe_digest(self, now: datetime, force: bool = False) -> bool:
        """Queue the day's digest once (the day is recorded in the same transaction), late
        and marked so after downtime; ``force`` queues one now (``watcher digest --send``)."""
        spec = self.rules.digest
        if spec is None:
            return False
        last = self.store.meta().get("digest_last")
        day = digest.due_day(spec, now, last)
        if last is None and day is not None and not force:
            self.store.set_meta({"digest_last": day.isoformat()})  # first start: from tomorrow
            return False
        if day is None and not force:
            return False
        text = digest.compose(spec, self.digest_facts(now))
        notice = Notice("digest", None, "digest", "info", spec.notify, None, None, now, now, text)
        marker = (day or digest.scheduled(spec, now).date()).isoformat()
        self.store.announce(route([notice], self.rules.channels, now), {"digest_last": marker})
        return True

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
