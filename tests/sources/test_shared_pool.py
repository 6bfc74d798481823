"""#32: every account's client takes its direct connections from one pool per host, so
5,000 accounts make no TCP (or TLS) handshake per poll; what carries an account (its
headers, its cookies) stays with its own session."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from watcher.core.secrets import Masker
from watcher.net.client import HttpClient


class Seen(http.server.BaseHTTPRequestHandler):
    """Records, per request, the client's port and the headers that name an account. It
    plays no particular service: any HTTP/1.1 server keeps a connection open between
    requests unless told otherwise (RFC 9112, 9.3), and that is all this test needs."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[int, str, str]] = []

    def do_GET(self) -> None:
        self.seen.append(
            (self.client_address[1], self.headers.get("X-Key", ""), self.headers.get("Cookie", ""))
        )
        body = b"{}"  # HttpClient.get hands the body on unread: its content is not the point
        self.send_response(200)
        if self.path == "/login":  # a cookie for whoever asked
            self.send_header("Set-Cookie", f"session={self.headers.get('X-Key')}")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None: ...


@pytest.fixture
def server() -> Iterator[str]:
    Seen.seen = []
    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Seen)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_accounts_share_connections_and_keep_their_own_headers_and_cookies(server: str) -> None:
    clients = {
        name: HttpClient({"X-Key": name}, timeout=5, interval=60, scrub=Masker())
        for name in ("alice", "bob")
    }
    clients["alice"].get(server + "/login", None, time.monotonic() + 5)
    for _ in range(3):
        for client in clients.values():
            client.get(server + "/balances", None, time.monotonic() + 5)
            client.rest()  # after each poll, as the sources do at a 60 s interval
    ports = {port for port, _, _ in Seen.seen}
    assert len(ports) == 1  # one connection served both accounts, poll after poll
    assert [key for _, key, _ in Seen.seen] == ["alice"] + ["alice", "bob"] * 3
    cookies = {key: cookie for _, key, cookie in Seen.seen[1:]}
    assert cookies == {"alice": "session=alice", "bob": ""}  # bob never carries alice's
    for client in clients.values():
        client.close()


def test_a_deadline_cuts_only_a_connection_its_request_still_holds(server: str) -> None:
    """A connection went back to the pool and now carries another account's request:
    the first request's deadline, passing late, leaves it alone."""
    from watcher.net import client

    port = int(server.rsplit(":", 1)[1])
    conn = client.WATCHED_POOLS["http"].ConnectionCls("127.0.0.1", port)
    first, second = client.Watch(time.monotonic()), client.Watch(time.monotonic())
    try:
        for watch in (first, second):  # one request, then another on the same connection
            client._current.watch = watch
            conn.request("GET", "/balances")
            client._current.watch = None
            if watch is first:
                conn.getresponse().read()
        first.fire()  # too late: the connection is the second request's now
        assert not first.cut and conn.getresponse().status == 200
        second.fire()
        assert second.cut
    finally:
        client._current.watch = None
        conn.close()
