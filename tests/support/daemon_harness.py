"""Runs ``watcher run`` as a real subprocess against the simulated exchange."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import WEB_KEY
from watcher.sim.exchange import SimExchange


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Wait for an event from another process (not for a rule: that runs on a fake clock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


class DaemonProcess:
    def __init__(self, tmp: Path, sim: SimExchange, rules: str, **env: str) -> None:
        self.tmp = tmp
        self.rules = tmp / "rules.yaml"
        self.rules.write_text(rules)
        self.log = tmp / "daemon.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")},
            "WATCHER_WEB_KEY": WEB_KEY,
            "WATCHER_MEXC_URL": sim.mexc_url,
            "WATCHER_NAME": "vps-1",
            "WATCHER_RULES": str(self.rules),
            "WATCHER_STATE": str(tmp / "w.db"),
            "WATCHER_INTERVAL": "1s",
            "WATCHER_TIMEOUT": "1s",
            "WATCHER_LOG_FORMAT": "json",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run"],
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=self.tmp,
        )
        return self

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
