"""Second adversarial round, findings 8, 9 and 11: the installed command as root.

``watcher.env`` is read as data, never by a shell; only the files watcher created in the
service's state directory change owner; ``setup`` quotes what it writes; ``install.sh``
writes no temporary file through a symlink.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from tests.support.receivers import Receiver
from watcher.cli.setup_wizard import env_quote
from watcher.cli.wrapper import environment, hand_back

ROOT = Path(__file__).resolve().parents[2]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")


def run_wrapper(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    etc, state = tmp / "etc", tmp / "state"
    return subprocess.run(
        [sys.executable, "-m", "watcher.cli.wrapper", str(etc), str(state), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=60,
    )


def test_watcher_env_is_read_as_data_not_run(tmp_path: Path, receiver: Receiver) -> None:
    etc = tmp_path / "etc"
    (etc / "credentials").mkdir(parents=True)
    hostile = receiver.url("hook&b;touch${IFS}MARKER1")
    (etc / "watcher.env").write_text(
        f"NOTIFY_URL={hostile}\nEVIL=$(touch MARKER2)\nOTHER=`touch MARKER3`\n"
    )
    (etc / "rules.yaml").write_text("channels:\n  default: '${NOTIFY_URL}'\nrules: []\n")
    done = run_wrapper(tmp_path, "test-notify")
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob("MARKER*")) and not Path("/x").exists()
    assert len(receiver.posts) == 1  # the message went out, to the URL as written
    read = environment(etc, tmp_path / "state", {})
    assert read["NOTIFY_URL"] == hostile and read["EVIL"] == "$(touch MARKER2)"


@pytest.mark.parametrize(
    "value",
    ["json://h/a&b;touch${IFS}/x", "json://h/it's", 'json://h/"q"\\s', "plain $HOME `id`"],
)
def test_setup_quotes_values_that_read_back_the_same(tmp_path: Path, value: str) -> None:
    path = tmp_path / "watcher.env"
    path.write_text(f"NOTIFY_URL={env_quote(value)}\n")
    assert dotenv_values(path, interpolate=False)["NOTIFY_URL"] == value


@root_only
def test_only_watchers_own_files_in_the_service_directory_change_owner(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    os.chown(state_dir, 4242, 4242)
    for name in ("watcher.db", "watcher.db-wal", "notes.txt"):
        (state_dir / name).write_text("x")
    (state_dir / "watcher.db-shm").symlink_to("/etc/hostname")
    handed = hand_back(state_dir / "watcher.db", state_dir)
    assert sorted(p.name for p in handed) == ["watcher.db", "watcher.db-wal"]
    assert (state_dir / "watcher.db").stat().st_uid == 4242
    assert (state_dir / "notes.txt").stat().st_uid == 0
    assert os.stat("/etc/hostname").st_uid == 0
    assert os.lstat(state_dir / "watcher.db-shm").st_uid == 0


@root_only
def test_a_state_path_elsewhere_or_relative_changes_no_owner(tmp_path: Path) -> None:
    state_dir, elsewhere = tmp_path / "state", tmp_path / "elsewhere"
    for folder in (state_dir, elsewhere):
        folder.mkdir()
        os.chown(folder, 4242, 4242)
        (folder / "watcher.db").write_text("x")
    assert hand_back(elsewhere / "watcher.db", state_dir) == []
    assert hand_back(Path("watcher.db"), state_dir) == []
    assert (elsewhere / "watcher.db").stat().st_uid == 0


def test_version_through_the_wrapper_touches_nothing(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    done = run_wrapper(tmp_path, "--version")
    assert done.returncode == 0 and list((tmp_path / "state").iterdir()) == []


def test_install_writes_no_temporary_file_through_a_symlink(tmp_path: Path) -> None:
    root = tmp_path / "root"
    target = tmp_path / "victim"
    target.write_text("keep me\n")
    for name in ("etc/systemd/system/watcher.service.tmp", "usr/local/bin/watcher.tmp"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(target)
    done = subprocess.run(
        ["make", "-s", "install", f"DESTDIR={root}", f"PYTHON={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert target.read_text() == "keep me\n"
    wrapper = (root / "usr/local/bin/watcher").read_text()
    assert "watcher.cli.wrapper" in wrapper and ". /etc" not in wrapper and "chown" not in wrapper
