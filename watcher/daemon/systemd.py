"""sd_notify, spoken directly (four lines of socket code), and the watchdog period.

Outside systemd ``NOTIFY_SOCKET`` is unset and every notify call is a no-op.
Credentials are read by ``watcher.config.credentials``.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace
        self.address = address
        self.socket: socket.socket | None = None
        if address:
            self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def send(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines; never raises (a lost ping must not kill the daemon)."""
        if self.socket is None:
            return False
        message = "\n".join(f"{k.upper()}={v}" for k, v in fields.items())
        try:
            self.socket.sendto(message.encode(), self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(ready="1", status=status)

    def status(self, status: str) -> bool:
        return self.send(status=status)

    def watchdog(self) -> bool:
        return self.send(watchdog="1")

    def stopping(self) -> bool:
        return self.send(stopping="1")


def watchdog_period() -> timedelta | None:
    """Half of systemd's ``WatchdogSec`` (as it recommends), when this process is watched."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return timedelta(microseconds=int(usec) / 2)
