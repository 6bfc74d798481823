"""``watcher migrate``: a SQLite state moves to PostgreSQL and goes on where it stopped."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from tests.cli import test_cli
from tests.cli.test_cli import once
from tests.support.process import watcher
from tests.support.receivers import free_port
from watcher.cli.main import main
from watcher.config.channels import Channel
from watcher.notify.delivery import Deliverer
from watcher.store import Store

env = test_cli.env  # the same settings as the other CLI tests


def test_firing_alerts_and_waiting_messages_move_announced_once(
    env, capsys, sim, receiver, pg_url, monkeypatch
) -> None:
    receiver.fail = 10**6  # the messages of this poll wait in the outbox
    sim.set_coin("USDT", "1", spot="50", contract="9000")
    code, data = once(capsys)
    assert code == 1 and len(data["notifications"]) == 3 and receiver.posts == []

    assert main(["migrate", "--to", pg_url]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("copied 4 alerts, 3 waiting messages, ")
    assert said[0].endswith(f"from {env['WATCHER_STATE']} to {pg_url.split('?')[0]}")

    monkeypatch.setenv("WATCHER_STATE", pg_url)
    receiver.fail = 0
    code, data = once(capsys)  # the same balances: nothing is announced again
    assert code == 1 and data["notifications"] == [] and receiver.posts == []
    store = Store(pg_url)  # the daemon's next delivery, after the backoff
    later = datetime.now(UTC) + timedelta(hours=1)
    channels = {"default": Channel("default", (receiver.url(),))}
    assert Deliverer(store, channels, name="vps-1").deliver(later).sent == 3
    assert Deliverer(store, channels).deliver(later + timedelta(hours=1)).sent == 0
    (post,) = receiver.posts  # the three waiting messages, once, as one message
    assert post["title"] == "watcher vps-1: 3 firing (critical)"
    assert "FIRING usdt-spot-low: USDT spot is 50, below 100" in post["message"]


def test_into_a_database_that_holds_a_state_is_refused(env, capsys, sim, pg_url) -> None:
    once(capsys)
    assert main(["migrate", "--to", pg_url]) == 0
    capsys.readouterr()
    assert main(["migrate", "--to", pg_url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("watcher: ") and "already holds a watcher state" in err


@pytest.mark.parametrize(
    "target", ["postgresql://w:hunter2@127.0.0.1/db", "postgresql://w@127.0.0.1/db?password=x"]
)
def test_a_password_in_the_url_is_refused_and_never_shown(env, capsys, target) -> None:
    assert main(["migrate", "--to", target]) == 2
    err = capsys.readouterr().err
    assert "WATCHER_STATE_PASSWORD" in err and "hunter2" not in err and "=x" not in err


def test_the_state_password_never_shows(env, capsys, monkeypatch, tmp_path) -> None:
    """Nothing listens there: the error names the server, never the password."""
    secret = "pw-SECRET-0123456789"
    monkeypatch.setenv("WATCHER_STATE", f"postgresql://watcher@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("WATCHER_STATE_PASSWORD", secret)
    for command in (["status"], ["once"], ["migrate", "--to", str(tmp_path / "back.db")]):
        assert main(command) == 2, command
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and err.startswith("watcher: PostgreSQL at postgresql://")
        assert secret not in out + err and "check that PostgreSQL runs" in err
    ran = watcher("run", **{k: os.environ[k] for k in os.environ if k.startswith("WATCHER_")})
    assert ran.returncode == 2 and secret not in ran.stdout + ran.stderr
    assert ran.stderr.count("\n") == 1 and "Traceback" not in ran.stderr
