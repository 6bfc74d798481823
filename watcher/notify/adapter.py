"""All apprise use in one place: building a service from a URL, masking it, sending.

apprise's own ``Apprise.instantiate`` imports all of its ~217 plugin modules
the first time it is asked anything (about 11 MB). The services people use
most are built here from their one plugin module instead; any other scheme
falls back to apprise's full load, which is always correct, only heavier.
``console://`` is watcher's own service, registered in the same table.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from watcher.core.secrets import Masker, url_secrets

# scheme -> (module under apprise.plugins, class): the fast path.
FAST_PLUGINS: dict[str, tuple[str, str]] = {
    "tgram": ("telegram", "NotifyTelegram"),
    "json": ("custom_json", "NotifyJSON"),
    "jsons": ("custom_json", "NotifyJSON"),
    "form": ("custom_form", "NotifyForm"),
    "forms": ("custom_form", "NotifyForm"),
    "mailto": ("email", "NotifyEmail"),
    "mailtos": ("email", "NotifyEmail"),
    "slack": ("slack", "NotifySlack"),
    "discord": ("discord", "NotifyDiscord"),
    "ntfy": ("ntfy", "NotifyNtfy"),
    "ntfys": ("ntfy", "NotifyNtfy"),
}
INFO, SUCCESS, WARNING, FAILURE = "info", "success", "warning", "failure"  # apprise's types
MARKDOWN_SCHEMES = frozenset({"tgram", "slack", "discord", "matrix", "matrixs"})


class ConsoleService:
    """``console://``: print the message; the demo and first-time users read it here."""

    def __init__(self, url: str) -> None:
        self.text = url

    def url(self, privacy: bool = False) -> str:
        return "console://"

    def notify(self, body: str, title: str = "", notify_type: str = INFO, **kw: Any) -> bool:
        """Severity as a word (``[critical]``), not apprise's notify type."""
        label = kw.get("severity") or notify_type
        stream = sys.stdout
        stream.write(f"[{label}] {title}\n{body}\n" if title else f"{body}\n")
        stream.flush()
        return True


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _plugin(scheme: str) -> Any:
    module, name = FAST_PLUGINS[scheme]
    return getattr(importlib.import_module(f"apprise.plugins.{module}"), name)


def instantiate(url: str) -> Any:
    """A service for ``url`` (None if it is not usable), splitting long texts.

    apprise's complaints about a URL would print the URL itself, so its logger
    is muted while the URL is parsed.
    """
    scheme = _scheme(url)
    if scheme == "console":
        return ConsoleService(url)
    logger = logging.getLogger("apprise")
    quiet, logger.disabled = logger.disabled, True
    try:
        service = _build(url, scheme)
    finally:
        logger.disabled = quiet
    if service is None:
        return None
    if "overflow" not in parse_qs(urlsplit(url).query):
        from apprise.common import OverflowMode

        service.overflow_mode = OverflowMode.SPLIT
    return service


def _build(url: str, scheme: str) -> Any:
    if scheme not in FAST_PLUGINS:
        import apprise

        return apprise.Apprise.instantiate(url)
    plugin = _plugin(scheme)
    results = plugin.parse_url(url)
    if not results:
        return None
    try:
        return plugin(**results)
    except Exception:  # apprise raises TypeError and friends for a bad token or target
        return None


def validate_url(url: str) -> str | None:
    """None when the URL makes a service; else a reason that does not repeat it."""
    if instantiate(url) is not None:
        return None
    if "://" not in url:
        return "not a URL: expected SCHEME://..., e.g. tgram://TOKEN/CHAT_ID"
    return f"apprise cannot use this '{_scheme(url)}://' URL; check it against apprise's docs"


def masked(url: str) -> str:
    """apprise's privacy form of a URL, with every token-like part masked too."""
    service = instantiate(url)
    text = str(service.url(privacy=True)) if service else urlsplit(url).scheme + "://***"
    return Masker(url_secrets(url)).mask(text)


def renders_markdown(url: str) -> bool:
    """Services that render markdown (Telegram, Slack, Discord, Matrix), or ``?format=markdown``."""
    if _scheme(url) in MARKDOWN_SCHEMES:
        return True
    return parse_qs(urlsplit(url).query).get("format", [""])[0].lower() == "markdown"


@dataclass(frozen=True)
class Message:
    """One message for one URL: its markdown form, if any, and its plain form."""

    title: str
    plain: str
    kind: str  # apprise's notify type, for icons and colours
    severity: str  # the word a person reads
    markdown: str | None = None


def send(url: str, message: Message) -> tuple[bool, str]:
    """One send; never raises. Markdown first where the service renders it; a refusal is
    retried once as plain text, so a formatting problem never loses the message."""
    service = instantiate(url)
    if service is None:
        return False, "apprise rejected the URL"
    if message.markdown is not None:
        ok, error = _notify(service, message, message.markdown, "markdown")
        if ok:
            return ok, error
    return _notify(service, message, message.plain, "text")


def _notify(service: Any, message: Message, body: str, body_format: str) -> tuple[bool, str]:
    extra = {"severity": message.severity} if isinstance(service, ConsoleService) else {}
    try:
        ok = bool(
            service.notify(
                body=body,
                title=message.title,
                notify_type=message.kind,
                body_format=body_format,
                **extra,
            )
        )
    except Exception as exc:  # a plugin bug must not kill delivery
        return False, f"{type(exc).__name__}: {exc}"
    return ok, "" if ok else "the service did not accept the message"
