"""The daily digest: what it says, and queueing it once a day (late, and marked so,
after downtime). One all-clear-or-not message a day, built from fresh balances."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from watcher.app.accounts import Accounts
from watcher.config.model import RuleSet
from watcher.config.settings import Settings
from watcher.core.alerts import Alert, Notice, describe
from watcher.core.errors import ExchangeError
from watcher.engine.builtins import WEB_KEY_LIFE
from watcher.notify import digest
from watcher.notify.delivery import route
from watcher.notify.digest import Book, Facts
from watcher.store import Store


class DailyDigest:
    """The digest of the rules in force (``rules``) over the open accounts."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        accounts: Accounts,
        rules: Callable[[], RuleSet],
        alerts: Callable[[], tuple[Alert, ...]],
    ) -> None:
        self.settings = settings
        self.store = store
        self.accounts = accounts
        self.rules = rules
        self.alerts = alerts

    def facts(self, now: datetime) -> Facts:
        """What today's digest says: fresh balances, 24 h ago, alerts, silences, outbox."""
        books = []
        for account in self.accounts.by_name.values():
            try:
                overview, error = account.fetch(rows=True, totals=True), None
            except Exception as exc:  # the digest says so; it is no reason not to send
                overview = None
                error = str(exc) if isinstance(exc, ExchangeError) else type(exc).__name__
            issued = account.web_key_issued
            day_ago = now - timedelta(hours=24)
            books.append(
                Book(
                    name=account.name if self.rules().labelled else None,
                    overview=overview,
                    error=error,
                    total_24h_ago=self.store.value_at("ACCOUNT.total", day_ago, account.name),
                    web_key_expires=issued + WEB_KEY_LIFE if issued else None,
                )
            )
        return Facts(
            name=self.settings.name,
            now=now,
            books=tuple(books),
            alerts=self.alerts(),
            silences=tuple(self.store.silences(now)),
            acks=tuple(f"{describe(a.key)} by {a.by}" for a in self.store.acks()),
            outbox=self.store.outbox_depth(),
            oldest=self.store.oldest(),
        )

    def text(self, now: datetime) -> str | None:
        spec = self.rules().digest
        return None if spec is None else digest.compose(spec, self.facts(now))

    def maybe(self, now: datetime, force: bool = False) -> bool:
        """Queue the day's digest once (the day is recorded in the same transaction), late
        and marked so after downtime; ``force`` queues one now (``watcher digest --send``)."""
        spec = self.rules().digest
        if spec is None:
            return False
        last = self.store.meta().get("digest_last")
        day = digest.due_day(spec, now, last)
        if last is None and day is not None and not force:
            self.store.set_meta({"digest_last": day.isoformat()})  # first start: from tomorrow
            return False
        if day is None and not force:
            return False
        text = digest.compose(spec, self.facts(now), on_schedule=not force)
        notice = Notice("digest", None, "digest", "info", spec.notify, None, None, now, now, text)
        marker = (day or digest.scheduled(spec, now).date()).isoformat()
        self.store.announce(route([notice], self.rules().channels, now), {"digest_last": marker})
        return True
