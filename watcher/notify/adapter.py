"""All apprise use in one place, through its public API only.

- One ``apprise.Apprise`` per channel URL (``Service``), built once when the rules are
  loaded or reloaded and reused for every send, so a plugin keeps its own state (Slack's
  and Discord's rate limits) and apprise prepares each URL its own way (``#channel``
  targets, Telegram's markdown to HTML).
- URL parameters apprise documents set watcher's defaults when the URL does not:
  ``overflow=split`` (long messages arrive whole), ``rto``/``cto`` (read and connect
  timeouts: a receiver that answers slowly is waited for, not sent the message again).
- ``console://`` is watcher's own service, registered with apprise's documented
  ``@notify`` decorator; the demo and first-time users read their alerts there.
- apprise's logger is quietened once, at start (``watcher.core.logs``), never toggled.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from watcher.core.secrets import Masker, url_secrets

INFO, SUCCESS, WARNING, FAILURE = "info", "success", "warning", "failure"  # apprise's types
WORDS = {FAILURE: "critical", WARNING: "warning", INFO: "info", SUCCESS: "resolved"}
MARKDOWN_SCHEMES = frozenset({"tgram", "slack", "discord", "matrix", "matrixs"})
DEFAULTS = {"overflow": "split", "rto": "15", "cto": "5"}  # apprise's own URL parameters
_registered = threading.Lock()
_console_ready = False


def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    """``console://``: the message on standard output, its severity as a word."""
    label = WORDS.get(str(notify_type), str(notify_type))
    sys.stdout.write(f"[{label}] {title}\n{body}\n" if title else f"{body}\n")
    sys.stdout.flush()
    return True


class _PerThread(logging.Filter):
    """Installed once on apprise's logger; what it does depends on this thread alone.

    - While the thread builds a ``Service``, apprise's records about the URL are dropped:
      a URL it cannot use is one located line from watcher (``check``), not two.
    - apprise's warnings are also kept a short while (``_HEARD``), so that a failed send
      can say why: a refused connection is not a refused message. apprise sends from its
      own worker threads, so a send finds its warnings by time and by its host.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_building, "active", False):
            return False
        if record.levelno >= logging.WARNING:
            _HEARD.append((time.monotonic(), record.getMessage()))
        return True


_building = threading.local()
_HEARD: deque[tuple[float, str]] = deque(maxlen=200)


def _apprise() -> Any:
    """apprise, imported when a channel is first used, with ``console://`` registered and
    the filter on its logger."""
    global _console_ready
    import apprise

    with _registered:
        if not _console_ready:
            from apprise.decorators import notify

            notify(on="console", name="watcher console")(_console)
            logging.getLogger("apprise").addFilter(_PerThread())
            _console_ready = True
    return apprise


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def prepared(url: str) -> str:
    """The URL with watcher's defaults for the parameters it does not set itself. Appended
    as text: in apprise's syntax a ``#`` is a target (``slack://T/B/C/#general``), not the
    fragment a URL parser would take it for."""
    if _scheme(url) == "console" or "://" not in url:
        return url
    head, _, query = url.partition("?")
    given = parse_qs(query, keep_blank_values=True)
    missing = {k: v for k, v in DEFAULTS.items() if k not in given}
    if not missing:
        return url
    return f"{head}?{query}&{urlencode(missing)}" if query else f"{head}?{urlencode(missing)}"


def _seconds(text: str) -> float:
    """``rto=`` as apprise reads it; what is not a number leaves the default."""
    try:
        return float(text)
    except ValueError:
        return float(DEFAULTS["rto"])


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(url.partition("?")[2], keep_blank_values=True)


@dataclass(frozen=True)
class Message:
    """One message for one URL: its markdown form, if any, and its plain form."""

    title: str
    plain: str
    kind: str  # apprise's notify type, for icons and colours
    severity: str  # the word a person reads
    markdown: str | None = None


@dataclass(frozen=True)
class Sent:
    """What one send came to. ``maybe``: no answer within the read timeout after the
    request went out, so the message may well have arrived; a retry waits longer."""

    ok: bool
    error: str = ""
    maybe: bool = False


class Service:
    """One channel URL as apprise serves it: built once, reused for every send."""

    def __init__(self, url: str) -> None:
        self.url = url
        full = prepared(url)
        apprise = _apprise()
        self.apprise = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
        _building.active = True
        try:
            self.ok = "://" in url and bool(self.apprise.add(full))
        finally:
            _building.active = False
        self.read_timeout = _seconds((_query(full).get("rto") or [""])[0])

    @property
    def plugin(self) -> Any:
        """The added server object (apprise's plugin for the URL), or None."""
        return self.apprise[0] if self.ok and len(self.apprise) else None

    def privacy_url(self) -> str:
        """apprise's privacy form of the URL, with every token-like part masked too."""
        plugin = self.plugin
        text = str(plugin.url(privacy=True)) if plugin else urlsplit(self.url).scheme + "://***"
        return Masker(url_secrets(self.url)).mask(text)

    def send(self, message: Message) -> Sent:
        """One send; never raises. Markdown first where the service renders it; only an
        explicit refusal is tried again as plain text, never a send that timed out."""
        if not self.ok:
            return Sent(False, "apprise rejected the URL")
        if message.markdown is not None:
            sent = self._notify(message, message.markdown, "markdown")
            if sent.ok or sent.maybe:
                return sent
        return self._notify(message, message.plain, "text")

    def _notify(self, message: Message, body: str, body_format: str) -> Sent:
        started = time.monotonic()
        try:
            ok = bool(
                self.apprise.notify(
                    body=body,
                    title=message.title,
                    notify_type=message.kind,
                    body_format=body_format,
                )
            )
        except Exception as exc:  # a plugin bug must not kill delivery
            return Sent(False, f"{type(exc).__name__}: {exc}")
        if ok:
            return Sent(True)
        if self.read_timeout and time.monotonic() - started >= self.read_timeout * 0.9:
            waited = f"{self.read_timeout:g}s"
            return Sent(False, f"no answer within {waited}; the message may have arrived", True)
        return Sent(False, self.why(started))

    def why(self, started: float) -> str:
        """A failed send in words, from what apprise logged about this host while it
        tried: a connection that failed never reached the service, which is not the
        service saying no."""
        host = getattr(self.plugin, "host", None)
        heard = [m for t, m in list(_HEARD) if t >= started and host and host in m]
        said = Masker(url_secrets(self.url)).mask(" ".join(" ".join(heard).split()))[:200]
        if any("connection" in line.lower() for line in heard):
            return f"could not connect to the service ({said})"
        if heard:
            return f"the service did not accept the message ({said})"
        return "the service did not accept the message"


def validate_url(url: str) -> str | None:
    """None when the URL makes a service; else a reason that does not repeat it."""
    if "://" not in url:
        return "not a URL: expected SCHEME://..., e.g. tgram://TOKEN/CHAT_ID"
    if url.rstrip("/") == "console:":
        return None  # watcher's own service: nothing to ask apprise (or to import it for)
    if Service(url).ok:
        return None
    return f"apprise cannot use this '{_scheme(url)}://' URL; check it against apprise's docs"


def masked(url: str) -> str:
    """apprise's privacy form of a URL, with every token-like part masked too."""
    return Service(url).privacy_url()


def renders_markdown(url: str) -> bool:
    """Services that render markdown (Telegram, Slack, Discord, Matrix), or ``?format=markdown``."""
    if _scheme(url) in MARKDOWN_SCHEMES:
        return True
    return _query(url).get("format", [""])[0].lower() == "markdown"


def send(url: str, message: Message) -> tuple[bool, str]:
    """A one-off send (a test message, a warning past the outbox); never raises."""
    sent = Service(url).send(message)
    return sent.ok, sent.error
