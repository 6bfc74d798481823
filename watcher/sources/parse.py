"""From a decoded answer to an ``Overview``: the shape of ``data`` decides, rows one by one.

One bad row must not blind the poll: a row that fails validation, or two rows
for the same currency in any letter case, make that currency "no data" (its
rules keep their state) while every other currency evaluates. Only an
envelope that cannot be read fails the whole poll.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from watcher.errors import AuthError, BadResponse, ExchangeError, RateLimited
from watcher.models import ORIGIN_WALLETS, WALLETS, Balance, Overview, Totals

AUTH_CODES = frozenset({401, 402, 602})
RATE_CODES = frozenset({510})
T = TypeVar("T")
KNOWN_ROW_KEYS = frozenset({"currency", "coinId", *WALLETS, *ORIGIN_WALLETS})


def code_error(code: int, message: str, auth_hint: str) -> ExchangeError:
    """MEXC's codes, whichever envelope carried them."""
    if code in AUTH_CODES:
        return AuthError(f"MEXC refused the credentials ({code}: {message}): {auth_hint}", code)
    if code in RATE_CODES:
        return RateLimited(f"exchange asked us to slow down ({code}: {message})", code)
    return ExchangeError(f"exchange error {code}: {message}", code)


def integer(value: Any) -> int | None:
    """A JSON integer, or None: ``true`` is an int to Python but never a code or a time."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def message_of(document: dict[str, Any], scrub: Callable[[str], str]) -> str:
    """The exchange's own words (``msg`` in MEXC's envelope, ``message`` in a gateway's),
    scrubbed and shortened by the source's ``Scrubber.short``."""
    return scrub(document.get("msg") or document.get("message") or "no message")


def field_error(exc: ValidationError, prefix: str = "data") -> str:
    first = exc.errors(include_input=False, include_url=False)[0]
    path = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    count = exc.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    return f"field {path}: {first['msg']}{more}"


@dataclass(frozen=True)
class Rows:
    good: dict[str, Balance]  # by upper-case code
    bad: frozenset[str]  # codes whose row could not be read
    complete: bool  # False when some row named no currency at all
    problems: tuple[str, ...]  # one line per bad row


def parse_rows(data: list[Any]) -> Rows:
    """Each row on its own: a bad one makes its currency no data, not the poll a failure.

    A row that names no currency could be any currency: the caller then treats
    every currency it did not read as no data, never as zero.
    """
    fast = _all_good(data)
    if fast is not None:
        return fast
    rows: dict[str, Balance] = {}
    bad: set[str] = set()
    problems: list[str] = []
    complete = True
    for index, item in enumerate(data):
        code = _code_of(item)
        if code is None:
            complete = False
            problems.append(
                f"row {index} has no readable currency code; currencies not listed are no data"
            )
            continue
        if code in rows or code in bad:
            if code not in bad:
                problems.append(f"{code}: two rows for the same currency; no data this poll")
            bad.add(code)
            rows.pop(code, None)
            continue
        try:
            row = Balance.model_validate(item)
        except ValidationError as exc:
            problems.append(f"{code}: {field_error(exc, f'data[{index}]')}; no data this poll")
            bad.add(code)
            continue
        rows[code] = row.model_copy(update={"currency": code}) if row.currency != code else row
    return Rows(rows, frozenset(bad), complete, tuple(problems))


def _all_good(data: list[Any]) -> Rows | None:
    """The usual answer, validated in one pass (twice as fast); None when any row is odd."""
    try:
        rows = _ROWS.validate_python(data)
    except ValidationError:
        return None
    good = {row.currency.upper(): row for row in rows}
    if len(good) != len(rows) or any(code != row.currency for code, row in good.items()):
        return None  # duplicates or lower case: the careful path says which
    return Rows(good, frozenset(), True, ())


_ROWS = TypeAdapter(list[Balance])


def _code_of(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    code = item.get("currency")
    if not isinstance(code, str) or not code.strip() or len(code) > 32:
        return None
    return code.strip().upper()


def unknown_keys(data: Any) -> set[str]:
    """Wallet names we do not read (say ``financial``): logged once, never dropped silently."""
    items = data if isinstance(data, list) else [data]
    found: set[str] = set()
    for item in items:
        if isinstance(item, dict):
            found |= {str(k) for k, v in item.items() if k not in KNOWN_ROW_KEYS and _amount(v)}
    return found


def _amount(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | Decimal | float):
        return True
    return isinstance(value, str) and _NUMBER.fullmatch(value.strip()) is not None


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def overview_from(
    data: Any,
    fetched_at: datetime,
    is_testnet: bool | None,
    timestamp: Any,
) -> Overview:
    """Rows when ``data`` is a list, totals when it is an object; anything else is an error."""
    stamp = integer(timestamp)
    if isinstance(data, list):
        rows = parse_rows(data)
        return Overview(
            fetched_at=fetched_at,
            is_testnet=is_testnet,
            timestamp=stamp,
            currencies=rows.good,
            nodata=rows.bad,
            complete=rows.complete,
            problems=rows.problems,
        )
    if isinstance(data, dict):
        try:
            totals = Totals.model_validate(data)
        except ValidationError as exc:
            raise BadResponse(field_error(exc)) from None
        return Overview(
            fetched_at=fetched_at, is_testnet=is_testnet, timestamp=stamp, totals=totals
        )
    raise BadResponse("field 'data' should be a list of currencies or an object of totals")


def plan(rows: bool, totals: bool, for_rows: T, for_totals: T) -> list[T]:
    """The requests of one poll: rows if asked, totals if asked (or if nothing was)."""
    return ([for_rows] if rows else []) + ([for_totals] if totals or not rows else [])


def merge(parts: list[Overview]) -> Overview:
    """One overview from the answers of one poll, whatever each turned out to hold."""
    if not parts:
        raise ValueError("fetch needs rows, totals or both")
    merged = parts[0]
    for part in parts[1:]:
        update: dict[str, Any] = {}
        if part.currencies is not None:
            update |= {
                "currencies": part.currencies,
                "nodata": part.nodata,
                "complete": part.complete,
            }
            update["problems"] = merged.problems + part.problems
        if part.totals is not None:
            update["totals"] = part.totals
        merged = merged.model_copy(update=update)
    return merged
