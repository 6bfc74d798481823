"""Redacted captures: real answers a user can hand over without handing over anything.

``watcher record --redact`` writes each HTTP answer the web sources receive as one JSON
line: the path (never the query), the status, the headers that matter, and the body
with every amount replaced by a stand-in. A stand-in keeps what the parsers care about:
its sign, its type (a string stays a string, a JSON number a number), its scale (the
digits after the point) and its zero-ness; the digits themselves are drawn from a key
made for this run and forgotten, and the same amount always gets the same stand-in
within a capture, so sums and equal fields stay recognisable. Field names, shapes,
codes, currency codes, messages and the headers listed below stay as they are.
Strings that are neither amounts nor codes nor messages become ``"<redacted>"``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from watcher.net.client import Answer

KEPT_HEADERS = ("Content-Type", "Content-Encoding", "Date", "Retry-After", "Location", "Server")
KEPT_NUMBERS = frozenset(  # codes and kinds, not amounts: they stay as sent
    {"code", "positionType", "openType", "state", "leverage", "timestamp", "success"}
)
KEPT_TEXT = frozenset({"msg", "message", "currency", "coin", "symbol", "settleCoin", "code"})
_CODE = re.compile(r"[A-Z0-9][A-Z0-9_.-]{0,31}")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


class Redactor:
    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or secrets.token_bytes(32)  # this run's, never written anywhere

    def line(self, url: str, answer: Answer) -> str:
        """One capture line for one answer."""
        headers = {k: answer.headers[k] for k in KEPT_HEADERS if k in answer.headers}
        if "Location" in headers:  # where a redirect points: the host alone
            headers["Location"] = urlsplit(headers["Location"]).hostname or "?"
        try:
            body: Any = self.value(json.loads(answer.body, parse_float=Decimal))
        except (ValueError, UnicodeDecodeError):
            kind = "html" if answer.looks_html() else "not JSON"
            body = f"<{kind}, {len(answer.body)} bytes>"
        entry = {"path": urlsplit(url).path, "status": answer.status, "headers": headers}
        return dumps({**entry, "body": body})

    def value(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | Decimal):
            return value if key in KEPT_NUMBERS else self.number(Decimal(value), int)
        if isinstance(value, str):
            if _NUMBER.fullmatch(value.strip()):
                return str(self.number(Decimal(value.strip()), str))
            if key in KEPT_TEXT or _CODE.fullmatch(value):
                return value
            return "<redacted>"
        return value

    def number(self, amount: Decimal, kind: type) -> Any:
        """A stand-in with the same sign, scale, zero-ness and count of integer digits."""
        if amount.is_zero():
            return amount if kind is not int else int(amount)
        text = format(abs(amount), "f")
        whole, _, fraction = text.partition(".")
        digest = hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()
        digits = iter(str(int(c, 16) % 10) for c in digest * 4)
        new_whole = "".join(next(digits) for _ in whole).lstrip("0") or "0"
        if whole == "0":
            new_whole = "0"  # 0.0115 stays below one: the magnitude is what parsers see
        elif new_whole == "0" or len(new_whole) < len(whole):
            new_whole = "1" + new_whole[1:].rjust(len(whole) - 1, "0")  # as many digits
        new_fraction = "".join(next(digits) for _ in fraction)
        if new_whole == "0" and fraction and set(new_fraction) == {"0"}:
            new_fraction = new_fraction[:-1] + "1"  # never zero where the original was not
        sign = "-" if amount < 0 else ""
        stand_in = Decimal(f"{sign}{new_whole}" + (f".{new_fraction}" if fraction else ""))
        if kind is int and not fraction:
            return int(stand_in)
        return stand_in


_MARK = re.compile(r'"@decimal:(-?[0-9.]+)@"')


def dumps(value: Any) -> str:
    """JSON with each Decimal written as the number it is (never through a float)."""

    def marked(item: Any) -> str:
        if isinstance(item, Decimal):
            return f"@decimal:{format(item, 'f')}@"
        raise TypeError(type(item).__name__)

    return _MARK.sub(r"\1", json.dumps(value, default=marked, ensure_ascii=False))


def answers(path: Path) -> Iterator[tuple[str, Answer]]:
    """A capture file's answers again, for the sources' own parsers."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        entry = json.loads(line, parse_float=Decimal)
        body = entry["body"]
        raw = body.encode() if isinstance(body, str) else dumps(body).encode()
        yield entry["path"], Answer(int(entry["status"]), raw, dict(entry.get("headers") or {}))
