"""The unit file passes systemd's own checks, where systemd-analyze exists."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "watcher.service"
ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def installed_copy(tmp_path: Path) -> Path:
    """The unit as the README installs it: ExecStart pointing at a real watcher."""
    watcher = Path(sys.executable).parent / "watcher"
    text = UNIT.read_text().replace("/opt/watcher/venv/bin/watcher", str(watcher))
    copy = tmp_path / "watcher.service"
    copy.write_text(text)
    return copy


@needs_systemd
def test_verify_is_clean(tmp_path: Path) -> None:
    done = subprocess.run(
        [ANALYZE, "verify", str(installed_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


@needs_systemd
def test_security_exposure_at_most_2_0() -> None:
    done = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--threshold=20", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Overall exposure level for watcher.service: 1." in done.stdout


def test_unit_has_what_the_daemon_relies_on() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=watcher",
        "ConfigurationDirectory=watcher",
        "\nLoadCredential=web_key:/etc/watcher/credentials/web_key\n",
        "DynamicUser=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet=\n",
        "MemoryDenyWriteExecute=yes",
    ):
        assert line in text
    loaded = [x for x in text.splitlines() if x.startswith("LoadCredential=")]
    assert loaded == ["LoadCredential=web_key:/etc/watcher/credentials/web_key"]
