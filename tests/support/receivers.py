"""Real local receivers for apprise: an HTTP server for json:// and an SMTP server."""

from __future__ import annotations

from typing import Any

from aiosmtpd.controller import Controller

from watcher.sim.receiver import Receiver, free_port

__all__ = ["Mailbox", "Receiver", "free_port"]


class Mailbox:
    """An aiosmtpd server on 127.0.0.1 that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"

    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=watcher@example.com&to=ops@example.com"

    def stop(self) -> None:
        self.controller.stop()
