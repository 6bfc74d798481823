"""systemd credentials: secrets handed to the service in ``$CREDENTIALS_DIRECTORY``.

Outside systemd the variable is unset and no credential is found. Reading the
environment is the configuration stage's job, so this lives here, not beside sd_notify.
"""

from __future__ import annotations

import os
from pathlib import Path


def credential(name: str) -> str | None:
    """Read one systemd credential by its plain name, or None when absent."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / name
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
