"""``HttpClient`` with a browser's TLS handshake: curl_cffi, impersonating Chrome.

Akamai, in front of www.mexc.com, may refuse a request for its TLS ClientHello alone:
Python's OpenSSL handshake is not a browser's, whatever the headers say, and a proxy
cannot change it (the TLS session is still made here). curl_cffi (the ``browser-tls``
extra, imported only when used) makes Chrome's handshake. The bounds of ``net`` hold
on this path too: one total deadline (curl's own transfer timeout, so a dripping
server is cut), the size cap counted after decompression, no redirect followed, the
configured proxy only, TLS verified (with ``WATCHER_CA_FILE``'s CAs), retries of 429
and 5xx inside the poll's deadline, and no secret in an error.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Mapping
from typing import Any

from watcher.core.errors import BadResponse, TransportError
from watcher.net.client import RETRY_STATUSES, Answer, HttpClient

INSTALL = "pip install 'watcher[browser-tls]'"
IMPERSONATE = "chrome"


def available() -> bool:
    """True when curl_cffi is installed (asked before switching, never imported here)."""
    try:
        return importlib.util.find_spec("curl_cffi") is not None
    except (ValueError, ImportError):
        return False


class BrowserClient(HttpClient):
    handshake = "browser"

    def open_session(self, headers: Mapping[str, str], proxy: str | None) -> None:
        try:
            from curl_cffi import requests as curl
        except ImportError:
            raise TransportError(f"a browser's TLS handshake needs curl_cffi: {INSTALL}") from None
        self.curl = curl
        self.session = curl.Session(
            impersonate=IMPERSONATE,
            headers=dict(headers),
            proxies={"http": proxy, "https": proxy} if proxy else None,
            verify=self.verify,
            max_redirects=0,
            trust_env=False,  # only WATCHER_PROXY decides where requests go
        )

    def rest(self) -> None:
        """curl keeps its own connections, within its own limits."""

    def _get(
        self,
        url: str,
        params: Mapping[str, str] | None,
        host: str,
        headers: Mapping[str, str] | None,
        deadline: float,
    ) -> Answer:
        """One GET, then again after a 429 or 5xx (``Retry-After`` honoured) while the
        poll's deadline allows; the last answer is returned as it is."""
        wait = self.backoff
        while True:
            answer = self.once(url, params, host, headers)
            pause = retry_after(answer, wait)
            if answer.status not in RETRY_STATUSES or time.monotonic() + pause > deadline:
                return answer
            time.sleep(pause)
            wait *= 2

    def once(self, url: str, params: Mapping[str, str] | None, host: str, headers: Any) -> Answer:
        total = sum(self.timeout)
        started = time.monotonic()
        try:
            response = self.session.get(
                url,
                params=params,
                headers=headers,
                timeout=total,  # curl's transfer timeout: the whole answer, however it drips
                allow_redirects=False,
                stream=True,
            )
        except self.curl.exceptions.RequestException as exc:
            raise TransportError(f"cannot reach the exchange at {host}: {why(exc)}") from None
        try:
            body = bytearray()
            for piece in response.iter_content():
                body += piece
                if len(body) > self.max_body:
                    limit = self.max_body / (1024 * 1024)
                    raise BadResponse(f"the answer is larger than {limit:g} MB once decompressed")
                if time.monotonic() - started > total:
                    raise TransportError(f"the answer from {host} arrived too slowly")
        except self.curl.exceptions.RequestException as exc:
            raise TransportError(f"answer from {host} broke off: {why(exc)}") from None
        finally:
            response.close()
        return Answer(response.status_code, bytes(body), dict(response.headers))


def retry_after(answer: Answer, wait: float) -> float:
    """``Retry-After`` in seconds when the answer gives one, else the doubling wait."""
    given = answer.headers.get("Retry-After", "")
    return float(given) if given.strip().isdigit() else wait


def why(exc: BaseException) -> str:
    """curl's reason in a few words: its messages quote the URL, which may carry a key."""
    text = str(exc).lower()
    if "timed out" in text or "timeout" in text:
        return "timed out"
    if "refused" in text:
        return "connection refused"
    if "resolve" in text:
        return "the host name does not resolve"
    if "certificate" in text or "ssl" in text or "tls" in text:
        return "the TLS certificate could not be verified"
    if "proxy" in text:
        return "the proxy refused or failed"
    return type(exc).__name__
