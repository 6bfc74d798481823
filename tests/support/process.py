"""``watcher`` as a real process: a clean environment (no ``WATCHER_*`` of the caller's)
with the given variables, and what it printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def watcher(
    *args: str, cwd: Path | None = None, **variables: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        capture_output=True,
        text=True,
        env={**env, **variables},
        cwd=cwd,
        timeout=60,
    )
