"""One account's life across polls: its source, its history, its last success, its key.

The poll loop (``app``) holds one ``Account`` per entry of the rules file's
``accounts:`` (or one, ``main``, from the environment) and evaluates each on its
own; a combined rule reads their latest good balances together.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.config.model import AccountSpec
from watcher.core.errors import ExchangeError
from watcher.core.models import Overview
from watcher.engine.builtins import Known
from watcher.engine.lookback import History
from watcher.sources import Source


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
        )

    def fetch(self, rows: bool, totals: bool) -> Overview:
        return self.source.fetch(rows=rows, totals=totals)

    def polled(
        self, now: datetime, overview: Overview | None, error: ExchangeError | None
    ) -> dict[str, str]:
        """Record a poll's result; the meta rows it leaves for the commit."""
        self.last_error = error
        if error is None:
            self.last_success, self.last_overview = now, overview
        meta = {
            self.meta_key("last_poll"): now.isoformat(),
            self.meta_key("last_result"): "ok" if error is None else type(error).__name__,
            self.meta_key("last_error"): "" if error is None else str(error),
            **self.web_key_meta,
        }
        if self.last_success:
            meta[self.meta_key("last_success")] = self.last_success.isoformat()
        return meta

    def fresh(self, now: datetime, within: timedelta) -> Overview | None:
        """The latest good balances, if the last poll succeeded and is recent enough."""
        if self.last_error is not None or self.last_success is None:
            return None
        return self.last_overview if now - self.last_success <= within else None
