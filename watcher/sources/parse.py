"""From a decoded answer to an ``Overview``: the shape of ``data`` decides, rows one by one.

One bad row must not blind the poll: a row that fails validation, or two rows
for the same currency in any letter case, make that currency "no data" (its
rules keep their state) while every other currency evaluates. Only an
envelope that cannot be read fails the whole poll.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any, TypeVar

from watcher.core.errors import AuthError, BadResponse, ExchangeError, RateLimited
from watcher.core.models import ROW_FIELDS, WALLETS, Balance, Overview, Totals, amount, in_range
from watcher.core.text import currency_code

AUTH_CODES = frozenset({401, 402, 602})
RATE_CODES = frozenset({510})
T = TypeVar("T")
KNOWN_ROW_KEYS = frozenset({"currency", "coinId", *ROW_FIELDS})


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
    scrubbed and shortened by the source's ``Masker.short``."""
    return scrub(document.get("msg") or document.get("message") or "no message")


class BadField(ValueError):
    """Fields of one row or object that cannot be read: the first named, the rest counted."""


def amounts(item: dict[str, Any], names: tuple[str, ...], where: str) -> list[Decimal]:
    """Every named amount of ``item`` in order, or ``BadField`` naming the first bad one.

    The usual row (all strings, all sane) is converted in a few C-level passes; any
    doubt at all takes the careful path, which says exactly what is wrong."""
    try:
        values = itemgetter(*names)(item) if len(names) > 1 else (item[names[0]],)
        if "_" not in "".join(values):  # TypeError unless every value is text
            numbers = list(map(Decimal, values))
            if in_range(numbers):  # a NaN raises
                return numbers
    except (KeyError, TypeError, ArithmeticError):
        pass
    return _checked_amounts(item, names, where)


def _checked_amounts(item: dict[str, Any], names: tuple[str, ...], where: str) -> list[Decimal]:
    found: list[Decimal] = []
    problems: list[str] = []
    for name in names:
        if name not in item:
            problems.append(f"{where}.{name}: missing")
            continue
        try:
            found.append(amount(item[name]))
        except ValueError as exc:
            problems.append(f"{where}.{name}: {exc}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BadField(f"field {problems[0]}{more}")
    return found


def balance_from(item: dict[str, Any], code: str, where: str = "data") -> Balance:
    """One currency row, its code already read (and upper-cased) by the caller."""
    coin = item.get("coinId")
    values = amounts(item, ROW_FIELDS, where)
    return Balance(*values, currency=code, coinId=coin if isinstance(coin, str) else None)


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
            rows[code] = balance_from(item, code, f"data[{index}]")
        except BadField as exc:
            problems.append(f"{code}: {exc}; no data this poll")
            bad.add(code)
    return Rows(rows, frozenset(bad), complete, tuple(problems))


def _code_of(item: Any) -> str | None:
    """A plain currency code (``BTC``, ``1INCH``): a code with a newline, an escape or a
    bidi override could forge a line of a notification, so it is no code at all."""
    return currency_code(item.get("currency")) if isinstance(item, dict) else None


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


ROWS, TOTALS = "rows", "totals"


def overview_from(
    data: Any,
    fetched_at: datetime,
    is_testnet: bool | None,
    timestamp: Any,
    asked: str | None = None,
) -> Overview:
    """Rows when ``data`` is a list, totals when it is an object; anything else is an error.

    A request that ``asked`` for rows and got totals is a bad answer: read as it stands,
    it would be an account without a single currency, every balance zero. The other way
    round is read as it stands (a Bypass gateway answers rows to a totals request when
    PHP reads ``convert=false`` as true), and only adds currencies."""
    if asked == ROWS and isinstance(data, dict):
        raise BadResponse("currencies were asked for, but field 'data' holds account totals")
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
            totals = Totals(*amounts(data, WALLETS, "data"))
        except BadField as exc:
            raise BadResponse(str(exc)) from None
        return Overview(
            fetched_at=fetched_at, is_testnet=is_testnet, timestamp=stamp, totals=totals
        )
    raise BadResponse("field 'data' should be a list of currencies or an object of totals")


def plan(rows: bool, totals: bool, for_rows: T, for_totals: T) -> list[T]:
    """The requests of one poll: rows if asked, totals if asked (or if nothing was)."""
    return ([for_rows] if rows else []) + ([for_totals] if totals or not rows else [])


def fetch_overview(rows: bool, totals: bool, get: Callable[[str], Overview]) -> Overview:
    """One poll's requests (``get(ROWS)``, ``get(TOTALS)``), merged; an empty list of
    currencies is settled against the account total before anyone reads it as zero."""
    merged = merge([get(kind) for kind in plan(rows, totals, ROWS, TOTALS)])
    if rows and merged.currencies == {} and not merged.nodata and merged.complete:
        merged = settle_empty(merged, merged.totals or get(TOTALS).totals)
    return merged


def settle_empty(overview: Overview, totals: Totals | None) -> Overview:
    """``"data": []`` means an empty account only when the exchange's own total agrees
    (it is zero). Otherwise every currency is no data this poll: its rules keep their
    state, so an answer that lost its rows can never fire "USDT spot below 100"."""
    if totals is not None and totals.total.is_zero():
        return overview
    said = "unreadable" if totals is None else "not zero"
    problem = f"the exchange listed no currency while the account total is {said}"
    return replace(overview, complete=False, problems=(*overview.problems, problem))


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
        merged = replace(merged, **update)
    return merged
