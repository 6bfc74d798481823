"""Prometheus metrics and ``/healthz``, served only when ``WATCHER_METRICS_ADDR`` is set."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from watcher.core.alerts import FIRING, PENDING
from watcher.core.models import ORIGIN_WALLETS, WALLETS

STATE_VALUES = {PENDING: 1, FIRING: 2}


class PollCollector(Collector):
    """Gauges read from the last poll result at scrape time.

    A poll writes only its own accounts, under a lock; a scrape copies the maps under
    that lock, so it sees whole polls, never a half-cleared gauge. The copy is the
    scrape's (a few a minute), not each poll's: at 5,000 accounts a copy per poll would
    make a poll's cost grow with the number of accounts. The balances are the last good
    poll's: a failed poll is no data, not zero.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.overviews: dict[str, Any] = {}  # per account: its last good overview
        self.successes: dict[str, float] = {}  # and when it was read
        self.alerts: Any = {}  # every account's alerts (an AlertBook: it snapshots itself)
        self.outbox = 0
        self.heartbeat_failures: Callable[[], int] = lambda: 0

    def observe(self, result: Any) -> None:
        at = result.at.timestamp()
        with self.lock:
            for name, answer in result.accounts.items():
                if answer.overview is not None:
                    self.overviews[name], self.successes[name] = answer.overview, at
            self.alerts = result.outcome.alerts

    def collect(self) -> Iterator[Any]:
        with self.lock:
            overviews, successes = dict(self.overviews), dict(self.successes)
            alerts = self.alerts
        balance = GaugeMetricFamily(
            "watcher_balance",
            "Balance per currency and wallet (unit: converted or origin)",
            labels=["account", "currency", "wallet", "unit"],
        )
        account = GaugeMetricFamily(
            "watcher_account_total", "Account totals per wallet", labels=["account", "wallet"]
        )
        alert = GaugeMetricFamily(
            "watcher_alert_state",
            "Alert instance state: 1 pending, 2 firing (absent: inactive)",
            labels=["account", "rule", "currency"],
        )
        for name, overview in sorted(overviews.items()):
            for code, row in sorted((overview.currencies or {}).items()):
                for wallet, origin in zip(WALLETS, ORIGIN_WALLETS, strict=True):
                    converted, native = float(getattr(row, wallet)), float(getattr(row, origin))
                    balance.add_metric([name, code, wallet, "converted"], converted)
                    balance.add_metric([name, code, wallet, "origin"], native)
            if overview.totals is not None:
                for wallet in WALLETS:
                    account.add_metric([name, wallet], float(getattr(overview.totals, wallet)))
        for item in alerts.values():
            alert.add_metric(
                [item.account, item.rule, item.currency or ""], STATE_VALUES[item.state]
            )
        yield balance
        yield account
        yield alert
        yield CounterMetricFamily(
            "watcher_heartbeat_failures",
            "Heartbeat pings that failed (logged, never alerted)",
            value=self.heartbeat_failures(),
        )
        outbox = GaugeMetricFamily("watcher_outbox_depth", "Notifications waiting")
        outbox.add_metric([], self.outbox)
        yield outbox
        success = GaugeMetricFamily(
            "watcher_last_success_timestamp_seconds", "Last successful poll", labels=["account"]
        )
        for name, stamp in sorted(successes.items()):
            success.add_metric([name], stamp)
        yield success


class Metrics:
    def __init__(self, heartbeat_failures: Callable[[], int] = lambda: 0) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.snapshot = PollCollector()
        self.snapshot.heartbeat_failures = heartbeat_failures
        r.register(self.snapshot)
        self.polls = Counter(
            "watcher_polls", "Polls by account and result", ["account", "result"], registry=r
        )
        self.errors = Counter(
            "watcher_errors", "Poll errors by account and class", ["account", "kind"], registry=r
        )
        self.duration = Histogram("watcher_poll_duration_seconds", "Poll duration", registry=r)
        self.notifications = Counter(
            "watcher_notifications", "Notifications by result", ["result"], registry=r
        )
        self.leader = Gauge(
            "watcher_leader", "1 while this instance leads its pair (always 1 alone)", registry=r
        )
        self.leader.set(1)
        self.epoch = Gauge(
            "watcher_lease_epoch", "The lease epoch this instance last saw (0 alone)", registry=r
        )

    def observe_poll(self, result: Any, seconds: float) -> None:
        """One finished poll (a ``PollResult``): counters now, gauges when scraped."""
        self.duration.observe(seconds)
        for name, answer in result.accounts.items():
            self.polls.labels(name, "ok" if answer.error is None else "error").inc()
            if answer.error is not None:
                self.errors.labels(name, type(answer.error).__name__).inc()
        self.snapshot.observe(result)

    def observe_delivery(self, counts: Any, depth: int) -> None:
        self.notifications.labels("sent").inc(counts.sent)
        self.notifications.labels("failed").inc(counts.failed)
        self.notifications.labels("dropped").inc(counts.dropped)
        self.snapshot.outbox = depth

    def render(self) -> bytes:
        return generate_latest(self.registry)


def serve(metrics: Metrics, bind: tuple[str, int], healthy: Callable[[], bool]) -> Any:
    """Start the HTTP server in a daemon thread; returns it (``.shutdown()`` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes are not events worth a log line."""

        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self.reply(200, metrics.render(), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                ok = healthy()
                self.reply(200 if ok else 503, b"ok\n" if ok else b"stale\n", "text/plain")
            else:
                self.reply(404, b"try /metrics or /healthz\n", "text/plain")

        def reply(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(bind, Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True, name="metrics").start()
    return server
