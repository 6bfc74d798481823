"""Every secret and every mask in one place.

- ``Masker``: replaces known secrets in any text. Logs, HTTP errors, apprise URLs,
  heartbeat URLs and Telegram replies are all masked by one of these.
- ``url_secrets``: the token-like parts of a URL (apprise channels, heartbeat pings).
- ``MASKER``: the process-wide masker of the log pipeline. A secret enters it where it
  enters memory: settings, which hold them in pydantic's ``SecretStr``
  (``watcher.core.logs.configure``), and the rules file's ``${VAR}``s and URLs
  (``watcher.config.resolve``).

A secret is replaced where it stands as a token, never inside an ordinary word: a
heartbeat URL ``.../ping/<uuid>`` makes ``ping`` a secret, and "stopping" must still
read "stopping". A long secret (``WHOLE_ONLY_BELOW`` characters or more) is random
enough to be masked wherever it occurs; a shorter one only where it stands whole,
between characters that are not letters or digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

from watcher.core.text import printable

MASK = "***"
MIN_LENGTH = 4  # shorter values would mask unrelated text and protect nothing
WHOLE_ONLY_BELOW = 16
_WORD = "A-Za-z0-9"
USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:]+:[^\s/@]+@")
QUERY_SECRET = re.compile(
    r"(?i)([?&](?:token|key|apikey|api_key|secret|password|pass|auth|webhook)=)[^&\s\"']+"
)
HEADER_VALUE = re.compile(r"""([?&](?:\+|%2[bB])[^=&\s]+=)[^&\s"']*""")  # apprise's +Header=
_HOST = re.compile(r"^[A-Za-z0-9.-]*(?::\d+)?$")
TOPIC_SCHEMES = frozenset({"ntfy", "ntfys"})  # whoever knows the topic reads the messages


def _pattern(secret: str) -> str:
    """The secret as a regex: anywhere if long, else only where it stands as a token."""
    body = re.escape(secret)
    if len(secret) >= WHOLE_ONLY_BELOW:
        return body
    head = f"(?<![{_WORD}])" if secret[0].isalnum() else ""
    tail = f"(?![{_WORD}])" if secret[-1].isalnum() else ""
    return head + body + tail


class Masker:
    """Replaces known secrets, URL credentials, secret-named query values and apprise's
    ``+Header=value`` in any text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: dict[str, str] = {}
        self._regex: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None, replacement: str = MASK) -> None:
        """A secret; a URL (an apprise URL, a heartbeat ping, a proxy) brings its token-like
        parts along, so its password or token is masked where it appears alone too."""
        if not secret or len(secret) < MIN_LENGTH:
            return
        if self._secrets.get(secret) != replacement:
            self._secrets[secret] = replacement
            self._regex = None
        if "://" in secret:
            for part in url_secrets(secret):
                self.add(part, replacement)

    def clear(self) -> None:
        self._secrets.clear()
        self._regex = None

    def mask(self, text: str) -> str:
        if self._secrets:
            if self._regex is None:
                ordered = sorted(self._secrets, key=len, reverse=True)  # longest first
                self._regex = re.compile("|".join(_pattern(s) for s in ordered))
            text = self._regex.sub(lambda m: self._secrets[m.group(0)], text)
        text = USERINFO.sub(rf"\1{MASK}:{MASK}@", text)
        text = HEADER_VALUE.sub(rf"\1{MASK}", text)
        return QUERY_SECRET.sub(rf"\1{MASK}", text)

    __call__ = mask

    def short(self, text: object, limit: int = 200) -> str:
        """One printable line of at most ``limit`` characters, masked first so no cut
        hides a key: how anything an outsider said is shown."""
        return self.mask(printable(str(text)))[:limit]


def url_secrets(url: str) -> list[str]:
    """Parts of a URL that could be tokens: credentials, path parts, query values, headers
    (in their encoded and decoded forms), and an ntfy topic in the host position."""
    parts = urlsplit(url)
    found = [parts.password or ""]
    if parts.password:
        found.append(parts.username or "")
    host = parts.netloc.rsplit("@", 1)[-1]
    topic = parts.scheme.lower() in TOPIC_SCHEMES
    if (len(host) >= 12 and not _HOST.match(host)) or topic:
        found.append(host.rsplit(":", 1)[0] if topic else host)
    found += [p for p in parts.path.split("/") if len(p) >= MIN_LENGTH]
    for key, values in parse_qs(parts.query).items():
        for value in values:
            if key.startswith("+") or len(value) >= 8:
                found += [value, quote(value), quote_plus(value), quote(value, safe="")]
    found += [m.group(0).split("=", 1)[1] for m in HEADER_VALUE.finditer("?" + parts.query)]
    return sorted({s for s in found if len(s) >= MIN_LENGTH}, key=len, reverse=True)


MASKER = Masker()
