"""``/usr/local/bin/watcher``: watcher as the service runs it, for a person at a shell.

The installed command is two lines of ``sh`` that hand over to this module, with the
configuration directory and the service's state directory baked in. Run with ``sudo``,
it must not become a way to run code as root or to take over files:

- ``watcher.env`` is read as data, the way systemd's ``EnvironmentFile=`` reads it
  (python-dotenv, no interpolation): a value such as ``a&b;touch${IFS}/x`` is a value,
  never a command.
- Afterwards, only the files watcher itself created in the service's state directory
  (the database and its ``-wal``, ``-shm`` and ``.lock`` siblings) are handed back to the
  directory's owner: never a directory that ``WATCHER_STATE`` merely names, never a
  symlink, never anything else.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from dotenv import dotenv_values


def environment(etc: Path, state_dir: Path, base: Mapping[str, str]) -> dict[str, str]:
    """The service's settings over this shell's, and the service's paths as defaults."""
    path = etc / "watcher.env"
    found = dotenv_values(path, interpolate=False) if os.access(path, os.R_OK) else {}
    env = {**base, **{k: v for k, v in found.items() if v is not None}}
    env.setdefault("WATCHER_RULES", str(etc / "rules.yaml"))
    env.setdefault("WATCHER_STATE", str(state_dir / "watcher.db"))
    env.setdefault("CREDENTIALS_DIRECTORY", str(etc / "credentials"))
    env["WATCHER_CONFIG_DIR"] = str(etc)
    return env


def hand_back(state: Path, state_dir: Path) -> list[Path]:
    """Give the service's user the files of ``state`` that root created in ``state_dir``.

    Nothing happens unless ``state`` lies directly in the service's state directory and
    that directory belongs to someone else; then only regular files named after the
    database (``watcher.db``, ``watcher.db-wal``, ...) and owned by root change owner."""
    if os.geteuid() != 0 or not state.is_absolute():
        return []
    try:
        if state.parent.resolve(strict=True) != state_dir.resolve(strict=True):
            return []
        owner = os.stat(state_dir, follow_symlinks=False)
    except OSError:
        return []
    if owner.st_uid == 0 or not stat.S_ISDIR(owner.st_mode):
        return []
    handed = []
    for entry in os.scandir(state_dir):
        if not entry.name.startswith(state.name) or not entry.is_file(follow_symlinks=False):
            continue
        if entry.stat(follow_symlinks=False).st_uid == 0:
            os.chown(entry.path, owner.st_uid, owner.st_gid, follow_symlinks=False)
            handed.append(Path(entry.path))
    return handed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m watcher.cli.wrapper ETC STATE_DIR [watcher arguments...]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print("usage: python -m watcher.cli.wrapper ETC STATE_DIR [ARGS...]", file=sys.stderr)
        return 2
    etc, state_dir, rest = Path(args[0]), Path(args[1]), args[2:]
    os.environ.update(environment(etc, state_dir, dict(os.environ)))
    from watcher.cli.main import main as watcher

    try:
        return watcher(rest)
    finally:
        hand_back(Path(os.environ["WATCHER_STATE"]), state_dir)


if __name__ == "__main__":
    raise SystemExit(main())
