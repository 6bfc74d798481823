"""Prometheus metrics and ``/healthz``, served only when ``WATCHER_METRICS_ADDR`` is set."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from watcher.engine import FIRING, PENDING, Alert
from watcher.models import ORIGIN_WALLETS, WALLETS, Overview

STATE_VALUES = {PENDING: 1, FIRING: 2}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.balance = Gauge(
            "watcher_balance",
            "Balance per currency and wallet (unit: converted or origin)",
            ["currency", "wallet", "unit"],
            registry=r,
        )
        self.account = Gauge(
            "watcher_account_total", "Account totals per wallet", ["wallet"], registry=r
        )
        self.alert = Gauge(
            "watcher_alert_state",
            "Alert instance state: 1 pending, 2 firing (absent: inactive)",
            ["rule", "currency"],
            registry=r,
        )
        self.polls = Counter("watcher_polls", "Polls by result", ["result"], registry=r)
        self.errors = Counter("watcher_errors", "Poll errors by class", ["kind"], registry=r)
        self.duration = Histogram("watcher_poll_duration_seconds", "Poll duration", registry=r)
        self.notifications = Counter(
            "watcher_notifications", "Notifications by result", ["result"], registry=r
        )
        self.outbox = Gauge("watcher_outbox_depth", "Notifications waiting", registry=r)
        self.last_success = Gauge(
            "watcher_last_success_timestamp_seconds", "Last successful poll", registry=r
        )

    def observe_poll(self, result: Any, seconds: float) -> None:
        """One finished poll (a ``PollResult``): counters, gauges, duration."""
        self.duration.observe(seconds)
        self.polls.labels("ok" if result.error is None else "error").inc()
        if result.error is not None:
            self.errors.labels(type(result.error).__name__).inc()
        if result.overview is not None:
            self.observe_overview(result.overview)
            self.last_success.set(result.at.timestamp())
        self.observe_alerts(result.outcome.alerts)

    def observe_delivery(self, report: Any, depth: int) -> None:
        self.notifications.labels("sent").inc(report.sent)
        self.notifications.labels("failed").inc(report.failed)
        self.notifications.labels("dropped").inc(report.dropped)
        self.outbox.set(depth)

    def observe_overview(self, overview: Overview) -> None:
        self.balance.clear()
        for code, row in (overview.currencies or {}).items():
            for wallet, origin in zip(WALLETS, ORIGIN_WALLETS, strict=True):
                self.balance.labels(code, wallet, "converted").set(float(getattr(row, wallet)))
                self.balance.labels(code, wallet, "origin").set(float(getattr(row, origin)))
        if overview.totals is not None:
            for wallet in WALLETS:
                self.account.labels(wallet).set(float(getattr(overview.totals, wallet)))

    def observe_alerts(self, alerts: dict[Any, Alert]) -> None:
        self.alert.clear()
        for alert in alerts.values():
            self.alert.labels(alert.rule, alert.currency or "").set(STATE_VALUES[alert.state])

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
