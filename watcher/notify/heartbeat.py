"""Silence means healthy: pings to an outside service that alerts when they stop.

After each poll the daemon asks ``Pinger.due``; at most once per ``every`` a
URL is requested, on a thread of its own with a short timeout, so a service
that hangs never delays a poll, a delivery, another URL or a stop. The success form goes out when
every account polled successfully within ``every``; otherwise the failure form
where the service has one (healthchecks.io ``/fail``, Uptime Kuma
``status=down``), or nothing. A failed ping is logged and counted, never
alerted in a loop. The URL is a secret: only its masked form is shown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from watcher.config.model import Heartbeat
from watcher.core import logs
from watcher.core.errors import TransportError
from watcher.net.client import status_of

TIMEOUT = (3.0, 5.0)
log = logs.get("watcher.heartbeat")


Ping = tuple[str, bytes | None]  # the URL, and a body to POST (None: a GET)


def ping_url(beat: Heartbeat, ok: bool, message: str) -> Ping | None:
    """The request for this state, or None where the service has no failure form.

    - ``kuma``: ``status=up|down`` and ``msg=`` on the push URL;
    - ``healthchecks``: the URL, or ``/fail`` with the reason as the body (healthchecks
      keeps the body of a ping, and shows it beside the failure);
    - ``plain``: the URL as written, only while healthy; nothing is ever appended.
    """
    reason = " ".join(message.split())[:200]
    if beat.style == "kuma":
        parts = urlsplit(beat.url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query.update(status="up" if ok else "down", msg=reason, ping="")
        return urlunsplit(parts._replace(query=urlencode(query))), None
    if ok:
        return beat.url, None
    if beat.style == "healthchecks":
        parts = urlsplit(beat.url)
        failed = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))
        return failed, reason.encode()
    return None


class Pinger:
    """Which heartbeat URLs are due after a poll; the sending is ``ping``."""

    def __init__(self, beats: Iterable[Heartbeat], clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.last: dict[str, float] = {}
        self.failures = 0
        self.busy: set[str] = set()  # URLs (without their query) whose ping still waits
        self.lock = threading.Lock()
        self.use(beats)

    def use(self, beats: Iterable[Heartbeat]) -> None:
        """The heartbeats of the rules now in force. A reload keeps what was learnt: the
        failure count (a Prometheus counter never goes down), when each URL was last
        pinged and which still wait."""
        self.beats = tuple(beats)

    def owed(self, beat: Heartbeat, tick: float) -> bool:
        """Whether ``beat``'s ``every`` has passed since its URL was last pinged."""
        return tick - self.last.get(beat.url, float("-inf")) >= beat.every.total_seconds()

    def any_due(self) -> bool:
        """True when some URL's ``every`` has passed: only then is the poll's health worth
        working out (the oldest success is a walk over every account)."""
        tick = self.clock()
        return any(self.owed(beat, tick) for beat in self.beats)

    def due(self, now: datetime, last_success: datetime | None, error: str) -> list[Ping]:
        tick = self.clock()
        urls = []
        for beat in self.beats:
            if not self.owed(beat, tick):
                continue
            self.last[beat.url] = tick
            ok = last_success is not None and now - last_success <= max(
                beat.every, timedelta(seconds=1)
            )
            ping = ping_url(beat, ok, "OK" if ok else f"no successful poll: {error}")
            if ping is not None:
                urls.append(ping)
        return urls

    def ping(self, pings: Iterable[Ping | str]) -> None:
        """Each URL on a daemon thread of its own: a service that hangs delays no other
        URL and no stop, and a URL whose last ping still waits is skipped, not stacked."""
        for ping in pings:
            url, body = (ping, None) if isinstance(ping, str) else ping
            target = url.split("?", 1)[0]
            with self.lock:
                if target in self.busy:
                    log.warning(
                        "heartbeat ping skipped: the last one is still waiting",
                        host=urlsplit(url).hostname or "?",
                    )
                    continue
                self.busy.add(target)
            threading.Thread(target=self._ping, args=(url, target, body), daemon=True).start()

    def _ping(self, url: str, target: str, body: bytes | None = None) -> None:
        said = None
        try:  # only the status counts: the body is never read, however long it is
            status = status_of(url, TIMEOUT, body)
            said = f"HTTP {status}" if status >= 400 else None
        except TransportError as exc:
            said = str(exc)
        finally:
            with self.lock:
                self.busy.discard(target)
        if said is not None:
            with self.lock:
                self.failures += 1
            host = urlsplit(url).hostname or "?"  # the path and query hold the token
            log.warning("heartbeat ping failed", host=host, answer=said)
