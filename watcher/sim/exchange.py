"""A simulated exchange on 127.0.0.1 for tests, the demo and people trying watcher.

It speaks both sources: MEXC's own web endpoints (web key as cookie and
``Ucenter-Token``, MEXC's envelope, no ``is_testnet``) and a Bypass-compatible
``GET /v1/getAssetsOverview`` (API key header, network header defaulting to
TESTNET, both error shapes). Faults are injected on demand, for a number of
requests or for a while. A small control endpoint (``/_sim/...``) lets a
person drive it from another terminal:

    python -m watcher.sim serve --port 8099
    python -m watcher.sim set USDT.spot=50 BTC.contract=2 --port 8099
    python -m watcher.sim fault akamai --for 30s --port 8099

Balances are native amounts times a price; every answer is deterministic.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import io
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from watcher.core.models import WALLETS
from watcher.sim.bybit import bybit
from watcher.sim.futures_host import futures, gateway, open_position
from watcher.sim.official import now_ms, official

NATIVE_WALLETS = WALLETS[1:]
MEXC_ROWS = "/api/platform/asset/api/asset/overview/convert/v2"
MEXC_TOTALS = "/api/platform/asset/api/asset/overview/v2"
BYPASS_PATH = "/v1/getAssetsOverview"
FAULT_KINDS = (
    "delay",  # sleep `delay` seconds before answering (client timeouts)
    "status",  # HTTP `status` with a JSON error body, optional `retry_after`
    "code",  # HTTP 200 with exchange `code` != 0 and `message`
    "html",  # an HTML error page with HTTP `status`
    "akamai",  # MEXC's web front: HTTP 403 with an HTML "Access Denied" page
    "redirect",  # HTTP 302 to `location` (a login page, or another host)
    "truncated",  # a JSON body cut in half
    "missing",  # drop `field_name` from every row / the totals
    "numbers",  # amounts as JSON numbers instead of strings
    "negative",  # a negative amount (real for futures equity)
    "badrow",  # the first row's `field_name` is not a number
    "duplicate",  # the first row again, its currency in lower case
    "nocode",  # MEXC's envelope without `code` (success all the same)
    "disconnect",  # close the connection without an answer
    "drip",  # send the answer one byte every `delay` seconds
    "driphead",  # send the headers one byte every `delay` seconds
    "gzipbomb",  # 25 MB of zeros, gzip-compressed to a few KB, as Content-Encoding: gzip
    "testnet",  # claim is_testnet=true whatever was asked (Bypass only)
    "raw",  # answer `body` verbatim with HTTP `status` (the malformed-answer corpus)
)


@dataclass
class Fault:
    kind: str
    times: int | None = 1
    status: int = 500
    code: int = 600
    message: str = "parameter error"
    delay: float = 0.0
    retry_after: str | None = None
    field_name: str = "spot"
    body: str = ""
    location: str = "https://www.mexc.com/login"
    until: float | None = None  # monotonic end, for faults given a duration
    path: str | None = None  # only requests to this path (the official APIs need one)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up mid-answer (a fault doing its job) is not news."""


@dataclass
class Coin:
    price: Decimal
    amounts: dict[str, Decimal] = field(default_factory=dict)


class SimExchange:
    """Mutable, thread-safe state of the simulated exchange plus its HTTP server."""

    def __init__(
        self,
        api_key: str = "test-api-key",
        port: int = 0,
        web_key: str = "WEB-sim-web-key-0123456789",
    ) -> None:
        self.api_key = api_key
        self.web_key = web_key
        self.official_key = "mx0-sim-official-key"  # the official APIs' key and secret (ccxt)
        self.official_secret = "sim-official-secret-0123456789"
        self.key_can_trade = False
        self.key_can_withdraw = False
        self.coins: dict[str, Coin] = {}
        self.positions: dict[tuple[str, str], Any] = {}  # (symbol, side) -> SimPosition
        self.faults: deque[Fault] = deque()
        self.requests: deque[dict[str, Any]] = deque(maxlen=256)  # the latest, for tests
        self.served = 0
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- state -------------------------------------------------------------
    def set_coin(self, currency: str, price: str | Decimal = "1", **amounts: str | Decimal) -> None:
        """Set a currency's native amounts (spot, contract, ...) and its price."""
        with self.lock:
            coin = self.coins.setdefault(currency, Coin(Decimal(price)))
            coin.price = Decimal(price)
            for wallet, amount in amounts.items():
                if wallet not in NATIVE_WALLETS:
                    raise ValueError(f"unknown wallet {wallet!r}")
                coin.amounts[wallet] = Decimal(amount)

    def assign(self, assignments: dict[str, str]) -> None:
        """``{"USDT.spot": "50", "BTC.price": "61000"}``: native amounts and prices."""
        for target, value in assignments.items():
            code, _, name = target.partition(".")
            if not code or not name:
                raise ValueError(f"expected CURRENCY.WALLET=AMOUNT, got {target!r}")
            try:
                amount = Decimal(value)
            except InvalidOperation:
                raise ValueError(f"{target}: {value!r} is not a number") from None
            code = code.upper()
            with self.lock:
                price = self.coins[code].price if code in self.coins else Decimal(1)
            if name == "price":
                self.set_coin(code, amount)
            else:
                self.set_coin(code, price, **{name: amount})

    def remove_coin(self, currency: str) -> None:
        with self.lock:
            self.coins.pop(currency, None)

    def inject(
        self, kind: str, times: int | None = 1, seconds: float | None = None, **params: Any
    ) -> None:
        """Queue a fault for ``times`` requests or for ``seconds`` (None: until cleared)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        until = time.monotonic() + seconds if seconds is not None else None
        if seconds is not None:
            times = None
        with self.lock:
            self.faults.append(Fault(kind=kind, times=times, until=until, **params))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def _next_fault(self, path: str = "", official: bool = False) -> Fault | None:
        """The fault for this request, in the order they were queued. A fault with a
        ``path`` applies only there; one without applies to the web endpoints (MEXC's
        and the gateway's), never to the official APIs, whose tests name their path."""
        with self.lock:
            now = time.monotonic()
            while self.faults and self.faults[0].until is not None and self.faults[0].until <= now:
                self.faults.popleft()
            for fault in self.faults:
                if fault.path == path or (fault.path is None and not official):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
            return None

    def rows(self) -> list[dict[str, str]]:
        with self.lock:
            return [_row(code, coin) for code, coin in sorted(self.coins.items())]

    def totals(self) -> dict[str, str]:
        sums = dict.fromkeys(WALLETS, Decimal(0))
        for row in self.rows():
            for wallet in WALLETS:
                sums[wallet] += Decimal(row[wallet])
        return {k: str(v) for k, v in sums.items()}

    # --- server ------------------------------------------------------------
    @property
    def url(self) -> str:
        """The Bypass-compatible base URL (``WATCHER_BASE_URL``)."""
        return f"{self.mexc_url}/v1"

    @property
    def mexc_url(self) -> str:
        """The stand-in for ``https://www.mexc.com`` (``WATCHER_MEXC_URL``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> SimExchange:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SimExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _row(code: str, coin: Coin) -> dict[str, str]:
    native = {w: coin.amounts.get(w, Decimal(0)) for w in NATIVE_WALLETS}
    native["total"] = sum(native.values(), Decimal(0))
    row: dict[str, str] = {"currency": code, "coinId": code.lower() + "-id"}
    for wallet in WALLETS:
        row[wallet] = str(native[wallet] * coin.price)
    for wallet in WALLETS:
        row["origin" + wallet.capitalize()] = str(native[wallet])
    return row


def _cookies(header: str | None) -> dict[str, str]:
    found = {}
    for part in (header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            found[name] = value
    return found


def _php_truthy(values: list[str] | None) -> bool:
    """The gateway ran PHP: only "" and "0" are false (so "false" is true)."""
    return bool(values) and values[0] not in ("", "0")  # type: ignore[index]


def _handler_for(sim: SimExchange) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms stall

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests and the demo read their own output."""

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            try:
                payload = json.loads(self.rfile.read(length) or b"{}")
                answer = _control(sim, parts.path, payload)
            except (ValueError, TypeError, KeyError) as exc:
                return self._send(400, json.dumps({"error": str(exc)}).encode(), "text/json")
            self._send(200, json.dumps(answer).encode(), "application/json")

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query, keep_blank_values=True)
            sim.requests.append({"path": parts.path, "query": query, "headers": dict(self.headers)})
            sim.served += 1
            if parts.path == "/_sim/state":
                state = {
                    "rows": sim.rows(),
                    "totals": sim.totals(),
                    "faults": len(sim.faults),
                    "prices": {code: str(coin.price) for code, coin in sim.coins.items()},
                }
                return self._send(200, json.dumps(state).encode(), "application/json")
            if parts.path.startswith("/v5/"):  # Bybit's official API (the ccxt source)
                answer: tuple[int, Any] | None = bybit(sim, parts, self.headers)
            else:  # MEXC's futures host (positions), MEXC's and Binance's official APIs
                answer = futures(sim, parts.path, parts.query, self.headers)
                if answer is None:  # None: not an official endpoint either
                    answer = official(sim, self.path, self.headers)
            if answer is not None:
                return self._official(answer, sim._next_fault(parts.path, official=True))
            fault = sim._next_fault(parts.path)
            if fault and fault.kind == "delay":
                time.sleep(fault.delay)
                fault = None
            if fault and fault.kind == "disconnect":
                self.close_connection = True
                return
            if parts.path in (MEXC_ROWS, MEXC_TOTALS):
                return self._mexc(fault, parts.path == MEXC_ROWS)
            network = self.headers.get("X-MEXC-NETWORK", "TESTNET").upper()
            testnet = network != "MAINNET"
            if self.headers.get("X-MEXC-BYPASS-API-KEY") != sim.api_key:
                return self._wrapper(401, "Invalid or missing API key", testnet)
            carried = gateway(sim, parts.path)
            if carried is not None:
                body = {"data": carried, "code": 0, "msg": "success", "timestamp": now_ms()}
                body["is_testnet"] = testnet
                return self._send(200, json.dumps(body).encode(), "application/json")
            if parts.path != BYPASS_PATH:
                return self._wrapper(404, "Not found", testnet)
            self._answer(fault, _php_truthy(query.get("convert")), testnet, bypass=True)

        def _official(self, answer: tuple[int, Any], fault: Fault | None) -> None:
            """An official API's answer, or what a fault on its path makes of it."""
            body = json.dumps(answer[1]).encode()
            kind = fault.kind if fault else None
            if fault and kind == "delay":
                time.sleep(fault.delay)
            if fault and kind == "disconnect":
                self.close_connection = True
            elif fault and kind == "redirect":
                self._redirect(fault)
            elif fault and kind == "raw":
                self._send(fault.status, fault.body.encode(), "application/json")
            elif fault and kind in ("drip", "driphead"):
                self._drip(body, fault.delay or 1.0, head=kind == "driphead")
            elif kind == "gzipbomb":
                self._send(200, _bomb(), "application/json", {"Content-Encoding": "gzip"})
            else:
                self._send(answer[0], body, "application/json")

        def _mexc(self, fault: Fault | None, rows: bool) -> None:
            cookies = _cookies(self.headers.get("Cookie"))
            keys = (cookies.get("u_id"), cookies.get("uc_token"), self.headers.get("Ucenter-Token"))
            if fault and fault.kind == "akamai":
                page = "<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD><BODY>Reference #18</BODY>"
                return self._send(403, page.encode(), "text/html")
            if fault and fault.kind == "redirect":
                return self._redirect(fault)
            if any(k != sim.web_key for k in keys):
                # A GUESS, not a capture: what MEXC answers to an expired or wrong web key is
                # unknown (positions.md, sources.md). A redacted capture replaces it.
                body = {"code": 401, "msg": "Unauthorized", "timestamp": now_ms()}
                return self._send(200, json.dumps(body).encode(), "application/json")
            self._answer(fault, rows, False, bypass=False)

        def _answer(self, fault: Fault | None, rows: bool, testnet: bool, bypass: bool) -> None:
            kind = fault.kind if fault else None
            if fault and kind == "status":
                return self._wrapper(fault.status, fault.message, testnet, fault.retry_after)
            if fault and kind == "raw":
                return self._send(fault.status, fault.body.encode(), "application/json")
            if fault and kind == "html":
                page = f"<html><body><h1>{fault.status} Bad Gateway</h1></body></html>"
                return self._send(fault.status, page.encode(), "text/html")
            if fault and kind == "redirect":
                return self._redirect(fault)
            data: Any = sim.rows() if rows else sim.totals()
            _damage(data, fault, rows)
            body: dict[str, Any] = {
                "data": data,
                "code": fault.code if fault and kind == "code" else 0,
                "msg": fault.message if fault and kind == "code" else "success",
                "timestamp": now_ms(),
            }
            if kind == "nocode":
                body.pop("code")
            if bypass:
                body["is_testnet"] = True if kind == "testnet" else testnet
            text = json.dumps(body)
            if kind == "numbers":
                text = re.sub(r'"(-?\d+(?:\.\d+)?)"', r"\1", text)
            if kind == "truncated":
                text = text[: len(text) // 2]
            if fault and kind in ("drip", "driphead"):
                return self._drip(text.encode(), fault.delay or 1.0, head=kind == "driphead")
            if kind == "gzipbomb":
                return self._send(200, _bomb(), "application/json", {"Content-Encoding": "gzip"})
            self._send(200, text.encode(), "application/json")

        def _wrapper(
            self, status: int, message: str, testnet: bool, retry_after: str | None = None
        ) -> None:
            body = {
                "success": False,
                "code": status,
                "message": message,
                "timestamp": now_ms(),
                "is_testnet": testnet,
            }
            extra = {"Retry-After": retry_after} if retry_after else {}
            self._send(status, json.dumps(body).encode(), "application/json", extra)

        def _drip(self, body: bytes, every: float, head: bool = False) -> None:
            head_bytes = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nX-Slow: {'.' * 200}\r\n\r\n"
            ).encode()
            slow, fast = (head_bytes, body) if head else (body, head_bytes)
            try:
                if not head:
                    self.wfile.write(fast)
                for index in range(len(slow)):
                    self.wfile.write(slow[index : index + 1])
                    self.wfile.flush()
                    time.sleep(every)
                if head:
                    self.wfile.write(fast)
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
            self.close_connection = True

        def _redirect(self, fault: Fault) -> None:
            """A 302 to the login page by default; ``status`` picks another 3xx (a 304
            carries no Location when ``location`` is empty)."""
            status = fault.status if 300 <= fault.status < 400 else 302
            where = {"Location": fault.location} if fault.location else {}
            self._send(status, b"", "text/html", where)

        def _send(
            self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            try:
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (a timeout fault): fine

    return Handler


def _damage(data: Any, fault: Fault | None, rows: bool) -> None:
    """Apply the faults that alter otherwise good data, in place."""
    kind = fault.kind if fault else None
    if fault and kind == "missing":
        for item in data if rows else [data]:
            item.pop(fault.field_name, None)
    first = data[0] if rows and data else (None if rows else data)
    if first is None:
        return
    if kind == "negative":
        first["spot"] = "-5"
    if fault and kind == "badrow":
        first[fault.field_name] = "n/a"
    if kind == "duplicate" and rows:
        data.append({**first, "currency": first["currency"].lower()})


@functools.cache
def _bomb() -> bytes:
    """25 MB of JSON whitespace, gzip-compressed to about 25 KB (made once)."""
    compressor = gzip.GzipFile  # streamed, so the 25 MB never sit in memory at once
    buffer = io.BytesIO()
    with compressor(fileobj=buffer, mode="wb", compresslevel=9) as out:
        out.write(b"[")
        chunk = b" " * 1_000_000
        for _ in range(25):
            out.write(chunk)
        out.write(b"]")
    return buffer.getvalue()


def _control(sim: SimExchange, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The ``/_sim`` endpoints behind ``python -m watcher.sim set|fault|clear``."""
    if path == "/_sim/set":
        sim.assign({str(k): str(v) for k, v in payload.items()})
        return {"ok": True, "rows": sim.rows()}
    if path == "/_sim/fault":
        params = dict(payload)
        kind = params.pop("kind")
        seconds = params.pop("seconds", None)
        times = params.pop("times", 1 if seconds is None else None)
        sim.inject(kind, times=times, seconds=seconds, **params)
        return {"ok": True}
    if path == "/_sim/clear":
        sim.clear_faults()
        return {"ok": True}
    if path == "/_sim/position":
        open_position(
            sim,
            str(payload["symbol"]).upper(),
            str(payload["side"]).lower(),
            Decimal(str(payload["size"])),
            Decimal(str(payload.get("entry") or 0)),
            int(payload.get("leverage") or 10),
        )
        return {"ok": True, "positions": len(sim.positions)}
    raise KeyError(f"no control endpoint {path}")


def sample_portfolio(sim: SimExchange) -> None:
    """A small, plausible account used by the demo and ``python -m watcher.sim``."""
    sim.set_coin("USDT", "1", spot="1500", contract="800")
    sim.set_coin("BTC", "60000", spot="0.05", contract="0.01")
    sim.set_coin("ETH", "3000", spot="1.2")


def _post(port: int, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    import requests

    try:
        answer = requests.post(f"http://127.0.0.1:{port}{path}", json=payload, timeout=5)
    except requests.RequestException:
        raise SystemExit(f"no simulator on 127.0.0.1:{port}; start one with 'serve'") from None
    if answer.status_code != 200:
        raise SystemExit(f"simulator: {answer.json().get('error', answer.text)}")
    return dict(answer.json())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m watcher.sim",
        description="A simulated MEXC (web endpoints and a Bypass-compatible API) on 127.0.0.1.",
        epilog="example: python -m watcher.sim serve --port 8099, then in another terminal "
        "python -m watcher.sim set USDT.spot=50 --port 8099",
    )
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the sample account until Ctrl-C")
    serve.add_argument("--web-key", default="WEB-demo-web-key", help="the web key it accepts")
    serve.add_argument("--api-key", default="demo", help="the Bypass API key it accepts")
    put = sub.add_parser(
        "set",
        help="set native amounts or prices: USDT.spot=50 BTC.price=61000; or open a position: "
        "set position BTC_USDT long --size 100 --entry 60000 --leverage 20 (--size 0 closes)",
    )
    put.add_argument("assignments", nargs="+", metavar="CUR.WALLET=AMOUNT")
    put.add_argument("--size", help="position: contracts (0 closes it)")
    put.add_argument("--entry", help="position: entry price (default: the current price)")
    put.add_argument("--leverage", type=int, default=10, help="position: leverage (default 10)")
    fault = sub.add_parser("fault", help="inject a fault: " + ", ".join(FAULT_KINDS))
    fault.add_argument("kind", choices=FAULT_KINDS)
    fault.add_argument("--for", dest="duration", help="how long, e.g. 30s (default: one request)")
    fault.add_argument("--times", type=int, help="how many requests")
    fault.add_argument("--status", type=int, help="HTTP status for status/html/raw")
    fault.add_argument("--code", type=int, help="MEXC code for the code fault")
    sub.add_parser("clear", help="remove every fault")
    for child in (parser, serve, put, fault, sub.choices["clear"]):
        child.add_argument("--port", type=int, default=8099)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "set" and args.assignments[0] == "position":
        return set_position(args)
    if args.command == "set":
        pairs = dict(a.split("=", 1) for a in args.assignments if "=" in a)
        answer = _post(args.port, "/_sim/set", pairs)
        print(f"{len(answer['rows'])} currencies; set {', '.join(pairs)}")
        return 0
    if args.command == "fault":
        from watcher.core.durations import parse_duration

        payload: dict[str, Any] = {"kind": args.kind}
        if args.times:
            payload["times"] = args.times
        if args.duration:
            payload["seconds"] = parse_duration(args.duration).total_seconds()
        payload |= {k: v for k, v in (("status", args.status), ("code", args.code)) if v}
        _post(args.port, "/_sim/fault", payload)
        print(f"fault {args.kind} injected" + (f" for {args.duration}" if args.duration else ""))
        return 0
    if args.command == "clear":
        _post(args.port, "/_sim/clear", {})
        print("faults cleared")
        return 0
    web_key = getattr(args, "web_key", "WEB-demo-web-key")
    return serve(args.port, web_key, getattr(args, "api_key", "demo"))


def set_position(args: argparse.Namespace) -> int:
    """``set position BTC_USDT long --size 100 --entry 60000 --leverage 20``."""
    if len(args.assignments) != 3 or args.size is None:
        raise SystemExit(
            "usage: set position SYMBOL long|short --size N [--entry P] [--leverage L]"
        )
    _, symbol, side = args.assignments
    if args.entry is None:  # the current price, as an order at market would get
        prices = requests_state(args.port)["prices"]
        args.entry = prices.get(symbol.split("_")[0].upper(), "0")
    payload = {"symbol": symbol, "side": side, "size": args.size, "entry": args.entry}
    answer = _post(args.port, "/_sim/position", {**payload, "leverage": args.leverage})
    what = "closed" if Decimal(args.size) == 0 else f"opened ({args.size} contracts)"
    print(f"{symbol.upper()} {side} {what}; {answer['positions']} position(s) open")
    return 0


def requests_state(port: int) -> dict[str, Any]:
    import requests

    return dict(requests.get(f"http://127.0.0.1:{port}/_sim/state", timeout=5).json())


def serve(port: int, web_key: str, api_key: str) -> int:
    sim = SimExchange(api_key=api_key, port=port, web_key=web_key)
    sample_portfolio(sim)
    print(
        f"simulated MEXC at {sim.mexc_url} (WATCHER_MEXC_URL, web key {web_key!r}); "
        f"Bypass API at {sim.url} (API key {api_key!r}); official API for ccxt at "
        f"{sim.mexc_url} (api_key {sim.official_key!r}, secret {sim.official_secret!r}); "
        "Ctrl-C stops",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        sim._server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
