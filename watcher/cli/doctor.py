"""``watcher doctor``: every link from the server to the exchange and the phone, checked.

One line per step, each with a verdict, in an order that finds the first broken link:
settings, the rules file, then per account the exchange's address (DNS), a connection
(TCP), the TLS handshake, the web front and the key (one overview request), the
futures host when a rule reads positions, the clock against the exchange's ``Date``;
then every channel, the heartbeat URLs, the Telegram token (``getMe``) and the state
database. It prints no secret and no amount: host names, statuses, counts and field
names only, so that the output can be pasted anywhere. Exit 1 when a step fails.
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from watcher.core.errors import WatcherError
from watcher.core.secrets import MASKER
from watcher.net.browser import available as browser_tls

CONNECT = 3.0  # seconds for DNS, TCP and TLS each: a doctor that hangs helps nobody
SKEW = 30.0  # seconds of clock difference that make time windows and signatures fragile


@dataclass
class Verdict:
    ok: bool | None  # None: skipped, with why
    step: str
    said: str

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[self.ok]
        return MASKER.mask(f"{mark}  {self.step}: {self.said}")


class Doctor:
    def __init__(self, settings: Any, rules: Any, send: bool = False) -> None:
        self.settings = settings
        self.rules = rules
        self.send = send

    def run(self, out: Callable[[str], None]) -> int:
        failed = False
        for verdict in self.steps():
            out(verdict.line())
            failed |= verdict.ok is False
        verdict = "a step failed; the first FAIL is where to look" if failed else "all good"
        out(f"doctor: {verdict}")
        return 1 if failed else 0

    def steps(self) -> Iterator[Verdict]:
        from watcher.sources import spec_from

        specs = self.rules.accounts or (spec_from(self.settings),)
        yield Verdict(True, "settings", f"source {self.settings.source}, {len(specs)} account(s)")
        yield Verdict(True, "rules", f"{self.rules.path}: {len(self.rules.rules)} rule(s)")
        for spec in specs:
            yield from self.account(spec)
        yield from self.channels()
        for beat in self.rules.heartbeats:
            yield from self.reach(f"heartbeat {urlsplit(beat.url).hostname}", beat.url)
        if self.rules.telegram is not None:
            yield self.telegram()
        yield self.state()

    # --- the exchange ----------------------------------------------------------------

    def account(self, spec: Any) -> Iterator[Verdict]:
        name = spec.name
        url = self.address(spec)
        verdicts = list(self.reach(f"{name}: exchange", url))
        yield from verdicts
        if any(v.ok is False for v in verdicts):
            return
        yield self.overview(spec)
        yield self.clock(name, url)
        if self.rules.needs.positions and spec.source == "mexc":
            futures = spec.futures_url or self.settings.mexc_futures_url
            yield from self.reach(f"{name}: futures host", futures)

    def address(self, spec: Any) -> str:
        if spec.source == "bypass":
            return spec.base_url or self.settings.base_url
        if spec.source == "ccxt":
            from watcher.sources.ccxt_source import api_url

            return spec.base_url or api_url(spec.exchange or "mexc") or ""
        return spec.mexc_url or self.settings.mexc_url

    def reach(self, step: str, url: str) -> Iterator[Verdict]:
        """DNS, TCP, TLS (and the clock, from the web front's ``Date``) for one URL."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            found = {a[4][0] for a in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
        except (OSError, UnicodeError) as exc:
            yield Verdict(False, f"{step} DNS", f"{host} does not resolve ({exc})")
            return
        yield Verdict(True, f"{step} DNS", f"{host} -> {len(found)} address(es)")
        try:
            connection = socket.create_connection((host, port), timeout=CONNECT)
        except OSError as exc:
            yield Verdict(False, f"{step} TCP", f"{host}:{port}: {exc.strerror or exc}")
            return
        with connection:
            yield Verdict(True, f"{step} TCP", f"{host}:{port} accepts connections")
            if parts.scheme != "https":
                yield Verdict(None, f"{step} TLS", "plain http (allowed on loopback only)")
                return
            yield self.handshake(step, connection, host)

    def handshake(self, step: str, connection: socket.socket, host: str) -> Verdict:
        """Python's handshake with the CAs watcher trusts (WATCHER_CA_FILE too), and which
        handshake watcher's own requests make (WATCHER_TLS)."""
        context = ssl.create_default_context()
        if self.settings.ca_file:
            context.load_verify_locations(cafile=str(self.settings.ca_file))
        try:
            with context.wrap_socket(connection, server_hostname=host) as tls:
                version = tls.version()
        except (ssl.SSLError, OSError) as exc:
            return Verdict(False, f"{step} TLS", f"{host}: {exc}")
        kind = f"Python's OpenSSL ({ssl.OPENSSL_VERSION.split()[1]})"
        mode = self.settings.tls
        if mode == "browser" or (mode == "auto" and browser_tls()):
            ready = (
                "Chrome's via curl_cffi" if browser_tls() else "Chrome's, but curl_cffi is missing"
            )
            kind += f"; WATCHER_TLS={mode}: {ready}" + (
                " after a refusal" if mode == "auto" else ""
            )
        return Verdict(True, f"{step} TLS", f"{version}, certificate verified, handshake {kind}")

    def overview(self, spec: Any) -> Verdict:
        """One overview request: the web front, the key and the answer's shape."""
        from watcher.core.durations import utcnow
        from watcher.sources import open_source

        step = f"{spec.name}: key and answer"
        try:
            source = open_source(self.settings, utcnow, account=spec)
        except WatcherError as exc:
            return Verdict(False, step, str(exc))
        try:
            found = source.fetch(rows=True, totals=True)
        except WatcherError as exc:
            code = f" (code {exc.code})" if getattr(exc, "code", None) is not None else ""
            return Verdict(False, step, f"{type(exc).__name__}{code}: {exc}")
        finally:
            source.close()
        rows = len(found.currencies or {})
        totals = "totals read" if found.totals is not None else "no totals"
        unread = f", {len(found.nodata)} row(s) unreadable" if found.nodata else ""
        return Verdict(True, step, f"{source.describe()}: {rows} currencies, {totals}{unread}")

    def clock(self, name: str, url: str) -> Verdict:
        import requests

        try:
            answer = requests.head(url, timeout=CONNECT, allow_redirects=False)
            stamp = parsedate_to_datetime(answer.headers["Date"])
        except (requests.RequestException, KeyError, TypeError, ValueError) as exc:
            why = type(exc).__name__
            return Verdict(None, f"{name}: clock", f"no Date header to compare with ({why})")
        skew = abs((datetime.now(UTC) - stamp).total_seconds())
        return Verdict(skew <= SKEW, f"{name}: clock", f"{skew:.0f}s from the exchange's clock")

    # --- the way to the phone ----------------------------------------------------------

    def channels(self) -> Iterator[Verdict]:
        from watcher.notify.adapter import masked, validate_url
        from watcher.notify.delivery import test_channels

        for name, channel in self.rules.channels.items():
            for url in channel.urls:
                problem = validate_url(url)
                shown = masked(url) if problem is None else url.split("://", 1)[0] + "://***"
                shown = url if url.startswith("console://") else shown
                yield Verdict(problem is None, f"channel {name}", problem or f"{shown} built")
            if self.send:
                for _, shown, ok in test_channels(self.rules.channels, [name], self.settings.name):
                    said = "test message accepted" if ok else "test message refused"
                    yield Verdict(ok, f"channel {name} send", f"{shown}: {said}")

    def telegram(self) -> Verdict:
        """``getMe`` through python-telegram-bot, as the running bot asks it."""
        from telegram.error import InvalidToken, TelegramError

        from watcher.telegram.bot import said, who_am_i

        try:
            name = who_am_i(self.rules.telegram)
        except InvalidToken as exc:
            return Verdict(False, "telegram", f"the token is refused: {said(exc)}")
        except TelegramError as exc:
            return Verdict(False, "telegram", f"cannot reach the Bot API ({said(exc)})")
        return Verdict(True, "telegram", f"the token is @{name}'s")

    def state(self) -> Verdict:
        from watcher.store import open_state

        path = self.settings.state
        try:
            store = open_state(self.settings)
        except WatcherError as exc:
            return Verdict(False, "state", str(exc))
        try:
            damage = store.damage()
            if damage:
                return Verdict(False, "state", damage)
            store.set_meta({"doctor_checked": datetime.now(UTC).isoformat(timespec="seconds")})
        except (WatcherError, sqlite3.Error) as exc:
            return Verdict(False, "state", f"{path}: not writable ({exc})")
        finally:
            store.close()
        return Verdict(True, "state", f"{path}: writable, integrity ok")
