"""A real local receiver for apprise's ``json://``: what the tests, the soak and the demo
post to. It answers as a plain webhook does (200, or 500/400 when told to fail or refuse).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Receiver:
    """Collects apprise json:// posts; ``fail`` makes the next N answers HTTP 500."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.arrived: list[float] = []  # time.time() of each accepted post
        self.fail = 0
        self.delay = 0.0  # seconds to wait before answering: a slow or dripping receiver
        self.accept: Any = None  # optional check of each post: False answers HTTP 400
        self.refused: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                post = json.loads(body)
                if owner.delay:
                    time.sleep(owner.delay)
                status = 200
                with owner.lock:
                    if owner.fail > 0:
                        owner.fail -= 1
                        status = 500
                    elif owner.accept is not None and not owner.accept(post):
                        owner.refused.append(post)
                        status = 400
                    else:
                        owner.posts.append(post)
                        owner.paths.append(self.path)
                        owner.arrived.append(time.time())
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def messages(self) -> list[str]:
        with self.lock:
            return [p["message"] for p in self.posts]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def fill_disk(directory: Path) -> Path:
    """Take every free byte of a small disk (a tmpfs the caller mounted): a full-disk fault."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler
