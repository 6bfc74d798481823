"""Signed-by-header HTTP client for ``GET /v1/getAssetsOverview``.

Retries live in urllib3's ``Retry`` (connection errors, read timeouts, 429 and
5xx, honouring ``Retry-After``); a deadline keeps all of them inside one poll
interval so a slow exchange can never stack polls up.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests
from pydantic import TypeAdapter, ValidationError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from watcher.errors import (
    AuthError,
    BadResponse,
    ExchangeError,
    NetworkMismatch,
    RateLimited,
    TransportError,
)
from watcher.models import Balance, Overview, Totals
from watcher.settings import Settings

PATH = "/getAssetsOverview"
EXCHANGE_AUTH_CODES = {401, 402, 602}
EXCHANGE_RATE_CODES = {510}
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
WEB_KEY_HINT = (
    "the MEXC web key may have expired (it lives 5 days and dies on logout): "
    "log in to MEXC again and update WATCHER_WEB_KEY"
)
API_KEY_HINT = "check WATCHER_API_KEY (your MEXC Bypass API subscription key)"

_ROWS = TypeAdapter(list[Balance])


class DeadlineRetry(Retry):
    """``Retry`` that gives up rather than wait past ``deadline`` (monotonic seconds)."""

    deadline: float = float("inf")

    def new(self, **kw: Any) -> DeadlineRetry:
        fresh = super().new(**kw)
        fresh.deadline = self.deadline
        return fresh

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, **kw):  # type: ignore[no-untyped-def,override]
        fresh = super().increment(method, url, response, error, _pool, **kw)
        wait = None
        if response is not None and self.respect_retry_after_header:
            wait = fresh.get_retry_after(response)
        if wait is None:
            wait = fresh.get_backoff_time()
        if time.monotonic() + wait > self.deadline:
            reason = error or ResponseError("retry budget of one poll interval used up")
            raise MaxRetryError(_pool, url or "", reason)
        return fresh


def _retry(deadline: float) -> DeadlineRetry:
    retry = DeadlineRetry(
        total=6,
        connect=3,
        read=2,
        status=3,
        backoff_factor=0.5,
        backoff_max=30,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    retry.deadline = deadline
    return retry


class ExchangeClient:
    """One ``requests.Session`` with the wrapper's auth headers; returns ``Overview``."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] | None = None) -> None:
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._secrets = settings.secret_values()
        self._session = requests.Session()
        self._adapter = HTTPAdapter(max_retries=_retry(float("inf")))
        self._session.mount("http://", self._adapter)
        self._session.mount("https://", self._adapter)
        self._session.headers.update(self._headers(settings))
        read = settings.timeout.total_seconds()
        self._timeout = (min(3.0, read), read)
        self._host = urlsplit(settings.base_url).hostname or "?"

    @staticmethod
    def _headers(settings: Settings) -> dict[str, str]:
        headers = {
            "X-MEXC-BYPASS-API-KEY": settings.require_api_key(),
            "X-MEXC-NETWORK": settings.network,
            "Accept": "application/json",
            "User-Agent": "watcher/0.1",
        }
        if settings.web_key:
            headers["X-MEXC-WEB-KEY"] = settings.web_key.get_secret_value()
        if settings.proxy:
            headers["X-MEXC-PROXY"] = settings.proxy.get_secret_value()
        return headers

    def close(self) -> None:
        self._session.close()

    def overview(self, rows: bool, totals: bool) -> Overview:
        """Fetch what the rules need: rows, totals, or both (two requests)."""
        deadline = self._deadline()
        first = self.fetch(convert=rows, deadline=deadline) if rows else None
        second = self.fetch(convert=False, deadline=deadline) if totals else None
        base = first or second
        assert base is not None, "rules need neither rows nor totals"
        if first and second:
            return first.model_copy(update={"totals": second.totals})
        return base

    def fetch(self, convert: bool, deadline: float | None = None) -> Overview:
        """One request; raises a subclass of ``ExchangeError`` on anything but success."""
        self._adapter.max_retries = _retry(deadline or self._deadline())
        url = self._settings.base_url + PATH
        params = {"convert": "true" if convert else "false"}
        try:
            response = self._session.get(url, params=params, timeout=self._timeout)
            body = response.content
        except requests.RequestException as exc:
            raise TransportError(
                f"cannot reach the exchange at {self._host}: {_reason(exc)}"
            ) from None
        return parse_response(
            response.status_code,
            body,
            convert=convert,
            network=self._settings.network,
            fetched_at=self._clock(),
            scrub=self._scrub,
            retry_after=response.headers.get("Retry-After"),
        )

    def _deadline(self) -> float:
        budget = self._settings.interval.total_seconds() - sum(self._timeout)
        return time.monotonic() + max(budget, 0.0)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _reason(exc: requests.RequestException) -> str:
    text = str(exc).lower()
    if isinstance(exc, requests.Timeout) or "timed out" in text or "timeout" in text:
        return "timed out"
    if isinstance(exc, requests.exceptions.RetryError):
        return "gave up after repeated errors"
    if "refused" in text:
        return "connection refused"
    if "reset" in text or "aborted" in text or "remote end closed" in text:
        return "connection reset"
    if "name or service" in text or "resolve" in text or "nodename" in text:
        return "host name not found"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "answer cut off mid-transfer"
    return type(exc).__name__


def _short(text: object, scrub: Callable[[str], str]) -> str:
    cleaned = " ".join(str(text).split())
    return scrub(cleaned[:200])


def parse_response(
    status: int,
    body: bytes,
    *,
    convert: bool,
    network: str,
    fetched_at: datetime,
    scrub: Callable[[str], str] = str,
    retry_after: str | None = None,
) -> Overview:
    """Turn one HTTP answer into an ``Overview`` or the precise error class."""
    document = _decode(status, body, scrub)
    if not 200 <= status < 300 or document.get("success") is False:
        raise _wrapper_error(status, document, scrub, retry_after)
    _check_code(document, scrub)
    is_testnet = document.get("is_testnet")
    if not isinstance(is_testnet, bool):
        raise BadResponse("field 'is_testnet' is missing or not true/false")
    if is_testnet != (network == "TESTNET"):
        served = "TESTNET" if is_testnet else "MAINNET"
        raise NetworkMismatch(
            f"asked for {network} but the exchange served {served} balances; "
            "these are not your real numbers (check WATCHER_NETWORK)"
        )
    timestamp = document.get("timestamp")
    stamp = timestamp if isinstance(timestamp, int) else None
    data = document.get("data")
    try:
        if convert:
            if not isinstance(data, list):
                raise BadResponse("field 'data' should be a list of currencies for convert=true")
            rows = _ROWS.validate_python(data)
            currencies = {row.currency.upper(): row for row in rows}
            return Overview(
                fetched_at=fetched_at, is_testnet=is_testnet, timestamp=stamp, currencies=currencies
            )
        if not isinstance(data, dict):
            raise BadResponse("field 'data' should be an object of totals for convert=false")
        totals = Totals.model_validate(data)
    except ValidationError as exc:
        raise BadResponse(_field_error(exc)) from None
    return Overview(fetched_at=fetched_at, is_testnet=is_testnet, timestamp=stamp, totals=totals)


def _decode(status: int, body: bytes, scrub: Callable[[str], str]) -> dict[str, Any]:
    try:
        document = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        text = body.lstrip()[:15].lower()
        if text.startswith((b"<!doctype", b"<html", b"<")):
            kind = "an HTML page"
        elif not body.strip():
            kind = "an empty body"
        elif isinstance(exc, json.JSONDecodeError) and (
            exc.pos >= len(body.rstrip()) - 1 or exc.msg.startswith("Unterminated string")
        ):
            kind = "truncated JSON"
        else:
            kind = "not JSON"
        if status >= 500:
            raise TransportError(f"exchange returned HTTP {status} with {kind}") from None
        if status in (401, 403):
            raise AuthError(
                f"exchange refused access (HTTP {status}): {API_KEY_HINT}", status
            ) from None
        if status == 429:
            raise RateLimited("exchange asked us to slow down (HTTP 429)", 429) from None
        raise BadResponse(f"response is {kind} (HTTP {status})") from None
    if not isinstance(document, dict):
        raise BadResponse(f"response should be a JSON object, got {type(document).__name__}")
    return document


def _wrapper_error(
    status: int, document: dict[str, Any], scrub: Callable[[str], str], retry_after: str | None
) -> ExchangeError:
    code = document.get("code") if isinstance(document.get("code"), int) else status
    message = _short(document.get("message") or document.get("msg") or "no message", scrub)
    if status in (401, 403) or code in (401, 403):
        return AuthError(
            f"the MEXC Bypass API refused the request ({code}: {message}): {API_KEY_HINT}", code
        )
    if status == 429 or code == 429:
        wait = f", retry after {retry_after}s" if retry_after else ""
        return RateLimited(f"exchange asked us to slow down (HTTP 429: {message}{wait})", code)
    if status >= 500:
        return TransportError(f"exchange returned HTTP {status}: {message}", code)
    return ExchangeError(f"exchange error {code}: {message}", code)


def _check_code(document: dict[str, Any], scrub: Callable[[str], str]) -> None:
    code = document.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        raise BadResponse("field 'code' is missing or not a number")
    if code == 0:
        return
    message = _short(document.get("msg") or document.get("message") or "no message", scrub)
    if code in EXCHANGE_AUTH_CODES:
        raise AuthError(f"MEXC refused the credentials ({code}: {message}): {WEB_KEY_HINT}", code)
    if code in EXCHANGE_RATE_CODES:
        raise RateLimited(f"exchange asked us to slow down ({code}: {message})", code)
    raise ExchangeError(f"exchange error {code}: {message}", code)


def _field_error(exc: ValidationError) -> str:
    first = exc.errors(include_input=False, include_url=False)[0]
    path = "data" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    count = exc.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    return f"field {path}: {first['msg']}{more}"
