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
import re
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

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
    """apprise's privacy form of a URL, with token-like parts we know of masked too."""
    service = instantiate(url)
    text = str(service.url(privacy=True)) if service else urlsplit(url).scheme + "://***"
    for secret in secrets_of(url):
        text = text.replace(secret, "***")
    return HEADER_VALUE.sub(r"\1***", text)


_HOST = re.compile(r"^[A-Za-z0-9.-]*(?::\d+)?$")
HEADER_VALUE = re.compile(r"""([?&](?:\+|%2[bB])[^=&\s]+=)[^&\s"']*""")  # apprise's +Header=value
TOPIC_SCHEMES = frozenset({"ntfy", "ntfys"})  # whoever knows the topic reads the messages


def secrets_of(url: str) -> list[str]:
    """Parts of a URL that could be tokens: credentials, path parts, query values, headers
    (in their encoded and decoded forms), and an ntfy topic in the host position."""
    parts = urlsplit(url)
    found = [parts.password or ""]
    if parts.password:
        found.append(parts.username or "")
    host = parts.netloc.rsplit("@", 1)[-1]
    if (len(host) >= 12 and not _HOST.match(host)) or parts.scheme.lower() in TOPIC_SCHEMES:
        found.append(host.rsplit(":", 1)[0] if parts.scheme.lower() in TOPIC_SCHEMES else host)
    found += [p for p in parts.path.split("/") if len(p) >= 4]
    for key, values in parse_qs(parts.query).items():
        for value in values:
            if key.startswith("+") or len(value) >= 8:
                found += [value, quote(value), quote_plus(value), quote(value, safe="")]
    raw = [m.group(0).split("=", 1)[1] for m in HEADER_VALUE.finditer("?" + parts.query)]
    found += raw
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


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
