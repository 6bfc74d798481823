"""One poll, wired end to end: source -> engine -> store (-> notify, separately).

Used by ``once``, ``run`` and ``demo`` alike, so what the demo shows is what the
daemon does. Built-in alerts (exchange unreachable, auth failed, network
mismatch, web key expiry) go through the same lifecycle as user rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.app.accounts import Account, Accounts
from watcher.app.daily import DailyDigest
from watcher.config.model import DEFAULT_CHANNEL, RuleSet
from watcher.config.settings import Settings
from watcher.core import logs
from watcher.core.alerts import FIRING, Alert, AlertBook, Key, Notice, Outcome, Silence
from watcher.core.durations import utcnow
from watcher.core.errors import ExchangeError, PollCrashed, Problem, StateUnwritable
from watcher.core.models import Overview, combine
from watcher.engine.builtins import Fact, poll_facts, positions_fact
from watcher.engine.evaluate import evaluate_poll, silenced_by
from watcher.engine.lookback import History, Sample, absent_is_zero
from watcher.net.client import POOL_PER_HOST
from watcher.notify.delivery import Deliverer, DeliveryCounts, route
from watcher.sources import Source
from watcher.store import Store

Clock = Callable[[], datetime]
SWEEP_EVERY = timedelta(days=1)  # how often the history of removed accounts is pruned
log = logs.get("watcher.poll")


class Step:
    """One poll's evaluation across accounts: each account's instances replaced in
    ``changed`` (the others are not read), the notices and the rest collected."""

    def __init__(self, book: AlertBook, acked: set[Key] | None = None) -> None:
        self.book = book
        self.changed: dict[str, Mapping[Key, Alert]] = {}
        self.outcome = Outcome(alerts={})  # notices, standings, errors (alerts: changed)
        self.acked = acked or set()
        self.samples: dict[str, list[Sample]] = {}
        self.absent: dict[str, Callable[[str], bool]] = {}
        self.meta: dict[str, str] = {}

    def run(
        self,
        watcher: Watcher,
        account: str,
        history: History,
        now: datetime,
        overview: Overview | None,
        facts: Iterable[Fact],
        silences: list[Silence],
    ) -> None:
        rules = watcher.rules
        outcome, samples = evaluate_poll(
            rules,
            self.changed.get(account, self.book.of(account)),
            history,
            now,
            overview,
            facts,
            silenced_by(silences, now, account),
            account=account,
            label=account if rules.labelled else None,
            acked=lambda rule, currency: (account, rule, currency) in self.acked,
        )
        self.changed[account] = outcome.alerts
        self.outcome.notices += outcome.notices
        self.outcome.standings += outcome.standings
        self.outcome.errors += outcome.errors
        self.samples[account] = samples
        self.absent[account] = absent_is_zero(rules, overview)


Queued = tuple[str, str, Notice, datetime]  # a routed notification: channel, URL key, ...


@dataclass(frozen=True)
class Held:
    """What polls decided while the state database refused writes: their notifications,
    in order, the alert states of the accounts they evaluated, and their poll facts.
    History samples are not held: a gap in the look-back is no data, never a wrong
    number."""

    outbox: list[Queued] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    cause: str | None = None
    alerts: dict[str, Mapping[Key, Alert]] = field(default_factory=dict)  # per account


@dataclass(frozen=True)
class AccountPoll:
    """One account's answer this poll: balances or the error, never both."""

    overview: Overview | None
    error: ExchangeError | None


@dataclass(frozen=True)
class PollResult:
    at: datetime
    overview: Overview | None  # the first account's (the only one, in most setups)
    error: ExchangeError | None  # the first error of any account polled
    outcome: Outcome  # its alerts: every account's, as this poll left them (an AlertBook)
    accounts: Mapping[str, AccountPoll] = field(default_factory=dict)

    @property
    def firing(self) -> int:
        alerts = self.outcome.alerts
        if isinstance(alerts, AlertBook):
            return alerts.firing  # kept as accounts change: no walk over every instance
        return sum(1 for a in alerts.values() if a.state == FIRING)


class Watcher:
    """The state that lives across polls: rules, accounts, alert instances, history."""

    def __init__(
        self,
        settings: Settings,
        rules: RuleSet,
        store: Store,
        accounts: Accounts,
        deliverer: Deliverer,
        alerts: Mapping[Key, Alert],
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.store = store
        self.roster = accounts
        self.deliverer = deliverer
        self.alerts = AlertBook(alerts)
        self.clock = clock
        self.last: PollResult | None = None
        self.held = Held()
        # combined rules: evaluated at most twice an interval over the members' latest data,
        # not on every member's poll (that cost grew with the square of the accounts)
        self.groups_at: dict[str, datetime] = {}
        self.every = settings.interval / 2
        self.swept: datetime | None = None  # when the history of removed accounts was pruned
        self.daily = DailyDigest(settings, store, accounts, lambda: self.rules, self.alert_list)

    @classmethod
    def open(
        cls,
        settings: Settings,
        rules: RuleSet,
        store: Store,
        source: Source | None = None,
        clock: Clock = utcnow,
        deliverer: Deliverer | None = None,
    ) -> Watcher:
        """Open what one poll needs: the accounts (sources, memory from the database), the
        alerts as stored, and delivery on a connection of its own unless one is given."""
        accounts = Accounts.open(settings, rules, store, clock, source)
        deliverer = deliverer or Deliverer(store.sibling(), rules.channels, name=settings.name)
        return cls(settings, rules, store, accounts, deliverer, store.load_alerts(), clock)

    @property
    def accounts(self) -> dict[str, Account]:
        return self.roster.by_name

    @property
    def last_success(self) -> datetime | None:
        return self.roster.last_success

    @property
    def history(self) -> History:
        """The first account's history (the only one, in most setups)."""
        return next(iter(self.accounts.values())).history

    def alert_list(self) -> tuple[Alert, ...]:
        return tuple(self.alerts.values())

    def reload(self, rules: RuleSet) -> None:
        """New rules; instances of rules that still exist keep their state."""
        self.rules = rules
        self.roster.reload(rules)
        self.deliverer.set_channels(rules.channels)

    def poll(self, dry_run: bool = False, names: list[str] | None = None) -> PollResult:
        """Fetch every account (side by side, 16 at a time: the connections kept per host),
        evaluate, and (unless ``dry_run``) persist state and outbox in one transaction."""
        now = self.clock()
        chosen = [self.accounts[n] for n in (names or list(self.accounts))]
        if len(chosen) == 1:
            answers = [self.try_fetch(chosen[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(len(chosen), POOL_PER_HOST)) as pool:
                answers = list(pool.map(self.try_fetch, chosen))
        polled = {a.name: AccountPoll(*answer) for a, answer in zip(chosen, answers, strict=True)}
        return self.process_accounts(now, polled, dry_run)

    def try_fetch(
        self, account: Account | None = None
    ) -> tuple[Overview | None, ExchangeError | None]:
        account = account or next(iter(self.accounts.values()))
        needs = self.rules.needs
        try:
            totals = needs.totals or not needs.rows
            positions = self.rules.shows_positions
            return account.fetch(rows=needs.rows, totals=totals, positions=positions), None
        except ExchangeError as exc:
            log.warning(
                "poll failed",
                account=account.name,
                error=str(exc),
                kind=type(exc).__name__,
                code=exc.code,
            )
            return None, exc
        except Exception as exc:  # whatever the fetch raises must reach the built-ins
            log.error("poll crashed", account=account.name, kind=type(exc).__name__, exc_info=True)
            return None, PollCrashed(
                f"reading the exchange failed unexpectedly ({type(exc).__name__}); "
                "the details are in the log"
            )

    def process(
        self,
        now: datetime,
        overview: Overview | None,
        error: ExchangeError | None,
        dry_run: bool = False,
    ) -> PollResult:
        """One account's answer (the first, or only, account) through the whole poll."""
        name = next(iter(self.accounts))
        return self.process_accounts(now, {name: AccountPoll(overview, error)}, dry_run)

    def process_accounts(
        self, now: datetime, polled: Mapping[str, AccountPoll], dry_run: bool = False
    ) -> PollResult:
        """Everything after the HTTP answers: each account's evaluation, the combined
        rules, then one transaction for all of it."""
        silences = self.store.silences(now)
        acked = {a.key for a in self.store.acks()}
        step = Step(self.alerts, acked)
        for name, answer in polled.items():
            account = self.accounts[name]
            if answer.overview is not None and answer.overview.problems:
                log.warning(
                    "unreadable rows are no data this poll",
                    account=name,
                    rows="; ".join(answer.overview.problems),
                )
            known = account.known(self.settings.stale_after)
            facts = poll_facts(answer.error, now, known, name)
            if self.rules.needs.positions and answer.overview is not None:
                problem = answer.overview.positions_error
                facts.append(positions_fact(now, known, problem, name))
            step.run(self, name, account.history, now, answer.overview, facts, silences)
            step.meta.update(account.polled(now, answer.overview, answer.error))
        for label, members in self.rules.groups.items():
            if now - self.groups_at.get(label, datetime.min.replace(tzinfo=UTC)) < self.every:
                continue  # once an interval over each member's latest data, not every poll
            self.groups_at[label] = now
            within = 2 * self.settings.interval
            parts = [self.accounts[m].fresh(now, within) for m in members if m in self.accounts]
            if len(parts) == len(members) and all(p is not None for p in parts):
                combined = combine(parts, now)  # type: ignore[arg-type]
                step.run(self, label, self.roster.groups[label], now, combined, (), silences)
        for message in step.outcome.errors:
            log.warning(message)
        if dry_run:
            return self.result(now, polled, step, self.alerts.overlay(step.changed))
        self.save(step, route(step.outcome.notices, self.rules.channels, now), now)
        for name in polled:  # written with this commit; only the accounts that polled
            self.accounts[name].web_key_meta = {}
        for account, alerts in step.changed.items():
            self.alerts.replace(account, alerts)
        result = self.result(now, polled, step, self.alerts)
        for notice in step.outcome.notices:
            log.info(
                "alert",
                account=notice.account,
                rule=notice.rule,
                currency=notice.currency,
                kind=notice.kind,
            )
        return result

    def result(
        self, now: datetime, polled: Mapping[str, AccountPoll], step: Step, alerts: AlertBook
    ) -> PollResult:
        first = next(iter(polled.values()))
        errors = [a.error for a in polled.values() if a.error is not None]
        outcome = replace(step.outcome, alerts=alerts)
        error = errors[0] if errors else None
        self.last = PollResult(now, first.overview, error, outcome, dict(polled))
        return self.last

    def save(self, step: Step, rows: list[Queued], now: datetime) -> None:
        """One transaction for the poll, after what earlier polls had to hold back. When the
        database refuses writes (a full disk), the decisions are held in memory, in order,
        ``default`` hears it once, straight, and the next poll that can write sends them."""
        keep = max(self.rules.history_keep, self.settings.history_keep)
        held = self.held
        gone = self.gone(now)
        alerts = {**held.alerts, **step.changed}  # what a full disk held back, then this poll
        try:
            self.store.commit(
                alerts,
                held.outbox + rows,
                step.samples,
                {**held.meta, **step.meta},
                prune_before=now - keep,
                absent_is_zero=step.absent,
                forget=gone or (),
            )
        except StateUnwritable as exc:
            if held.cause is None:
                log.error("the state cannot be written; deciding in memory", cause=str(exc))
                self.deliverer.warn_disk(exc)
            self.held = Held(held.outbox + rows, {**held.meta, **step.meta}, str(exc), alerts)
            return
        if gone is not None:
            self.swept = now
        if held.cause is not None:
            log.info("the state is writable again", messages=len(held.outbox))
            self.deliverer.state_writable()
        self.held = Held()

    def gone(self, now: datetime) -> list[str] | None:
        """Once a day (the first commit after a start included): the accounts and labels
        with history that the rules file no longer names. Each commit prunes only its
        own accounts' rows, so these would otherwise keep theirs for ever."""
        if self.swept is not None and now - self.swept < SWEEP_EVERY:
            return None
        named = set(self.accounts) | set(self.rules.groups)
        return [a for a in self.store.history_accounts() if a not in named]

    @property
    def unwritable(self) -> str | None:
        """Why the last poll could not write its state, or None."""
        return self.held.cause

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

    def deliver(self) -> DeliveryCounts:
        return self.deliverer.deliver(self.clock())
