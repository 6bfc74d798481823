"""MEXC directly, with the web key, as the vendor's now-open SDK does.

Two ``www.mexc.com`` endpoints, no signature: the web key (the ``u_id`` cookie
of a logged-in session) goes as the ``u_id``/``uc_token`` cookie and as
``Ucenter-Token``. Browser-like headers keep Akamai, MEXC's web front, from
refusing us; a 403 HTML page is that front, not the key, and the error says so.
TLS is verified (the SDK turns it off; we do not) and no redirect is followed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from watcher.core import logs
from watcher.core.errors import (
    AuthError,
    BadResponse,
    Blocked,
    ExchangeError,
    RateLimited,
    TransportError,
)
from watcher.core.models import Overview
from watcher.core.secrets import Masker
from watcher.net.browser import BrowserClient
from watcher.net.browser import available as browser_tls
from watcher.net.client import BACKOFF, Answer, HttpClient, decode_json
from watcher.sources.futures import (
    DETAIL_PATH,
    POSITIONS_PATH,
    TICKER_PATH,
    ContractSizes,
    fair_prices,
    positions_from,
    signed_headers,
    with_positions,
)
from watcher.sources.parse import (
    ROWS,
    TOTALS,
    code_error,
    fetch_overview,
    integer,
    message_of,
    overview_from,
    unknown_keys,
)

ROWS_PATH = "/api/platform/asset/api/asset/overview/convert/v2"
TOTALS_PATH = "/api/platform/asset/api/asset/overview/v2"
WEB_KEY_HINT = (
    "log in to MEXC again and update the web key (credential `web_key` or `WATCHER_WEB_KEY`)"
)
AKAMAI_HINT = (
    "MEXC's web front (Akamai) refused the request with HTTP 403: this is not your web key. "
    "It refuses some TLS handshakes (a browser's may pass: WATCHER_TLS=browser, with "
    "pip install 'watcher[browser-tls]') and some server addresses (a proxy on another "
    "address may pass: WATCHER_PROXY, http://, https:// or socks5://). In use now: {now}"
)
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
log = logs.get("watcher.source")


def browser_headers(origin: str, web_key: str) -> dict[str, str]:
    """What a logged-in browser tab sends to the asset page's API."""
    return {
        "Accept": "*/*",
        "Accept-Language": "en-US,en;q=0.9",
        "Content-Type": "application/json",
        "Origin": origin,
        "Referer": f"{origin}/assets",
        "User-Agent": USER_AGENT,
        "sec-ch-ua": '"Chromium";v="131", "Not_A Brand";v="24"',
        "sec-ch-ua-mobile": "?0",
        "sec-ch-ua-platform": '"Linux"',
        "Sec-Fetch-Dest": "empty",
        "Sec-Fetch-Mode": "cors",
        "Sec-Fetch-Site": "same-origin",
        "Cookie": f"u_id={web_key}; uc_token={web_key};",
        "Ucenter-Token": web_key,
    }


class MexcWebSource:
    """``fetch`` reads rows, totals or both from ``www.mexc.com`` with the web key."""

    def __init__(
        self,
        url: str,
        web_key: str,
        timeout: float,
        interval: float,
        clock: Callable[[], datetime],
        proxy: str | None = None,
        secrets: tuple[str, ...] = (),
        backoff: float = BACKOFF,
        futures_url: str = "https://futures.mexc.com",
        tls: str = "auto",
        ca_file: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.futures_url = futures_url.rstrip("/")
        self.web_key = web_key
        self.clock = clock
        self.scrub = Masker((web_key, proxy or "", *secrets))
        origin = "https://www.mexc.com" if "mexc.com" not in url else _origin(self.url)
        self.tls = tls
        self.headers = {
            "http": browser_headers(origin, web_key),
            "futures": {"User-Agent": USER_AGENT, "Accept": "application/json"},
        }
        self.options = {"proxy": proxy, "backoff": backoff, "ca_file": ca_file}
        self.limits = (timeout, interval)
        self.kind: type[HttpClient] = BrowserClient if tls == "browser" else HttpClient
        self.http = self.client("http")
        self._futures: HttpClient | None = None  # made when positions are first read
        self.sizes = ContractSizes()
        self.host = urlsplit(self.url).hostname or "?"
        self.proxied = bool(proxy)
        self._unknown: set[str] = set()

    def client(self, host: str) -> HttpClient:
        made = self.kind(self.headers[host], *self.limits, self.scrub, **self.options)  # type: ignore[arg-type]
        made.heard = getattr(getattr(self, "http", None), "heard", None)  # record listens on
        return made

    @property
    def futures(self) -> HttpClient:
        """The futures host's client, made on first use: most accounts never read positions,
        and a client per account costs memory at thousands of accounts."""
        if self._futures is None:
            self._futures = self.client("futures")
        return self._futures

    def open_clients(self, kind: type[HttpClient]) -> None:
        """Both hosts' clients with another handshake; what listened (record) keeps listening."""
        self.kind = kind
        old, self.http = self.http, self.client("http")
        old.close()
        if self._futures is not None:
            self._futures.close()
            self._futures = self.client("futures")

    def switch_handshake(self) -> bool:
        """``tls: auto`` after Akamai refused Python's handshake: a browser's from now on,
        when the extra is installed. True when it switched (the request goes again)."""
        if self.tls != "auto" or self.http.handshake == "browser" or not browser_tls():
            return False
        log.warning(
            "MEXC's web front refused Python's TLS handshake; a browser's is used from now on",
            host=self.host,
        )
        self.open_clients(BrowserClient)
        return True

    def in_use(self) -> str:
        """``Python's TLS handshake, direct`` / ``a browser's TLS handshake, via a proxy``."""
        shake = "a browser's" if self.http.handshake == "browser" else "Python's"
        return f"{shake} TLS handshake, {'via a proxy' if self.proxied else 'direct'}"

    def describe(self) -> str:
        via = " via a proxy" if self.proxied else ""
        shake = ", browser TLS" if self.http.handshake == "browser" else ""
        return f"MEXC web ({self.host}{via}, web key{shake})"

    def close(self) -> None:
        self.http.close()
        if self._futures is not None:
            self._futures.close()

    def fetch(self, rows: bool, totals: bool, positions: bool = False) -> Overview:
        deadline = self.http.deadline()
        paths = {ROWS: ROWS_PATH, TOTALS: TOTALS_PATH}

        def get(kind: str) -> Overview:
            def read() -> Overview:
                return self.parse(self.http.get(self.url + paths[kind], None, deadline), kind)

            try:
                return read()
            except Blocked:
                if not self.switch_handshake():
                    raise
                return read()  # once more, with a browser's handshake

        try:
            overview = fetch_overview(rows, totals, get)
            if positions:
                overview = with_positions(overview, lambda: self.positions(deadline))
            return overview
        finally:
            self.http.rest()
            if self._futures is not None:
                self._futures.rest()

    def positions(self, deadline: float) -> tuple[Any, ...]:
        """Open positions from the futures host, with fair prices and contract sizes."""
        held = self.futures_data(POSITIONS_PATH, deadline, signed=True)
        if not held:
            return ()
        if self.sizes.stale():
            self.sizes.keep(self.futures_data(DETAIL_PATH, deadline))
        prices = fair_prices(self.futures_data(TICKER_PATH, deadline))
        return positions_from(held, prices, self.sizes.sizes)

    def futures_data(self, path: str, deadline: float, signed: bool = False) -> Any:
        """``data`` of one futures answer, checked as the overview's answers are."""
        headers = signed_headers(self.web_key) if signed else None
        document = self.document(self.futures.get(self.futures_url + path, None, deadline, headers))
        if document.get("success") is False:
            raise BadResponse("the futures answer says it did not succeed, without a code")
        return document.get("data")

    def parse(self, answer: Answer, asked: str | None = None) -> Overview:
        """One answer to an overview, or the precise error class."""
        document = self.document(answer)
        self.note_unknown(document.get("data"))
        data, stamp = document.get("data"), document.get("timestamp")
        return overview_from(data, self.clock(), None, stamp, asked)

    def document(self, answer: Answer) -> dict[str, Any]:
        """One answer of MEXC's (either host), checked: no redirect, JSON, an object, and
        neither its HTTP status nor its code says no."""
        if 300 <= answer.status < 400:
            raise self.redirected(answer)
        document, kind = decode_json(answer)
        if document is None:
            raise self.not_json(answer, kind or "not JSON")
        if not isinstance(document, dict):
            raise BadResponse(f"response should be a JSON object, got {type(document).__name__}")
        self.check(answer, document)
        return document

    def redirected(self, answer: Answer) -> ExchangeError:
        """A redirect to MEXC's login page means the web key is dead; any other 3xx (a 304,
        a move elsewhere) says nothing about the key and counts as unreachable."""
        status, host = answer.status, answer.location_host
        target = urlsplit(answer.headers.get("Location", "")).path.lower()
        if status in (301, 302, 303, 307, 308) and "login" in target:
            return AuthError(
                f"MEXC answered with a redirect to {host} (HTTP {status}), which means a login "
                f"page; it was not followed: {WEB_KEY_HINT}",
                status,
            )
        return TransportError(
            f"MEXC answered HTTP {status} (to {host}), not its login page; nothing was "
            "followed or sent there",
            status,
        )

    def not_json(self, answer: Answer, kind: str) -> ExchangeError:
        status = answer.status
        if status == 403 and answer.looks_html():
            return Blocked(AKAMAI_HINT.format(now=self.in_use()), 403)
        if status == 401:
            return AuthError(f"MEXC refused the web key (HTTP 401): {WEB_KEY_HINT}", 401)
        if status == 429:
            return RateLimited("MEXC asked us to slow down (HTTP 429)", 429)
        if status >= 500:
            return TransportError(f"MEXC returned HTTP {status} with {kind}", status)
        return BadResponse(f"response is {kind} (HTTP {status})")

    def check(self, answer: Answer, document: dict[str, Any]) -> None:
        """An absent ``code`` or code 0 is success; HTTP errors and MEXC codes are not."""
        status, code = answer.status, document.get("code")
        message = message_of(document, self.scrub.short)
        if status == 401 or status == 403:
            raise AuthError(f"MEXC refused the web key (HTTP {status}: {message}): {WEB_KEY_HINT}")
        if status == 429:
            raise RateLimited(f"MEXC asked us to slow down (HTTP 429: {message})", 429)
        if status >= 500:
            raise TransportError(f"MEXC returned HTTP {status}: {message}", status)
        if not 200 <= status < 300:
            raise ExchangeError(f"MEXC returned HTTP {status}: {message}", status)
        if code is None or code == 0:
            return
        if integer(code) is None:
            raise BadResponse("field 'code' is not a number")
        raise code_error(code, message, WEB_KEY_HINT)

    def note_unknown(self, data: Any) -> None:
        new = unknown_keys(data) - self._unknown
        if new:
            self._unknown |= new
            log.warning(
                "MEXC reports wallets watcher does not read; they are not in any rule's numbers",
                wallets=sorted(new),
            )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
