"""``watcher run``: APScheduler in the main thread, signals, systemd, metrics.

Polling and delivery are separate jobs with separate database connections, so
a chat service that takes 30 s to time out never delays the next poll. A poll
that raises is logged and counted; the scheduler keeps going.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher.app.poll import AccountPoll, PollResult, Watcher
from watcher.app.preflight import load_checked
from watcher.config.model import RuleSet
from watcher.config.settings import Settings
from watcher.core import logs
from watcher.core.durations import format_duration, utcnow
from watcher.core.errors import ConfigError, Deposed, Problem, RulesError, StoreError
from watcher.daemon.systemd import Notifier, watchdog_period
from watcher.notify.heartbeat import Pinger
from watcher.store import Store
from watcher.store.lock import StateLock


def keep_large_buffers_unmapped() -> None:
    """Fix glibc's mmap threshold at 1 MiB. An oversized answer (up to the 20 MB cap) is read
    into one buffer; by default glibc then raises its threshold and keeps such memory in the
    heap for good, so one bad answer would raise a months-long daemon's RSS by 20 MB."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)


M_MMAP_THRESHOLD = -3


def file_digest(path: Any) -> str:
    """What a rejected file's content was, so one content is announced once."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "unreadable"


DELIVERY = "delivery"  # the executor of delivery, digest and watchdog jobs
LEASE = "lease"  # the executor of the lease job of a pair
DAMAGED_POLLS = 3  # polls in a row on a damaged database before the daemon gives up
STOP_BUDGET = 8.0  # seconds to finish a cycle and flush after SIGTERM (systemd waits 90)
log = logs.get("watcher.daemon")


def spread(index: int, count: int, interval: float) -> timedelta:
    """Account ``index`` of ``count`` starts ``index / count`` of an interval late, so that
    N accounts make N requests spread over the interval, not N in the same second; one
    account starts at once, as before. No jitter on top: APScheduler's ``jitter`` adds
    0..j seconds to each run after the one before, so the polls drift later and come
    every interval + j/2 on average (at 60 s and 2 s of jitter, 1.6% of polls missing)."""
    if count <= 1:
        return timedelta(0)
    return timedelta(seconds=interval * index / count)


class Daemon:
    """The running service: jobs on a scheduler, signals, systemd, metrics, the bot.

    Built by ``watcher.daemon.build.build``, which opens everything in order; the
    constructor only takes what it is given."""

    def __init__(
        self,
        settings: Settings,
        lock: StateLock | None,
        store: Store,
        watcher: Watcher,
        pinger: Pinger,
        scheduler: BlockingScheduler,
        notifier: Notifier,
        open_bot: Callable[[Daemon, Any], Any],
    ) -> None:
        self.settings = settings
        self.lock = lock
        self.store = store
        self.watcher = watcher
        self.pinger = pinger
        self.scheduler = scheduler
        self.notifier = notifier
        self.open_bot = open_bot
        self.stopping = False
        self.bot: Any = None
        self.cycle = threading.Lock()
        self.heartbeat = time.monotonic()
        self.metrics: Any = None  # prometheus-client is imported only when it is asked for
        self.server: Any = None
        self.damaged = 0  # polls in a row that crashed on a damaged database
        self.fatal: str | None = None  # why the state database cannot be used, once known
        self.failing: set[str] = set()  # accounts whose last poll failed (the status line)
        self.delivery = threading.Lock()  # guards the two flags below
        self.delivering = False  # a delivery job runs
        self.wake = False  # a poll decided more while it ran: it runs once more
        self.waiting: dict[str, tuple[datetime, AccountPoll]] = {}  # answers for the commit
        self.waiting_lock = threading.Lock()
        self.pair: Any = None  # the active/standby side, on a shared (PostgreSQL) state

    def leading(self) -> bool:
        """Alone, always; in a pair, while this instance holds the lease."""
        return self.pair is None or self.pair.leading()

    def stand_down(self, exc: Deposed) -> None:
        if self.pair is not None:
            self.pair.step_down(str(exc))

    # --- jobs -----------------------------------------------------------------
    def poll_job(self, name: str | None = None) -> None:
        """One account's poll: its fetch runs beside the other accounts' (a dead exchange
        holds up only its own account); the evaluation and commit take turns. Answers
        that arrive while another poll holds the turn wait for it together, and the next
        poll to get the turn commits all of them in one transaction: at 5,000 accounts a
        commit per account would cost more than the evaluations."""
        name = name or next(iter(self.watcher.accounts))
        account = self.watcher.accounts.get(name)
        if account is None or not self.leading():
            return  # removed by a reload (its job goes at the next schedule), or standing by
        self.heartbeat = time.monotonic()
        started = time.perf_counter()
        now = utcnow()
        answer = self.watcher.try_fetch(account)
        with self.waiting_lock:
            self.waiting[name] = (now, AccountPoll(*answer))
        with self.cycle:
            with self.waiting_lock:
                batch, self.waiting = self.waiting, {}
            batch = {n: got for n, got in batch.items() if n in self.watcher.accounts}
            if not batch or self.stopping:
                return  # committed with another poll's, or the stop has the database now
            self.commit_polls(batch, started)

    def commit_polls(self, batch: dict[str, tuple[datetime, AccountPoll]], started: float) -> None:
        """The answers of ``batch``, evaluated and committed in one transaction (under the
        cycle lock), timed at the latest of their polls."""
        gone = self.store.gone()
        if gone is not None:
            return self.give_up(gone)
        if not self.leading():
            return  # stepped down while these polls fetched
        latest = max(at for at, _ in batch.values())
        try:
            result = self.watcher.process_accounts(latest, {n: a for n, (_, a) in batch.items()})
        except Deposed as exc:
            return self.stand_down(exc)
        except Exception:
            log.exception("poll crashed; the next one runs on schedule", accounts=len(batch))
            if self.metrics:
                for name in batch:
                    self.metrics.polls.labels(name, "crashed").inc()
            return self.count_damage()
        finally:
            self.heartbeat = time.monotonic()
        self.damaged = 0
        if self.metrics:
            self.metrics.observe_poll(result, time.perf_counter() - started)
        self.after_poll(result, list(batch))

    def after_poll(self, result: PollResult, names: list[str] | None = None) -> None:
        self.notifier.status(self.status_line(result, names))
        if result.outcome.notices:
            self.wake_delivery()
        if not self.pinger.any_due():
            return  # no ping due: the oldest success (a walk over every account) can wait
        error = "" if result.error is None else str(result.error)
        last_success = self.watcher.last_success
        if self.watcher.unwritable:  # a heartbeat must not say healthy while nothing is kept
            last_success, error = None, f"the state cannot be written: {self.watcher.unwritable}"
        urls = self.pinger.due(result.at, last_success, error)
        self.pinger.ping(urls)  # a thread per URL: returns at once

    def count_damage(self) -> None:
        """A poll that crashed on a damaged database (SQLite's own check says so), three
        times in a row, ends the daemon: restarting reports the damage at start-up."""
        damage = self.store.damage()
        self.damaged = self.damaged + 1 if damage else 0
        if damage and self.damaged >= DAMAGED_POLLS:
            self.give_up(damage)

    def give_up(self, reason: str) -> None:
        """The state database is gone or damaged: unhealthy at once (``/healthz`` 503, no
        watchdog ping), ``default`` told straight, then a stop with the one-line reason and
        a non-zero exit, so that systemd restarts watcher and start-up names the damage."""
        if self.fatal is not None:
            return
        self.fatal = reason
        log.error("the state database cannot be used; stopping", reason=reason)
        said = f"{reason}. watcher stops now; systemd starts it again and start-up says more."
        self.watcher.deliverer.tell_default("state database unusable", said)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def start_bot(self, rules: RuleSet) -> None:
        """Telegram commands, in their own thread (a reload restarts it only if it changed)."""
        spec = rules.telegram
        if self.bot is not None and self.bot.spec == spec:
            return
        self.stop_bot()
        if spec is not None and self.leading():
            self.bot = self.open_bot(self, spec)

    def stop_bot(self) -> None:
        if self.bot is not None:
            self.bot.stop()
            self.bot = None

    def latest_balances(self) -> dict[str, Any]:
        accounts = self.watcher.accounts
        return {name: a.last_overview for name, a in accounts.items() if a.last_overview}

    def digest_job(self) -> None:
        """Queue the day's digest when it is due (checked every minute), then deliver it."""
        if not self.leading():
            return
        try:
            with self.cycle:
                queued = self.watcher.daily.maybe(utcnow())
        except Exception:
            log.exception("the digest could not be prepared; the next minute tries again")
            return
        if queued:
            self.deliver_job()

    def deliver_job(self) -> None:
        """Deliver; a wake-up that came meanwhile (a poll decided more) runs once more here
        instead of queueing a job beside this one."""
        with self.delivery:
            if self.delivering:
                self.wake = True
                return
            self.delivering, self.wake = True, False
        try:
            while True:
                self.deliver_once()
                with self.delivery:
                    if not self.wake or self.stopping:
                        self.delivering = False
                        return
                    self.wake = False
        except BaseException:
            with self.delivery:
                self.delivering = False
            raise

    def deliver_once(self) -> None:
        if not self.leading():
            return
        try:
            counts = self.watcher.deliver()
        except Deposed as exc:
            self.stand_down(exc)
            return
        except Exception:
            log.exception("delivery crashed; the outbox keeps every message")
            return
        if self.metrics:
            self.metrics.observe_delivery(counts, self.watcher.deliverer.store.outbox_depth())

    def wake_delivery(self) -> None:
        """A poll decided something: the delivery job runs now (or once more, if it runs)."""
        with self.delivery:
            if self.delivering:
                self.wake = True
                return
        job = self.scheduler.get_job("deliver")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def reload_job(self) -> None:
        try:
            rules = load_checked(self.settings.rules)
        except RulesError as exc:
            self.reject_reload(exc.problems)
            return
        except Exception as exc:  # whatever the file does, the old rules run and default hears
            log.exception("reload crashed; the old rules keep running")
            what = f"the file could not be loaded ({type(exc).__name__})"
            self.reject_reload([Problem(str(self.settings.rules), 1, 1, what)])
            return
        with self.cycle:
            self.watcher.reload(rules)
            self.watcher.announce_reload(None, None)
            self.pinger.use(rules.heartbeats)
            self.start_bot(rules)
        self.schedule_polls()
        log.info("rules reloaded", rules=len(rules.rules), channels=len(rules.channels))

    def reject_reload(self, problems: list[Problem]) -> None:
        """RELOAD REJECTED: every problem in the log, the first to ``default`` once."""
        for problem in problems:
            log.error("reload rejected; the old rules keep running", problem=str(problem))
        with self.cycle:
            self.watcher.announce_reload(problems[0], file_digest(self.settings.rules))

    def watchdog_job(self) -> None:
        """Ping only while polls make progress: a wedged poll gets us restarted."""
        limit = 3 * self.settings.interval.total_seconds() + self.settings.timeout.total_seconds()
        if self.fatal is None and time.monotonic() - self.heartbeat < max(limit, 30.0):
            self.notifier.watchdog()

    def status_line(self, result: PollResult | None, names: list[str] | None = None) -> str:
        """``2 firing, last poll 10:01:02 ok``; with several accounts, the one that just
        polled and how many fail: the line costs the same at 5 or 5,000 accounts."""
        if result is None:
            return "starting"
        outcome = "ok" if result.error is None else type(result.error).__name__
        for name in names or ():
            polled = result.accounts.get(name)
            failed = polled is not None and polled.error is not None
            (self.failing.add if failed else self.failing.discard)(name)
        accounts = len(self.watcher.accounts)
        if accounts == 1 or not names:
            return f"{result.firing} firing, last poll {result.at:%H:%M:%S} {outcome}"
        who = names[-1] if len(names) == 1 else f"{names[-1]} and {len(names) - 1} more"
        return (
            f"{result.firing} firing, last poll {who} {result.at:%H:%M:%S} {outcome}; "
            f"{len(self.failing)} of {accounts} accounts failing"
        )

    def healthy(self) -> bool:
        if self.fatal is not None:
            return False
        if self.pair is not None and not self.pair.leading():
            return self.pair.healthy()
        last = self.watcher.last_success
        return last is not None and utcnow() - last < self.settings.stale_after

    # --- lifecycle ------------------------------------------------------------
    def schedule_polls(self) -> None:
        """One poll job per account (side by side, never in line); a reload adds and
        removes jobs as accounts come and go."""
        interval = self.settings.interval.total_seconds()
        wanted = {f"poll-{name}": name for name in self.watcher.accounts}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("poll-") and job.id not in wanted:
                job.remove()
        now = datetime.now(UTC)
        for index, (job_id, name) in enumerate(wanted.items()):
            if self.scheduler.get_job(job_id) is None:
                self.scheduler.add_job(
                    self.poll_job,
                    IntervalTrigger(seconds=interval, timezone=UTC),
                    args=[name],
                    id=job_id,
                    next_run_time=now + spread(index, len(wanted), interval),
                    misfire_grace_time=max(int(interval), 1),
                )

    def poll_now(self) -> None:
        """Every account polls now (a takeover), each at its own spread later on."""
        now = datetime.now(UTC)
        for job in self.scheduler.get_jobs():
            if job.id.startswith("poll-"):
                job.modify(next_run_time=now)

    def schedule(self) -> None:
        interval = self.settings.interval.total_seconds()
        now = datetime.now(UTC)
        self.schedule_polls()
        if self.pair is not None:  # on its own thread: a takeover never waits for delivery
            self.scheduler.add_job(
                self.pair.tick,
                IntervalTrigger(seconds=self.pair.lease.every, timezone=UTC),
                id="lease",
                next_run_time=now,
                executor=LEASE,
            )
        self.scheduler.add_job(  # delivery, digest and watchdog never wait for a poll thread
            self.deliver_job,
            IntervalTrigger(seconds=min(interval, 5.0), timezone=UTC),
            id="deliver",
            next_run_time=now + timedelta(seconds=0.5),
            executor=DELIVERY,
            # a long delivery (5,000 alerts at once) outlasts its interval: the next run
            # then only raises the wake flag (``deliver_job``), not a "skipped" warning
            max_instances=2,
        )
        self.scheduler.add_job(  # always: a reload may add or remove the digest
            self.digest_job,
            IntervalTrigger(seconds=60, timezone=UTC),
            id="digest",
            next_run_time=now + timedelta(seconds=1),
            executor=DELIVERY,
        )
        period = watchdog_period()
        if period:
            seconds = period.total_seconds()
            self.scheduler.add_job(
                self.watchdog_job, IntervalTrigger(seconds=seconds), id="dog", executor=DELIVERY
            )

    def shut_down(self) -> None:
        with contextlib.suppress(SchedulerNotRunningError):  # a second signal: already done
            self.scheduler.shutdown(wait=False)

    def install_signals(self) -> None:
        def stop(signum: int, frame: Any) -> None:
            log.info("stopping", signal=signal.Signals(signum).name)
            if self.scheduler.running:
                # not from here: the signal may land inside the scheduler's own loop, which
                # holds its job store's lock, and a shutdown there empties the store under
                # it (JobLookupError, exit 1). Another thread waits for the lock instead.
                threading.Thread(target=self.shut_down, daemon=True).start()

        def reload(signum: int, frame: Any) -> None:
            self.scheduler.add_job(self.reload_job, id="reload", replace_existing=True)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def run(self) -> int:
        keep_large_buffers_unmapped()
        self.schedule()
        self.install_signals()
        bind = self.settings.metrics_bind
        if bind:
            from watcher.daemon.metrics import Metrics, serve

            self.metrics = Metrics(heartbeat_failures=lambda: self.pinger.failures)
            try:
                self.server = serve(self.metrics, bind, self.healthy)
            except OSError as exc:  # busy, or a host name that does not resolve
                reason = exc.strerror or type(exc).__name__
                address = self.settings.metrics_addr
                raise ConfigError(f"WATCHER_METRICS_ADDR {address}: {reason}") from None
        rules = self.watcher.rules
        log.info(
            "watcher started",
            rules=len(rules.rules),
            interval=format_duration(self.settings.interval),
            network=self.settings.network,
            state=str(self.store.path),  # a URL without its query: its options
        )
        self.notifier.ready("started, first poll running")
        self.scheduler.start()
        return self.finish()

    def finish(self) -> int:
        """Let a running cycle end, flush the outbox once, and leave within budget."""
        self.notifier.stopping()
        self.stopping = True
        deadline = time.monotonic() + STOP_BUDGET  # the bot's stop (up to 3 s) counts too
        self.stop_bot()
        finished = self.cycle.acquire(timeout=STOP_BUDGET / 2)
        flusher = threading.Thread(target=self.deliver_job, daemon=True)
        flusher.start()
        flusher.join(max(deadline - time.monotonic(), 0.1))
        if self.pair is not None:
            self.release_lease()
        if self.server is not None:
            self.server.shutdown()
        if finished:
            self.cycle.release()
        log.info("watcher stopped", outbox=self.outbox_depth())
        if flusher.is_alive() or not finished or self.watcher.deliverer.busy():
            if self.fatal is not None:
                print(f"watcher: {self.fatal}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            # a stuck HTTP call must not hold systemd's stop past its budget
            os._exit(StoreError.exit_code if self.fatal is not None else 0)
        self.store.close()
        if self.lock is not None:
            self.lock.release()
        if self.fatal is not None:
            raise StoreError(self.fatal)
        return 0

    def release_lease(self) -> None:
        """After the flush: the standby may take over at its next look."""
        try:
            self.pair.lease.release()
        except Exception as exc:  # the database is gone: the lease simply runs out
            log.warning("the lease could not be released; it runs out", error=str(exc))

    def outbox_depth(self) -> int | str:
        try:
            return self.store.outbox_depth()
        except StoreError as exc:
            return str(exc)
