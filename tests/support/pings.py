"""A local heartbeat service (healthchecks.io, Uptime Kuma): records each ping it gets."""

from __future__ import annotations

import contextlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class PingServer:
    """Records GETs (path and query) with their time; ``hang`` makes it never answer,
    ``endless`` answers 200 with a body that never ends."""

    def __init__(self, hang: bool = False, endless: bool = False) -> None:
        self.hits: list[tuple[float, str]] = []
        self.bodies: list[tuple[str, bytes]] = []  # what a POST ping carried (a reason)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                owner.bodies.append((self.path, self.rfile.read(length)))
                self.do_GET()

            def do_GET(self) -> None:
                owner.hits.append((time.monotonic(), self.path))
                if hang:
                    time.sleep(30)
                if endless:
                    self.send_response(200)
                    self.end_headers()
                    with contextlib.suppress(OSError):
                        while True:
                            self.wfile.write(b"x" * 65536)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
