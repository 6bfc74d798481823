"""One writer per state database: an exclusive ``flock`` on ``<state>.lock``.

Two daemons on one database would each deliver every message. The lock is
released by the kernel when the process ends, however it ends, so a crash
never leaves a stale lock behind; the file keeps the holder's PID for the
error line.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from watcher.core.errors import StoreError


class StateLock:
    def __init__(self, state: Path | str) -> None:
        self.path = Path(f"{state}.lock")
        self.handle: int | None = None

    def holder(self) -> int | None:
        """The PID of a process that holds the lock, or None when it is free."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        finally:
            os.close(fd)
        return None

    def acquire(self) -> None:
        """Take the lock for this process, or raise naming the PID that has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise StoreError(
                f"another watcher (PID {text or '?'}) is running on this state database "
                f"({self.path.with_suffix('')}); stop it first, or set WATCHER_STATE to "
                "another file"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.handle = fd

    def release(self) -> None:
        if self.handle is not None:
            os.close(self.handle)
            self.handle = None
