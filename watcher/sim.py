"""A small simulated MEXC Bypass exchange on 127.0.0.1 for tests and the demo.

It speaks ``GET /v1/getAssetsOverview`` as the spec says (auth header, network
header defaulting to TESTNET, both error shapes) and injects faults on demand.
Balances are native amounts times a price; every answer is deterministic.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from watcher.models import WALLETS

NATIVE_WALLETS = WALLETS[1:]
FAULT_KINDS = (
    "delay",  # sleep `delay` seconds before answering (client timeouts)
    "status",  # HTTP `status` with a JSON wrapper body, optional `retry_after`
    "code",  # HTTP 200 with exchange `code` != 0 and `message`
    "html",  # an HTML error page with HTTP `status`
    "truncated",  # a JSON body cut in half
    "missing",  # drop `field_name` from every row / the totals
    "numbers",  # amounts as JSON numbers instead of strings
    "negative",  # a negative amount
    "disconnect",  # close the connection without an answer
    "testnet",  # claim is_testnet=true whatever was asked
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


@dataclass
class Coin:
    price: Decimal
    amounts: dict[str, Decimal] = field(default_factory=dict)


class SimExchange:
    """Mutable, thread-safe state of the simulated exchange plus its HTTP server."""

    def __init__(self, api_key: str = "test-api-key", port: int = 0) -> None:
        self.api_key = api_key
        self.coins: dict[str, Coin] = {}
        self.faults: deque[Fault] = deque()
        self.requests: deque[dict[str, Any]] = deque(maxlen=256)  # the latest, for tests
        self.served = 0
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
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

    def remove_coin(self, currency: str) -> None:
        with self.lock:
            self.coins.pop(currency, None)

    def inject(self, kind: str, times: int | None = 1, **params: Any) -> None:
        """Queue a fault for the next ``times`` requests (None: until cleared)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self.lock:
            self.faults.append(Fault(kind=kind, times=times, **params))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def _next_fault(self) -> Fault | None:
        with self.lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.popleft()
            return fault

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
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

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


def _handler_for(sim: SimExchange) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms stall

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests and the demo read their own output."""

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            sim.requests.append({"path": parts.path, "query": query, "headers": dict(self.headers)})
            sim.served += 1
            network = self.headers.get("X-MEXC-NETWORK", "TESTNET").upper()
            testnet = network != "MAINNET"
            fault = sim._next_fault()
            if fault and fault.kind == "delay":
                time.sleep(fault.delay)
                fault = None
            if fault and fault.kind == "disconnect":
                self.close_connection = True
                return
            if self.headers.get("X-MEXC-BYPASS-API-KEY") != sim.api_key:
                return self._wrapper(401, "Invalid or missing API key", testnet)
            if parts.path != "/v1/getAssetsOverview":
                return self._wrapper(404, "Not found", testnet)
            self._answer(fault, query.get("convert", ["false"])[0] == "true", testnet)

        def _answer(self, fault: Fault | None, convert: bool, testnet: bool) -> None:
            kind = fault.kind if fault else None
            if fault and kind == "status":
                return self._wrapper(fault.status, fault.message, testnet, fault.retry_after)
            if fault and kind == "raw":
                return self._send(fault.status, fault.body.encode(), "application/json")
            if fault and kind == "html":
                page = f"<html><body><h1>{fault.status} Bad Gateway</h1></body></html>"
                return self._send(fault.status, page.encode(), "text/html")
            data: Any = sim.rows() if convert else sim.totals()
            if fault and kind == "missing":
                for item in data if convert else [data]:
                    item.pop(fault.field_name, None)
            if kind == "negative":
                (data[0] if convert and data else data)["spot"] = "-5"
            body = {
                "data": data,
                "code": fault.code if fault and kind == "code" else 0,
                "msg": fault.message if fault and kind == "code" else "success",
                "timestamp": int(time.time() * 1000),
                "is_testnet": True if kind == "testnet" else testnet,
            }
            text = json.dumps(body)
            if kind == "numbers":
                text = re.sub(r'"(-?\d+(?:\.\d+)?)"', r"\1", text)
            if kind == "truncated":
                text = text[: len(text) // 2]
            self._send(200, text.encode(), "application/json")

        def _wrapper(
            self, status: int, message: str, testnet: bool, retry_after: str | None = None
        ) -> None:
            body = {
                "success": False,
                "code": status,
                "message": message,
                "timestamp": int(time.time() * 1000),
                "is_testnet": testnet,
            }
            extra = {"Retry-After": retry_after} if retry_after else {}
            self._send(status, json.dumps(body).encode(), "application/json", extra)

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


def sample_portfolio(sim: SimExchange) -> None:
    """A small, plausible account used by the demo and ``python -m watcher.sim``."""
    sim.set_coin("USDT", "1", spot="1500", contract="800")
    sim.set_coin("BTC", "60000", spot="0.05", contract="0.01")
    sim.set_coin("ETH", "3000", spot="1.2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m watcher.sim",
        description="Serve a simulated MEXC Bypass API on 127.0.0.1.",
        epilog="example: python -m watcher.sim --port 8099 --api-key demo",
    )
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--api-key", default="demo")
    args = parser.parse_args(argv)
    sim = SimExchange(api_key=args.api_key, port=args.port)
    sample_portfolio(sim)
    print(f"simulated exchange at {sim.url} (API key {args.api_key!r}); Ctrl-C stops", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sim._server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
