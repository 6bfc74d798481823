"""Akamai's TLS front as ../shared/api/sources.md describes it, on 127.0.0.1.

It reads the ClientHello before answering. A handshake without GREASE values (RFC 8701:
0x0a0a, 0x1a1a, ... 0xfafa among the cipher suites or extensions), as OpenSSL's is,
gets the front's 403 HTML page whatever its headers; a Chrome-like one, which always
carries GREASE, is passed through to the simulator. Its certificate is signed by a CA
made for the test, which watcher trusts through WATCHER_CA_FILE.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
from pathlib import Path

PAGE = (
    b"<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD><BODY>You don't have permission to "
    b"access this resource.</BODY></HTML>\n"
)
DENIED = (
    b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nConnection: close\r\n"
    + f"Content-Length: {len(PAGE)}\r\n\r\n".encode()
    + PAGE
)


def grease(value: int) -> bool:
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def hello_has_grease(hello: bytes) -> bool:
    """Parse a TLS ClientHello record: GREASE among cipher suites or extension types."""
    if len(hello) < 44 or hello[0] != 0x16 or hello[5] != 0x01:
        return False
    at = 5 + 4 + 2 + 32  # record header, handshake header, version, random
    at += 1 + hello[at]  # session id
    suites_len = int.from_bytes(hello[at : at + 2], "big")
    suites = hello[at + 2 : at + 2 + suites_len]
    if any(grease(int.from_bytes(suites[i : i + 2], "big")) for i in range(0, len(suites), 2)):
        return True
    at += 2 + suites_len
    at += 1 + hello[at]  # compression methods
    end = at + 2 + int.from_bytes(hello[at : at + 2], "big")
    at += 2
    while at + 4 <= min(end, len(hello)):
        kind, size = int.from_bytes(hello[at : at + 2], "big"), hello[at + 2] << 8 | hello[at + 3]
        if grease(kind):
            return True
        at += 4 + size
    return False


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 that it signed: (ca.pem, cert.pem, key.pem)."""
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "front.pem", directory / "front.key", directory / "front.csr"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    quiet = {"check": True, "capture_output": True}
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(ca_key), "-out", str(ca), "-subj", "/CN=watcher test CA"],
        **quiet,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(csr), "-subj", "/CN=127.0.0.1"],
        **quiet,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)],
        **quiet,
    )  # fmt: skip
    return ca, cert, key


class TlsFront:
    def __init__(self, upstream: tuple[str, int], cert: Path, key: Path) -> None:
        self.upstream = upstream
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.handshakes: list[str] = []  # "browser" or "other", in order
        threading.Thread(target=self.serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            conn.settimeout(10)
            hello = conn.recv(16384, socket.MSG_PEEK)
            browser = hello_has_grease(hello)
            self.handshakes.append("browser" if browser else "other")
            tls = self.context.wrap_socket(conn, server_side=True)
            if not browser:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    head += tls.recv(4096) or b"\r\n\r\n"
                tls.sendall(DENIED)
                tls.close()
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=pipe, args=(upstream, tls), daemon=True).start()
            pipe(tls, upstream)

    def close(self) -> None:
        self.server.close()


def pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    for end in (source, sink):
        with contextlib.suppress(OSError, ssl.SSLError):
            end.close()
