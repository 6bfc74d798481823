"""The accounts a rules file names, and each one's life across polls: its source, its
history, its last success, its key.

The poll (``watcher.app.poll``) holds one ``Account`` per entry of the rules file's
``accounts:`` (or one, ``main``, from the environment) and evaluates each on its
own; a combined rule reads their latest good balances together. ``Accounts`` opens
them (sources, memory from the database) and swaps them on a reload.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.config.model import AccountSpec, RuleSet
from watcher.config.settings import Settings
from watcher.core.errors import ExchangeError
from watcher.core.models import Overview
from watcher.core.positions import as_json
from watcher.engine.builtins import Known
from watcher.engine.lookback import History, watched_series
from watcher.sources import Source, open_source, spec_from
from watcher.store import Store


@dataclass
class Account:
    spec: AccountSpec
    source: Source
    started: datetime
    history: History = field(default_factory=History)
    last_success: datetime | None = None
    last_error: ExchangeError | None = None
    last_overview: Overview | None = None
    web_key_issued: datetime | None = None
    web_key_meta: dict[str, str] = field(default_factory=dict)
    positions_success: datetime | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def meta_key(self, key: str) -> str:
        return f"{self.name}/{key}"

    def restore(self, meta: dict[str, str], issued: datetime | None) -> None:
        """What the database remembers: the last success and the web key's first sighting."""
        success = meta.get(self.meta_key("last_success"))
        self.last_success = datetime.fromisoformat(success) if success else None
        key = self.spec.web_key
        if not key:
            return
        if issued is not None:
            self.web_key_issued = issued
            return
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        if meta.get(self.meta_key("web_key_hash")) == digest and meta.get(
            self.meta_key("web_key_seen")
        ):
            self.web_key_issued = datetime.fromisoformat(meta[self.meta_key("web_key_seen")])
            return
        self.web_key_issued = self.started  # written with the next poll's commit
        self.web_key_meta = {
            self.meta_key("web_key_hash"): digest,
            self.meta_key("web_key_seen"): self.started.isoformat(),
        }

    def known(self, stale_after: timedelta) -> Known:
        return Known(
            started=self.started,
            last_success=self.last_success,
            stale_after=stale_after,
            web_key_issued=self.web_key_issued,
            positions_success=self.positions_success,
        )

    def fetch(self, rows: bool, totals: bool, positions: bool = False) -> Overview:
        if not positions:
            return self.source.fetch(rows=rows, totals=totals)
        return self.source.fetch(rows=rows, totals=totals, positions=True)

    def polled(
        self, now: datetime, overview: Overview | None, error: ExchangeError | None
    ) -> dict[str, str]:
        """Record a poll's result; the meta rows it leaves for the commit."""
        self.last_error = error
        if error is None:
            self.last_success, self.last_overview = now, overview
        positions = None
        if overview is not None and overview.positions is not None:
            self.positions_success = now
            positions = json.dumps([as_json(p) for p in overview.positions])
        meta = {
            self.meta_key("last_poll"): now.isoformat(),
            self.meta_key("last_result"): "ok" if error is None else type(error).__name__,
            self.meta_key("last_error"): "" if error is None else str(error),
            **self.web_key_meta,
        }
        if self.last_success:
            meta[self.meta_key("last_success")] = self.last_success.isoformat()
        if positions is not None:  # what `status` shows of them, as the last poll read them
            meta[self.meta_key("positions")] = positions
        return meta

    def fresh(self, now: datetime, within: timedelta) -> Overview | None:
        """The latest good balances, if the last poll succeeded and is recent enough."""
        if self.last_error is not None or self.last_success is None:
            return None
        return self.last_overview if now - self.last_success <= within else None


class Accounts:
    """The open accounts by name, and the look-back of each combined rule's group.

    Built by ``open`` (which opens sources and reads the database); the constructor only
    takes what it is given."""

    def __init__(
        self, settings: Settings, store: Store, clock: Callable[[], datetime], started: datetime
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.started = started
        self.by_name: dict[str, Account] = {}
        self.groups: dict[str, History] = {}

    @classmethod
    def open(
        cls,
        settings: Settings,
        rules: RuleSet,
        store: Store,
        clock: Callable[[], datetime],
        source: Source | None = None,
    ) -> Accounts:
        accounts = cls(settings, store, clock, clock())
        accounts.by_name = accounts.opened(rules, source)
        accounts.restore_history(rules)
        return accounts

    def opened(
        self,
        rules: RuleSet,
        source: Source | None = None,
        keep: Mapping[str, Account] | None = None,
    ) -> dict[str, Account]:
        """One ``Account`` per configured account, its memory restored from the database;
        an account in ``keep`` whose settings are the same is kept as it is, source and all."""
        meta = self.store.meta()
        specs = rules.accounts or (spec_from(self.settings),)
        accounts = {}
        for spec in specs:
            kept = (keep or {}).get(spec.name)
            if kept is not None and kept.spec == spec:
                accounts[spec.name] = kept
                continue
            opened = source if source is not None and len(specs) == 1 else None
            opened = opened or open_source(self.settings, self.clock, account=spec)
            account = Account(spec, opened, self.started)
            issued = self.settings.web_key_issued if not rules.accounts else None
            account.restore(meta, issued)
            accounts[spec.name] = account
        return accounts

    def reload(self, rules: RuleSet) -> None:
        """Accounts whose settings changed get a new source; the others keep theirs."""
        old = self.by_name
        fresh = self.opened(rules, keep=old) if rules.accounts or len(old) > 1 else old
        for name, account in old.items():
            if fresh.get(name) is not account:
                account.source.close()
        self.by_name = fresh
        self.restore_history(rules)

    def restore_history(self, rules: RuleSet) -> None:
        """What ``change``/``delta`` look back on, rebuilt from the database per account."""
        series = rules.needs.series
        since = self.clock() - rules.history_keep
        wanted = watched_series(series)
        for account in self.by_name.values():
            account.history = History()
            if series:
                self.store.load_history(account.history, since, wanted, account.name)
        self.groups = {}
        for label in rules.groups:
            self.groups[label] = History()
            if series:
                self.store.load_history(self.groups[label], since, wanted, label)

    @property
    def last_success(self) -> datetime | None:
        """When every account last polled well (the oldest of their last successes)."""
        times = [a.last_success for a in self.by_name.values()]
        return None if any(t is None for t in times) else min(times)  # type: ignore[type-var]
