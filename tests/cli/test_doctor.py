"""``watcher doctor`` (#29, 2): every link checked, one paste-safe line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import WEB_KEY
from tests.support.receivers import Receiver
from watcher.cli.main import main
from watcher.sim.bot_api import TOKEN, FakeTelegram
from watcher.sim.exchange import SimExchange


@pytest.fixture
def setup(tmp_path: Path, sim: SimExchange, receiver: Receiver, monkeypatch) -> Path:
    sim.set_coin("USDT", "1", spot="12345.678", contract="800")
    bot = FakeTelegram()
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f'channels:\n  default: "{receiver.url("doctor-token-0123456789")}"\n'
        f"heartbeat: {{url: 'http://127.0.0.1:{receiver.port}/ping', style: plain}}\n"
        f"commands:\n  telegram: {{token: '${{BOT}}', chats: [1], api_url: '{bot.url}'}}\n"
        "rules:\n  - name: low\n    when: USDT.spot < 100\n"
    )
    for name, value in {
        "WATCHER_WEB_KEY": WEB_KEY,
        "WATCHER_MEXC_URL": sim.mexc_url,
        "WATCHER_RULES": str(rules),
        "WATCHER_STATE": str(tmp_path / "w.db"),
        "BOT": TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    yield rules
    bot.stop()


def test_doctor_checks_every_link_and_prints_no_secret_and_no_amount(setup, capsys, receiver):
    assert main(["doctor", "--send"]) == 0
    out = capsys.readouterr().out
    steps = [line.split(":")[0] for line in out.splitlines()]
    for expected in (
        "ok    settings",
        "ok    rules",
        "ok    main",  # DNS, TCP, key and answer, clock
        "skip  main",  # TLS: plain http on loopback
        "ok    channel default",
        "ok    heartbeat 127.0.0.1 DNS",
        "ok    telegram",
        "ok    state",
    ):
        assert expected in steps, (expected, out)
    assert "test message accepted" in out and "the token is @" in out
    assert out.rstrip().endswith("doctor: all good")
    for secret in (WEB_KEY, TOKEN, "doctor-token-0123456789", "12345", "12,345"):
        assert secret not in out
    assert receiver.posts[-1]["title"].endswith("test message")


def test_doctor_fails_on_the_broken_link_and_exits_1(setup, capsys, monkeypatch) -> None:
    monkeypatch.setenv("WATCHER_WEB_KEY", "WEB-wrong-key-0000")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL  main: key and answer: AuthError")
    assert "WEB-wrong-key-0000" not in out
    monkeypatch.setenv("WATCHER_MEXC_URL", "http://127.0.0.1:9")
    assert main(["doctor"]) == 1
    assert "FAIL  main: exchange TCP: 127.0.0.1:9" in capsys.readouterr().out
