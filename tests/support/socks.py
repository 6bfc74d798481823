"""A SOCKS5 proxy on 127.0.0.1 that checks what a real one checks.

RFC 1928 with the username/password method of RFC 1929 only, CONNECT only: a
client offering no password, or the wrong one, is refused as Dante or ssh -D
with authentication would refuse it. It records where it connected, so a test
can prove the traffic went through it.
"""

from __future__ import annotations

import select
import socket
import socketserver
import struct
import threading


def _exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        piece = sock.recv(count - len(data))
        if not piece:
            raise ConnectionError("client went away")
        data += piece
    return data


class Socks5Proxy:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()
        self.connects: list[tuple[str, int]] = []
        self.refused = 0
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    upstream = owner.greet(self.request)
                except (ConnectionError, OSError, struct.error):
                    return
                if upstream is not None:
                    with upstream:
                        owner.pump(self.request, upstream)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, password: str | None = None) -> str:
        secret = self.password.decode() if password is None else password
        return f"socks5h://{self.user.decode()}:{secret}@127.0.0.1:{self.server.server_address[1]}"

    def greet(self, client: socket.socket) -> socket.socket | None:
        """Method negotiation, the password check and CONNECT: the upstream, or None."""
        _, count = _exactly(client, 2)
        if 2 not in _exactly(client, count):  # no username/password offered
            client.sendall(b"\x05\xff")
            self.refused += 1
            return None
        client.sendall(b"\x05\x02")
        _, size = _exactly(client, 2)
        user = _exactly(client, size)
        password = _exactly(client, _exactly(client, 1)[0])
        if (user, password) != (self.user, self.password):
            client.sendall(b"\x01\x01")
            self.refused += 1
            return None
        client.sendall(b"\x01\x00")
        _, command, _, kind = _exactly(client, 4)
        if kind == 1:
            host = socket.inet_ntoa(_exactly(client, 4))
        elif kind == 3:
            host = _exactly(client, _exactly(client, 1)[0]).decode()
        else:
            host = socket.inet_ntop(socket.AF_INET6, _exactly(client, 16))
        (port,) = struct.unpack(">H", _exactly(client, 2))
        if command != 1:
            client.sendall(b"\x05\x07\x00\x01" + bytes(6))
            return None
        upstream = socket.create_connection((host, port), timeout=10)
        self.connects.append((host, port))
        client.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + bytes(2))
        return upstream

    @staticmethod
    def pump(client: socket.socket, upstream: socket.socket) -> None:
        """Bytes both ways as they come (a drip stays a drip) until either side closes."""
        pair = {client: upstream, upstream: client}
        while True:
            ready, _, _ = select.select(list(pair), [], [], 30)
            if not ready:
                return
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                pair[sock].sendall(data)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
