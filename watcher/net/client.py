"""The hardened HTTP client that the sources, the Telegram bot and the heartbeat share.

One ``requests.Session`` per source, TLS verified, following no redirect
(requests would re-send our secret headers to the target). Retries live in
urllib3's ``Retry`` (connection errors, read timeouts, 429 and 5xx, honouring
``Retry-After``) and a deadline keeps all of them inside one poll interval, so
a slow exchange can never stack polls up. A body is read in pieces against a
total deadline and a size cap, so a dripping or bloated answer is a failed
poll, not a wedged daemon. Every text that may carry a secret is scrubbed
before it is cut short.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import json
import os
import socket
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, MaxRetryError, ResponseError
from urllib3.poolmanager import PoolManager
from urllib3.util.retry import Retry

from watcher.core.errors import BadResponse, ExchangeError, TransportError
from watcher.core.secrets import Masker

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BODY = 20 * 1024 * 1024  # counted after decompression
MAX_DEPTH = 64  # JSON nesting; the real answers need 3
CHUNK = 64 * 1024


_current = threading.local()  # the request this thread is making, for its watchdog


class Watch:
    """One GET's connection, so a watchdog can cut it at the total deadline: a server that
    drips its headers or body one byte a second never trips a per-read timeout."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline  # monotonic seconds
        self.conn: Any = None
        self.cut = False

    def fire(self) -> None:
        """Cut the connection, unless another request has taken it since: connections
        are shared (``shared_pools``), and one that went back to the pool may carry
        another account's request by now."""
        if getattr(self.conn, "watched_by", None) is not self:
            return
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            self.cut = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """One thread that cuts every watched request at its deadline. A thread per request
    (``threading.Timer``) cost more than the request itself at 5,000 accounts. The
    thread sleeps until the earliest deadline it knows of and is woken only by a request
    that ends sooner than that, so most requests never wake it."""

    def __init__(self) -> None:
        self.live: set[Watch] = set()
        self.wake = threading.Condition()
        self.next: float | None = None  # when the thread wakes next (None: when told)
        self.thread: threading.Thread | None = None

    def add(self, seconds: float) -> Watch:
        watch = Watch(time.monotonic() + seconds)
        with self.wake:
            self.live.add(watch)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.run, name="watchdog", daemon=True)
                self.thread.start()
            if self.next is None or watch.deadline < self.next:
                self.wake.notify()
        return watch

    def discard(self, watch: Watch) -> None:
        with self.wake:  # under the lock: a watch that ended is never cut afterwards
            self.live.discard(watch)

    def run(self) -> None:
        with self.wake:
            while True:
                now = time.monotonic()
                for watch in [w for w in self.live if w.deadline <= now]:
                    self.live.discard(watch)
                    watch.fire()
                self.next = min((w.deadline for w in self.live), default=None)
                self.wake.wait(None if self.next is None else self.next - now)


WATCHDOG = Watchdog()


@contextlib.contextmanager
def watched(seconds: float) -> Iterator[Watch]:
    """While the block runs, whatever connection this thread uses is cut once ``seconds``
    have passed: one deadline over every request made inside, however they trickle."""
    watch = WATCHDOG.add(seconds)
    _current.watch = watch
    try:
        yield watch
    finally:
        WATCHDOG.discard(watch)
        _current.watch = None


def bounded_session(timeout: float, max_body: int = MAX_BODY) -> requests.Session:
    """A ``requests`` session for a library that makes its own requests (ccxt), with the
    bounds of ``HttpClient``: watched connections (cut by ``watched``), no redirect
    followed (``max_redirects = 0``: the target is never contacted), no proxy from the
    environment, and every body read within ``timeout`` and ``max_body`` after
    decompression, its JSON nesting checked, before the library sees it."""
    session = requests.Session()
    session.trust_env = False
    session.max_redirects = 0
    adapter = WatchedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)

    def bound(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            body = read_body(response, time.monotonic() + timeout, max_body)
        finally:
            response.close()  # read to the end, or given up: the connection goes either way
        if too_deep(body):
            raise BadResponse(f"the answer nests deeper than {MAX_DEPTH} levels")
        response.raw = io.BytesIO(body)  # what the library reads: the bounded, inflated body
        return response

    session.hooks["response"].append(bound)
    return session


class _Watched:
    """Mixin for urllib3 connections: tell the current ``Watch`` which socket is in use,
    and the connection whose ``Watch`` it now serves (the last request's)."""

    watched_by: Watch | None = None

    def request(self, *args: Any, **kwargs: Any) -> Any:
        watch = getattr(_current, "watch", None)
        self.watched_by = watch
        if watch is not None:
            watch.conn = self
        return super().request(*args, **kwargs)  # type: ignore[misc]


def watched_pools(conn: type, tls_conn: type, pool: type, tls_pool: type) -> dict[str, type]:
    """urllib3 pool classes (plain and TLS) whose connections report to the ``Watch``."""

    def watched(base: type) -> type:
        return type(f"Watched{base.__name__}", (_Watched, base), {})

    return {
        "http": type(f"Watched{pool.__name__}", (pool,), {"ConnectionCls": watched(conn)}),
        "https": type(
            f"Watched{tls_pool.__name__}", (tls_pool,), {"ConnectionCls": watched(tls_conn)}
        ),
    }


WATCHED_POOLS = watched_pools(
    HTTPConnection, HTTPSConnection, HTTPConnectionPool, HTTPSConnectionPool
)


@functools.cache
def watched_socks_pools() -> dict[str, type]:
    """The same watch through a SOCKS proxy, whose pools are PySocks' own classes;
    imported only when a SOCKS proxy is configured."""
    from urllib3.contrib.socks import (
        SOCKSConnection,
        SOCKSHTTPConnectionPool,
        SOCKSHTTPSConnection,
        SOCKSHTTPSConnectionPool,
    )

    return watched_pools(
        SOCKSConnection, SOCKSHTTPSConnection, SOCKSHTTPConnectionPool, SOCKSHTTPSConnectionPool
    )


class WatchedAdapter(HTTPAdapter):
    """requests' adapter with watched connections: direct, or through any proxy."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        socks = proxy.lower().startswith("socks")
        manager.pool_classes_by_scheme = watched_socks_pools() if socks else WATCHED_POOLS
        return manager


SHARED_HOSTS = 32  # hosts whose idle connections the process keeps (exchanges, Bot API)
POOL_PER_HOST = 16  # idle connections kept per host: the 10 poll threads, and a margin


@functools.cache
def shared_pools() -> PoolManager:
    """The process's direct connections, one pool per host, that every ``HttpClient``
    takes its connections from."""
    manager = PoolManager(num_pools=SHARED_HOSTS, maxsize=POOL_PER_HOST)
    manager.pool_classes_by_scheme = WATCHED_POOLS
    return manager


class SharedAdapter(WatchedAdapter):
    """The adapter of an ``HttpClient``: its own retry policy (set per request) and its
    own proxies, the process's shared direct connections (requests' documented way to
    choose the pool manager: ``init_poolmanager``). A pool per client kept a connection
    per account, or, let go between polls, made a TCP (and TLS) handshake on every
    poll: at 5,000 accounts, a third of a poll's CPU over plain HTTP. Only the headers
    and cookies of a session carry an account; they stay with its session."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)  # sizes that proxy managers reuse
        self.poolmanager = shared_pools()

    def close(self) -> None:
        """Let go of this client's proxy connections; the shared ones serve the others."""
        for manager in self.proxy_manager.values():
            manager.clear()


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
        if time.monotonic() + max(wait, 0.0) > self.deadline:
            reason = error or ResponseError("retry budget of one poll interval used up")
            raise MaxRetryError(_pool, url or "", reason)
        return fresh


BACKOFF = 0.5  # seconds before the first retry, doubling; tests pass a smaller one
KEEP_ALIVE = 30.0  # seconds between polls from which connections are not kept between them


def retry_policy(deadline: float, backoff: float = BACKOFF) -> DeadlineRetry:
    retry = DeadlineRetry(
        total=6,
        connect=3,
        read=2,
        status=3,
        redirect=0,
        raise_on_redirect=False,
        backoff_factor=backoff,
        backoff_max=30,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    retry.deadline = deadline
    return retry


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, fully read: what the source-specific parsers look at."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    @property
    def location_host(self) -> str:
        """The host a 3xx points at (never contacted), for the error line."""
        target = self.headers.get("Location", "")
        return urlsplit(target).hostname or (target[:60] if target else "?")

    def looks_html(self) -> bool:
        start = self.body.lstrip()[:15].lower()
        ctype = self.headers.get("Content-Type", "").lower()
        return start.startswith((b"<!doctype", b"<html", b"<")) or "text/html" in ctype


class HttpClient:
    """A session with fixed headers and an optional real proxy; ``get`` returns an ``Answer``."""

    def __init__(
        self,
        headers: Mapping[str, str],
        timeout: float,
        interval: float,
        scrub: Masker,
        proxy: str | None = None,
        max_body: int = MAX_BODY,
        backoff: float = BACKOFF,
        ca_file: str | None = None,
    ) -> None:
        self.scrub = scrub
        self.backoff = backoff
        self.verify: str | bool = trust_bundle(ca_file) if ca_file else True
        self.open_session(headers, proxy)
        self.timeout = (min(3.0, timeout), timeout)
        self.interval = interval
        self.max_body = max_body
        self.heard: Callable[[str, Answer], None] | None = None  # record --redact listens

    handshake = "python"  # what the TLS ClientHello looks like: Python's OpenSSL

    def open_session(self, headers: Mapping[str, str], proxy: str | None) -> None:
        self.session = requests.Session()
        self.session.trust_env = False  # only WATCHER_PROXY decides where requests go
        self.session.verify = self.verify
        self.adapter = SharedAdapter(max_retries=retry_policy(float("inf")))
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)
        self.session.headers.update(headers)
        self.session.headers["Accept-Encoding"] = "gzip, deflate"  # what read_body can bound
        if proxy:
            self.session.proxies = {"http": proxy, "https": proxy}

    def close(self) -> None:
        self.session.close()

    def rest(self) -> None:
        """After a poll: at an interval of ``KEEP_ALIVE`` or more, let go of this client's
        proxy connections. A server keeps an idle connection for seconds, not for a
        minute, so holding one per account until the next poll buys nothing and costs
        about 40 KB an account (200 MB at 5,000 accounts). Direct connections are the
        process's (``shared_pools``), a few per host whatever the number of accounts."""
        if self.interval >= KEEP_ALIVE:
            for adapter in self.session.adapters.values():
                adapter.close()

    def deadline(self) -> float:
        """The end of this poll's retry budget: one interval less one request."""
        budget = self.interval - sum(self.timeout)
        return time.monotonic() + max(budget, 0.0)

    def get(
        self,
        url: str,
        params: Mapping[str, str] | None,
        deadline: float,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One GET (retried inside ``deadline``); raises ``TransportError`` without an answer.
        ``headers`` join the session's for this request (a signature, a nonce)."""
        parts = urlsplit(url)
        host = parts.hostname or "?"
        if parts.port:  # "connection refused at 127.0.0.1" says nothing without the port
            host = f"{host}:{parts.port}"
        total = max(deadline - time.monotonic(), 0.0) + sum(self.timeout)
        slow = f"the answer from {host} arrived too slowly (total deadline {total:.0f}s)"
        with watched(total) as watch:
            try:
                answer = self._get(url, params, host, headers, deadline)
            except TransportError:
                if watch.cut:
                    raise TransportError(slow) from None
                raise
            except ExchangeError as exc:  # the frames would keep a 20 MB body alive
                raise exc.with_traceback(None) from None
        if watch.cut:  # cut mid-body: what arrived is not the whole answer
            raise TransportError(slow)
        if self.heard is not None:
            self.heard(url, answer)
        return answer

    def _get(
        self,
        url: str,
        params: Mapping[str, str] | None,
        host: str,
        headers: Mapping[str, str] | None,
        deadline: float,
    ) -> Answer:
        self.adapter.max_retries = retry_policy(deadline, self.backoff)
        try:
            response = self.session.get(
                url,
                params=params,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
        except (requests.RequestException, HTTPError) as exc:
            raise TransportError(f"cannot reach the exchange at {host}: {reason(exc)}") from None
        try:  # the body gets one read timeout in all, however it trickles in
            body = read_body(response, time.monotonic() + self.timeout[1], self.max_body)
        except (requests.RequestException, HTTPError) as exc:
            raise TransportError(f"answer from {host} broke off: {reason(exc)}") from None
        finally:
            response.close()
        return Answer(response.status_code, body, response.headers)


@functools.cache
def trust_bundle(ca_file: str) -> str:
    """The usual public CAs and the ones in ``ca_file`` (WATCHER_CA_FILE: a private
    gateway's, a test's), in one PEM file that both handshakes read: ``verify=`` of
    either library replaces its bundle, it does not add to it. The file is made once
    per process with ``mkstemp`` (a name no one can guess or make first, mode 0600): a
    bundle at a fixed name in a shared /tmp could be planted by another user, and every
    certificate it holds would be trusted."""
    import certifi

    trusted = Path(certifi.where()).read_bytes() + b"\n" + Path(ca_file).read_bytes()
    handle, name = tempfile.mkstemp(prefix="watcher-ca-", suffix=".pem")
    with os.fdopen(handle, "wb") as bundle:
        bundle.write(trusted)
    atexit.register(Path(name).unlink, missing_ok=True)
    return name


def status_of(url: str, timeout: tuple[float, float], body: bytes | None = None) -> int:
    """The HTTP status of one GET (a POST of ``body``, when given) whose answer's body is
    never read (a heartbeat ping): no redirect followed, no proxy from the environment,
    TLS verified. ``TransportError`` without an answer; its text names the host only (a
    ping URL's path is its token)."""
    host = urlsplit(url).hostname or "?"
    with requests.Session() as session:
        session.trust_env = False
        try:
            response = session.request(
                "POST" if body is not None else "GET",
                url,
                data=body,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            )
        except (requests.RequestException, HTTPError) as exc:
            raise TransportError(f"cannot reach {host}: {type(exc).__name__}") from None
        response.close()
        return response.status_code


def read_body(response: requests.Response, deadline: float, max_body: int = MAX_BODY) -> bytes:
    """The whole (decompressed) body of a ``stream=True`` response, or an error once it
    is too slow or too large: a dripping or bloated answer cannot hold a thread or fill
    the memory. A gzip bomb unfolds a chunk at a time and stops at ``max_body``."""
    body = bytearray()
    inflate = _inflater(response.headers.get("Content-Encoding", ""))
    raw = response.raw
    try:
        while True:
            if time.monotonic() > deadline:
                raise TransportError("the answer arrived too slowly (total read deadline)")
            piece = raw.read1(CHUNK, decode_content=False)
            if not piece:
                return bytes(body)
            for data in _unfold(inflate, piece):
                if len(body) + len(data) > max_body:
                    limit = max_body / (1024 * 1024)
                    raise BadResponse(f"the answer is larger than {limit:g} MB once decompressed")
                body += data
    except (OSError, ValueError, EOFError, HTTPError) as exc:  # decode, socket, a cut body
        raise TransportError(f"the answer could not be read: {type(exc).__name__}") from None


def _unfold(inflate: Any, piece: bytes) -> Iterator[bytes]:
    """What ``piece`` decompresses to, at most ``CHUNK`` bytes at a time."""
    if inflate is None:
        yield piece
        return
    while piece:
        yield inflate.decompress(piece, CHUNK)
        piece = inflate.unconsumed_tail


def _inflater(encoding: str) -> Any:
    """A bounded decompressor for the body's Content-Encoding (we ask for gzip or deflate)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(47)  # gzip or zlib header, detected
    raise BadResponse(f"the answer is encoded as {encoding[:20]!r}, which watcher did not ask for")


def reason(exc: BaseException) -> str:
    """A short, secret-free cause for a failed request."""
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
    if isinstance(exc, requests.exceptions.ProxyError) or "proxy" in text:
        return "the proxy refused or failed"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "answer cut off mid-transfer"
    return type(exc).__name__


def body_kind(answer: Answer, exc: Exception | None = None) -> str:
    """What a body that is not JSON looks like, for the error line."""
    if answer.looks_html():
        return "an HTML page"
    if not answer.body.strip():
        return "an empty body"
    body = answer.body.rstrip()
    if isinstance(exc, json.JSONDecodeError) and (
        exc.pos >= len(body) - 1 or exc.msg.startswith("Unterminated string")
    ):
        return "truncated JSON"
    return "not JSON"


class DuplicateKey(ValueError):
    """An object that names one key twice: which value the sender meant cannot be known."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        raise DuplicateKey(next(key for key, n in counts.items() if n > 1))
    return found


def decode_json(answer: Answer) -> tuple[Any, str | None]:
    """(document, None), or (None, what the body looks like) when it is not JSON.

    An object with a key twice (``{"data": [row], "data": []}``) is a bad answer: Python
    would keep the last value silently, and an empty last ``data`` would read as zero."""
    if too_deep(answer.body):
        raise BadResponse(f"the answer nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(answer.body, parse_float=Decimal, object_pairs_hook=_unique), None
    except DuplicateKey as exc:
        key = str(exc)[:40].translate(_PRINTABLE)
        raise BadResponse(f"the answer names the key '{key}' twice") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return None, body_kind(answer, exc)


_PRINTABLE = {c: "?" for c in range(32)} | {127: "?"}


def too_deep(body: bytes) -> bool:
    """Only brackets kept (brackets inside strings count too, so it errs on the safe side):
    a short scan so JSON never recurses unbounded. ``RecursionError`` is caught as well."""
    brackets = body.translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
