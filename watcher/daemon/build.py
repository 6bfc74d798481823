"""The composition root: the one function that builds the daemon, stage by stage.

Order: settings (given) -> rules (read and checked) -> the state lock (alone) or the
lease (a pair on PostgreSQL) and store ->
sources (one per account, inside ``Watcher.open``) -> delivery -> heartbeat ->
scheduler -> bot. Every constructor below only takes what it is given; this function
alone opens files, connections and threads. If a step fails, what the earlier steps
opened is closed again, in reverse.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from watcher.app.poll import Watcher
from watcher.app.preflight import load_checked
from watcher.config.model import TelegramCommands
from watcher.config.settings import Settings
from watcher.core.durations import utcnow
from watcher.daemon.pair import Pair
from watcher.daemon.service import DELIVERY, LEASE, Daemon
from watcher.daemon.systemd import Notifier
from watcher.notify.delivery import Deliverer
from watcher.notify.heartbeat import Pinger
from watcher.store import Store, open_state, shared
from watcher.store.lease import Lease
from watcher.store.lock import StateLock


def build(settings: Settings) -> Daemon:
    """A daemon ready to ``run``: nothing is scheduled or started yet but the bot."""
    rules = load_checked(settings.rules)
    with ExitStack() as undo:
        lock = None
        if not shared(settings):  # a pair shares PostgreSQL: its lease decides who writes
            lock = StateLock(settings.state)
            lock.acquire()  # a second daemon on this database stops here, naming the first
            undo.callback(lock.release)
        store = open_state(settings)
        undo.callback(store.close)
        # Delivery gets its own connection: it runs beside the poll, in another thread.
        deliverer = Deliverer(store.sibling(), rules.channels, name=settings.name)
        watcher = Watcher.open(settings, rules, store, deliverer=deliverer)
        scheduler = BlockingScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1},
            # polls wait on one another for the commit; delivery must not wait behind them
            executors={
                "default": ThreadPoolExecutor(10),
                DELIVERY: ThreadPoolExecutor(4),
                LEASE: ThreadPoolExecutor(1),
            },
        )
        daemon = Daemon(
            settings,
            lock,
            store,
            watcher,
            Pinger(rules.heartbeats),
            scheduler,
            Notifier(),
            open_bot,
        )
        if lock is None:
            daemon.pair = Pair(daemon, fenced(store, deliverer, settings))
        daemon.start_bot(rules)  # a standby starts it when it takes over
        undo.pop_all()
    return daemon


def fenced(store: Store, deliverer: Deliverer, settings: Settings) -> Lease:
    """The lease on a connection of its own, and its fence on every writing connection:
    the poll's, delivery's (and the bot's, in ``open_bot``)."""
    lease = Lease(store.sibling(), settings.name, settings.lease)
    store.fence = deliverer.store.fence = lease.fence
    deliverer.guard = lease.leading  # checked again right before each send
    return lease


def open_bot(daemon: Daemon, spec: TelegramCommands) -> Any:
    """Telegram commands on their own thread and database connection (imported only
    when the rules file asks for them)."""
    from watcher.telegram.bot import Bot
    from watcher.telegram.commands import Context

    store = daemon.store.sibling()  # fenced, in a pair: a deposed leader's bot writes nothing
    context = Context(
        store=store,
        rules=lambda: daemon.watcher.rules,
        balances=daemon.latest_balances,
        clock=utcnow,
    )
    return Bot(spec, context).start()


def run(settings: Settings) -> int:
    """``watcher run``: build, then run until a signal stops it."""
    return build(settings).run()
