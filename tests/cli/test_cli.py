"""The command line end to end: real simulated exchange, real SQLite, real receivers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import API_KEY, WEB_KEY
from tests.support.receivers import Receiver
from watcher.cli.main import COMMANDS, main
from watcher.sim.exchange import SimExchange

RULES = """
channels:
  default: "{url}"
rules:
  - name: usdt-spot-low
    when: USDT.spot < 100
    message: "USDT spot is {{value}}, below {{threshold}}"
  - name: contract-heavy
    when: contract / total > 60%
    severity: critical
  - name: coin-heavy
    each: currency
    when: contract > 80% * total and total > 10
  - name: slow
    when: USDT.spot < 100
    for: 10m
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sim: SimExchange, receiver: Receiver):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(url=receiver.url()))
    values = {
        "WATCHER_WEB_KEY": WEB_KEY,
        "WATCHER_MEXC_URL": sim.mexc_url,
        "WATCHER_NAME": "vps-1",
        "WATCHER_RULES": str(rules),
        "WATCHER_STATE": str(tmp_path / "w.db"),
        "WATCHER_TIMEOUT": "1s",
        "WATCHER_INTERVAL": "5s",
        "WATCHER_LOG_FORMAT": "json",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def once(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, dict]:
    code = main(["once", "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_once_json_quiet_account(env, capsys, sim: SimExchange, receiver: Receiver) -> None:
    code, data = once(capsys)
    assert code == 0
    assert data["source"] == "mexc" and data["network"] is None
    assert data["alerts"] == [] and data["notifications"] == []
    assert data["fetched_at"].endswith("+00:00")
    assert {r["path"].rsplit("/", 2)[-2] for r in sim.requests} == {"convert", "overview"}
    assert receiver.posts == []
    btc = data["balances"]["rows"]["BTC"]
    assert btc["spot"] == "3000.00" and btc["originSpot"] == "0.05" and btc["no_data"] is False
    assert data["balances"]["totals"]["total"] == "5900.00"


def test_once_json_shows_an_unreadable_row_as_no_data(env, capsys, sim: SimExchange) -> None:
    sim.inject("badrow", field_name="spot")
    code, data = once(capsys)
    assert data["error"] is None and data["balances"]["rows"]["BTC"] == {"no_data": True}
    assert data["balances"]["rows"]["USDT"]["spot"] == "1500"


def test_once_json_keeps_stdout_for_json_when_a_channel_prints(env, capsys, sim) -> None:
    """A script pipes `once --json` into jq: console:// messages go to stderr instead."""
    Path(env["WATCHER_RULES"]).write_text(
        "channels:\n  default: console://\nrules:\n  - name: low\n    when: USDT.spot < 100\n"
    )
    sim.set_coin("USDT", "1", spot="50")
    assert main(["once", "--json"]) == 1
    captured = capsys.readouterr()
    assert [a["rule"] for a in json.loads(captured.out)["alerts"]] == ["low"]
    assert "FIRING low" in captured.err


def test_once_json_fires_persists_and_notifies(env, capsys, sim, receiver) -> None:
    sim.set_coin("USDT", "1", spot="50", contract="9000")
    code, data = once(capsys)
    assert code == 1
    alerts = {(a["account"], a["rule"], a["currency"]): a for a in data["alerts"]}
    assert alerts[("main", "usdt-spot-low", None)] == {
        "account": "main",
        "rule": "usdt-spot-low",
        "currency": None,
        "state": "firing",
        "value": "50",
        "threshold": "100",
        "severity": "warning",
        "since": alerts[("main", "usdt-spot-low", None)]["since"],
    }
    assert alerts[("main", "contract-heavy", None)]["severity"] == "critical"
    assert alerts[("main", "coin-heavy", "USDT")]["state"] == "firing"
    assert alerts[("main", "slow", None)]["state"] == "pending"
    assert ("main", "coin-heavy", "BTC") not in alerts
    assert sorted((n["rule"], n["kind"]) for n in data["notifications"]) == [
        ("coin-heavy", "firing"),
        ("contract-heavy", "firing"),
        ("usdt-spot-low", "firing"),
    ]
    (post,) = receiver.posts
    assert post["title"] == "watcher vps-1: 3 firing (critical)" and post["type"] == "failure"
    assert "FIRING usdt-spot-low: USDT spot is 50, below 100" in post["message"]
    # A second run: already announced, so nothing is sent again.
    code, data = once(capsys)
    assert code == 1 and data["notifications"] == []
    assert len(receiver.posts) == 1
    # Spot comes back: resolved once.
    sim.set_coin("USDT", "1", spot="5000", contract="10")
    code, data = once(capsys)
    assert code == 0
    assert {(a["rule"], a["state"]) for a in data["alerts"]} >= {("usdt-spot-low", "resolved")}
    assert (
        "RESOLVED usdt-spot-low after 0s: USDT.spot < 100 no longer holds"
        in (receiver.posts[-1]["message"])
    )


def test_dry_run_writes_and_sends_nothing(env, capsys, sim, receiver, tmp_path) -> None:
    sim.set_coin("USDT", "1", spot="50")
    code, data = once(capsys, "--dry-run")
    assert code == 1 and data["notifications"]
    assert receiver.posts == [] and not (tmp_path / "w.db").exists()


def test_exchange_down_exits_3_and_keeps_state(env, capsys, sim, receiver) -> None:
    sim.set_coin("USDT", "1", spot="50")
    once(capsys)
    sim.inject("status", times=None, status=503, message="maintenance")
    code = main(["once", "--json"])
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert code == 3
    assert "HTTP 503" in data["error"] and "HTTP 503" in captured.err
    states = {(a["rule"], a["state"]) for a in data["alerts"]}
    assert ("usdt-spot-low", "firing") in states  # an error is never a zero balance
    assert not any(n["kind"] == "resolved" for n in data["notifications"])


def test_auth_failure_fires_builtin_once(env, capsys, sim, receiver) -> None:
    sim.inject("code", times=None, code=402, message="API key expired")
    assert main(["once"]) == 3
    assert main(["once"]) == 3
    capsys.readouterr()
    titles = [p["title"] for p in receiver.posts]
    assert titles == ["watcher vps-1: 1 firing (critical)"]
    assert "log in to MEXC again" in receiver.posts[0]["message"]
    assert API_KEY not in receiver.posts[0]["message"]


def test_text_output_is_a_table(env, capsys, sim) -> None:
    sim.set_coin("BTC", "60000", spot="1.5")
    assert main(["once", "--dry-run"]) == 0
    out = capsys.readouterr().out
    table = out.split("\n\n")[0].splitlines()
    btc = next(line for line in table if line.startswith("BTC"))
    assert btc.split() == ["BTC", "90,600", "90,000", "600", "1.51"]
    assert len({len(line) for line in table if "ACCOUNT" not in line}) == 1  # aligned
    assert "no alerts pending or firing" in out


def test_check_ok_and_errors(env, capsys, tmp_path) -> None:
    assert main(["check"]) == 0
    assert "4 rules, 1 channel: OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "channels:\n  default: 'console://'\nrules:\n  - name: x\n    when: USDT.spto < 1\n"
    )
    assert main(["check", "--rules", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"watcher: {bad}:5:16: rule x: when: unknown field 'spto'; did you mean 'spot'?\n"


def test_bad_settings_one_line_per_variable(monkeypatch, capsys) -> None:
    monkeypatch.setenv("WATCHER_INTERVAL", "soon")
    monkeypatch.setenv("WATCHER_BASE_URL", "http://example.com/v1")
    assert main(["check"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "watcher: WATCHER_BASE_URL: plain http would send the key in clear; use https",
        "watcher: WATCHER_INTERVAL: expected a duration like 30s, 5m or 1h, got 'soon'",
    ]


def test_missing_web_key_is_one_line(monkeypatch, capsys, tmp_path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES.format(url="console://"))
    assert main(["once"]) == 2
    assert main(["run"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(e.startswith("watcher: WATCHER_WEB_KEY is not set") for e in err)


def test_bypass_source_needs_the_api_key_alone(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setenv("WATCHER_SOURCE", "bypass")
    (tmp_path / "rules.yaml").write_text(RULES.format(url="console://"))
    assert main(["once"]) == 2
    assert capsys.readouterr().err.startswith("watcher: WATCHER_API_KEY is not set")


def test_usage_mistakes_exit_2_without_traceback(capsys) -> None:
    assert main(["frobnicate"]) == 2
    assert main(["once", "--jsn"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 2


def test_unreachable_exchange_exits_3(env, capsys, sim, monkeypatch) -> None:
    sim.stop()
    assert main(["once"]) == 3
    assert "connection refused" in capsys.readouterr().err


def test_status_silence_and_unsilence(env, capsys, sim, receiver) -> None:
    sim.set_coin("USDT", "1", spot="50")
    main(["once"])
    assert main(["silence", "usdt-spot-low", "--for", "2h", "--comment", "topping up"]) == 0
    assert main(["silence", "nope", "--for", "2h"]) == 2
    assert main(["silence", "--list"]) == 0
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["last_result"] == "ok" and status["outbox"] == 0
    assert [s["comment"] for s in status["silences"]] == ["topping up"]
    assert {a["rule"] for a in status["alerts"]} >= {"usdt-spot-low", "slow"}
    assert main(["status"]) == 0
    assert "usdt-spot-low" in capsys.readouterr().out
    assert main(["unsilence", str(status["silences"][0]["id"])]) == 0
    assert main(["unsilence", "999"]) == 2


def test_status_tells_delivered_from_waiting(env, capsys, sim, receiver) -> None:
    """#30, 4: a message that never arrived (receiver down) is waiting, not "notified"."""
    receiver.fail = 10**6
    sim.set_coin("USDT", "1", spot="50")
    main(["once"])
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    low = next(
        a for a in json.loads(capsys.readouterr().out)["alerts"] if a["rule"] == "usdt-spot-low"
    )
    assert low["last_delivered"] is None and low["waiting"] == 1
    assert main(["status"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "usdt-spot-low" in line)
    assert row.split()[-2:] == ["never", "1"]
    receiver.fail = 0
    from datetime import UTC, datetime, timedelta

    from watcher.config.channels import Channel
    from watcher.notify.delivery import Deliverer
    from watcher.store import Store

    store = Store(env["WATCHER_STATE"])  # the daemon's next cycle, after the backoff
    later = datetime.now(UTC) + timedelta(hours=1)
    channels = {"default": Channel("default", (receiver.url(),))}
    assert Deliverer(store, channels).deliver(later).sent >= 1
    store.close()
    assert main(["status", "--json"]) == 0
    low = next(
        a for a in json.loads(capsys.readouterr().out)["alerts"] if a["rule"] == "usdt-spot-low"
    )
    delivered = datetime.fromisoformat(low["last_delivered"])
    assert abs(delivered - later) < timedelta(seconds=1) and low["waiting"] == 0


def test_silence_mutes_notifications_end_to_end(env, capsys, sim, receiver) -> None:
    main(["once"])
    assert main(["silence", "usdt-spot-low", "--for", "1h"]) == 0
    sim.set_coin("USDT", "1", spot="50")
    main(["once"])
    titles = [p["message"] for p in receiver.posts]
    assert not any("usdt-spot-low" in t or "USDT spot" in t for t in titles)


def test_test_notify_reports_per_url_masked(env, capsys, receiver, tmp_path, monkeypatch) -> None:
    assert main(["test-notify"]) == 0
    assert capsys.readouterr().out.startswith("ok   default: json://127.0.0.1:")
    assert receiver.posts[0]["title"] == "watcher vps-1: test message"  # names the instance
    rules = tmp_path / "two.yaml"
    rules.write_text("channels:\n  default: 'json://127.0.0.1:9/${TOK}'\nrules: []\n")
    monkeypatch.setenv("TOK", "VERYSECRETTOKEN123")
    assert main(["test-notify", "--rules", str(rules)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL default:") and "VERYSECRETTOKEN123" not in out
    assert main(["test-notify", "nope"]) == 2


def test_every_command_has_help_with_an_example(capsys) -> None:
    """`python -m watcher --help` as a process once; each command's help in-process."""
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and "example: watcher" in done.stdout, done.stderr
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exited:
            main([name, "--help"])
        assert exited.value.code == 0 and "example: watcher" in capsys.readouterr().out, name


def test_web_key_expiry_warns_12h_before_and_stores_only_a_hash(
    env, capsys, sim, receiver, monkeypatch, tmp_path
) -> None:
    from datetime import UTC, datetime, timedelta

    fresh = datetime.now(UTC) - timedelta(days=4, hours=11)
    monkeypatch.setenv("WATCHER_WEB_KEY_ISSUED", fresh.isoformat())
    main(["once"])
    assert receiver.posts == []  # 13 h left: quiet
    old = datetime.now(UTC) - timedelta(days=4, hours=13)
    monkeypatch.setenv("WATCHER_WEB_KEY_ISSUED", old.isoformat())
    main(["once"])
    (post,) = receiver.posts
    assert "the MEXC web key expires" in post["message"] and "(in 10h59m" in post["message"]
    assert "update WATCHER_WEB_KEY" in post["message"]
    main(["once"])
    assert len(receiver.posts) == 1  # announced once
    # Without the issue time, watcher counts from the first time it saw the key.
    monkeypatch.delenv("WATCHER_WEB_KEY_ISSUED")
    main(["once"])
    assert receiver.posts[-1]["title"] == "watcher vps-1: 1 resolved"
    capsys.readouterr()
    files = [tmp_path / "w.db", tmp_path / "w.db-wal"]
    database = b"".join(f.read_bytes() for f in files if f.exists())
    assert WEB_KEY.encode() not in database and API_KEY.encode() not in database
    import hashlib
    import sqlite3

    with sqlite3.connect(tmp_path / "w.db") as db:
        meta = dict(db.execute("SELECT key, value FROM meta"))
    assert meta["main/web_key_hash"] == hashlib.sha256(WEB_KEY.encode()).hexdigest()[:16]


def test_counts_read_in_good_grammar_and_durations_in_words_get_a_hint(
    env, capsys, tmp_path
) -> None:
    """Issue "What a newcomer tripped on", point 10."""
    one = tmp_path / "one.yaml"
    one.write_text("channels: {default: 'console://'}\nrules:\n  - name: a\n    when: total > 1\n")
    assert main(["check", "--rules", str(one)]) == 0
    assert capsys.readouterr().out.endswith(": 1 rule, 1 channel: OK\n")
    assert main(["silence", "low", "--for", "4", "hours"]) == 2
    assert "'hours' is not a duration unit: write durations like 4h or 30m" in (
        capsys.readouterr().err
    )


def test_balances_shows_every_wallet_of_every_account(env, capsys, sim) -> None:
    """Issue "What a newcomer tripped on", point 6: once shows only what the rules read."""
    assert main(["balances", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    main_account = data["accounts"]["main"]
    assert main_account["error"] is None
    rows = main_account["balances"]["rows"]
    assert rows["BTC"]["originSpot"] == "0.05" and rows["USDT"]["contract"] == "800"
    assert main_account["balances"]["totals"]["total"] == "5900.00"
    assert main(["balances"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("main:\n") and "ACCOUNT" in table and "5,900" in table


def test_once_shows_a_percent_rule_in_percent(env, capsys, sim, tmp_path) -> None:
    """#30, 7: the table reads as the message does: 61.2% and 60%, not 0.612 and 0.6."""
    rules = tmp_path / "share.yaml"
    rules.write_text(
        'channels:\n  default: "console://"\nrules:\n'
        "  - name: heavy\n    when: contract / total > 0.1%\n"
    )
    assert main(["once", "--rules", str(rules)]) == 1
    out = capsys.readouterr().out.splitlines()
    row = next(line.split() for line in out if line.split()[:3] == ["FIRING", "main", "heavy"])
    assert row[3] == "23.7%" and row[4] == "0.1%", row


def test_balances_tables_round_coins_to_the_satoshi_and_converted_amounts_as_messages() -> None:
    """#30, 7: one number format where a person reads; JSON keeps the exact text."""
    from decimal import Decimal

    from tests.support.helpers import overview, row
    from watcher.cli.table import balances, coins
    from watcher.cli.views import balances_json

    assert coins(Decimal("0.123456789123")) == "0.12345679"
    assert coins(Decimal("1500.50000")) == "1,500.5" and coins(Decimal("0E-8")) == "0"
    book = overview(row("BTC", spot="98400.00012345"))
    table = balances(book).splitlines()[-1].split()
    assert table == ["BTC", "98,400", "98,400", "0", "98,400.00012345"]  # converted, coins
    assert balances_json(book)["rows"]["BTC"]["spot"] == "98400.00012345"


def test_watcher_timezone_sets_how_status_and_once_read(env, capsys, sim, monkeypatch) -> None:
    """#30, 8: one zone for people; the JSON stays UTC to the second."""
    monkeypatch.setenv("WATCHER_TIMEZONE", "Asia/Tokyo")
    sim.set_coin("USDT", "1", spot="50")
    main(["once"])
    out = capsys.readouterr().out
    assert "since (JST)" in out
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "JST" in text and "UTC" not in text
    assert main(["status", "--json"]) == 0
    since = json.loads(capsys.readouterr().out)["alerts"][0]["since"]
    assert since.endswith("+00:00") and "." not in since
