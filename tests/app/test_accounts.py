"""Many accounts in one daemon: rules per account, combined rules, failures kept apart,
and an upgrade in place from the single-account database."""

from __future__ import annotations

import json
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import WEB_KEY
from tests.support.daemon_harness import DaemonProcess, wait_for
from tests.support.helpers import at
from tests.support.receivers import Receiver
from watcher.app.poll import Watcher
from watcher.app.replay import build_overview
from watcher.cli.main import main
from watcher.config.rules_file import parse_rules
from watcher.config.settings import Settings
from watcher.core.alerts import FIRING, Alert
from watcher.notify.delivery import route
from watcher.sim.exchange import SimExchange
from watcher.store import Store

HEDGE_KEY = "WEB-hedge-key-9876543210"


def accounts_rules(receiver: Receiver, main: SimExchange, hedge: SimExchange) -> str:
    return f"""
accounts:
  main:  {{source: mexc, mexc_url: "{main.mexc_url}", web_key: "${{MAIN_KEY}}"}}
  hedge: {{source: mexc, mexc_url: "{hedge.mexc_url}", web_key: "${{HEDGE_KEY}}"}}
channels:
  default: "{receiver.url()}"
rules:
  - name: usdt-spot-low
    when: USDT.spot < 100
  - name: together-low
    combined: true
    when: USDT.spot < 5000
"""


@pytest.fixture
def hedge() -> SimExchange:
    exchange = SimExchange(web_key=HEDGE_KEY)
    exchange.set_coin("USDT", "1", spot="3000")
    with exchange:
        yield exchange


def messages(receiver: Receiver) -> list[str]:
    return [line for p in receiver.posts for line in p["message"].splitlines()]


def test_two_exchanges_one_daemon(tmp_path: Path, sim: SimExchange, hedge, receiver) -> None:
    sim.set_coin("USDT", "1", spot="3000")
    daemon = DaemonProcess(
        tmp_path,
        sim,
        accounts_rules(receiver, sim, hedge),
        MAIN_KEY=WEB_KEY,
        HEDGE_KEY=HEDGE_KEY,
        WATCHER_STALE_AFTER="3s",
    )
    try:
        daemon.start()
        wait_for(lambda: sim.served >= 2 and hedge.served >= 2, what="both accounts polled")
        assert receiver.posts == []  # 3,000 + 3,000: nothing low, together not below 5,000
        hedge.set_coin("USDT", "1", spot="50")  # one account only
        wait_for(lambda: len(receiver.posts) >= 1, what="hedge firing")
        # the combined rule runs at most twice an interval, over each member's latest poll
        wait_for(
            lambda: any("together-low" in x for x in messages(receiver)), what="combined firing"
        )
        lines = messages(receiver)
        assert any(x.startswith("FIRING usdt-spot-low (hedge):") for x in lines)
        assert any(x.startswith("FIRING together-low (main+hedge):") for x in lines)  # 3,050
        assert not any("usdt-spot-low (main)" in x for x in lines)
        assert all(p["title"].startswith("watcher vps-1") for p in receiver.posts)
        # hedge's exchange goes dark: its own exchange-unreachable, main flows on time.
        hedge.inject("delay", times=None, delay=5)
        seen = len(receiver.posts)
        sim.set_coin("USDT", "1", spot="40")
        started = time.monotonic()
        wait_for(
            lambda: any("usdt-spot-low (main)" in x for x in messages(receiver)),
            what="main firing while hedge is down",
        )
        assert time.monotonic() - started < 4  # one-second polls: not held up by hedge
        wait_for(
            lambda: any("exchange-unreachable (hedge)" in x for x in messages(receiver)),
            timeout=20,
            what="hedge unreachable",
        )
        assert not any("exchange-unreachable (main)" in x for x in messages(receiver))
        assert len(receiver.posts) > seen
        hedge.clear_faults()
        assert daemon.stop()[0] == 0
        out = daemon.output()
        assert WEB_KEY not in out and HEDGE_KEY not in out
    finally:
        daemon.close()


def test_status_and_once_json_name_the_accounts(
    tmp_path: Path, sim: SimExchange, hedge, receiver, monkeypatch, capsys
) -> None:
    hedge.set_coin("USDT", "1", spot="50")
    rules = tmp_path / "rules.yaml"
    rules.write_text(accounts_rules(receiver, sim, hedge))
    for name, value in {
        "WATCHER_RULES": str(rules),
        "WATCHER_STATE": str(tmp_path / "w.db"),
        "MAIN_KEY": WEB_KEY,
        "HEDGE_KEY": HEDGE_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["once", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert set(data["accounts"]) == {"main", "hedge"}
    firing = {(a["account"], a["rule"]) for a in data["alerts"] if a["state"] == "firing"}
    assert firing == {("hedge", "usdt-spot-low"), ("main+hedge", "together-low")}
    assert data["accounts"]["hedge"]["balances"]["rows"]["USDT"]["spot"] == "50"
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert set(status["accounts"]) == {"main", "hedge"}
    assert status["accounts"]["hedge"]["last_result"] == "ok"
    assert main(["silence", "usdt-spot-low", "--account", "hedge", "--for", "1h"]) == 0
    assert main(["silence", "usdt-spot-low", "--account", "nope", "--for", "1h"]) == 2
    assert "no account named 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("  main: {source: mexc, web_key: WEBliteralkey123}\n", "never the secret itself"),
        ("  main: {source: mexc}\n", "the mexc source needs web_key"),
        ("  Main: {source: mexc, web_key: '${K}'}\n", "use lower case letters"),
        ("  main: {source: ftx, web_key: '${K}'}\n", "source: must be 'mexc', 'bypass' or 'ccxt'"),
        ("  main: {web_key: '${K}', colour: red}\n", "unknown key 'colour'"),
        ("  main: {web_key: '${NOT_SET_ANYWHERE}'}\n", "NOT_SET_ANYWHERE is not set"),
        ("  main: {web_key: '${K}', mexc_url: 'http://evil.example'}\n", "must be https"),
    ],
)
def test_bad_accounts_are_located_check_errors(tmp_path, capsys, monkeypatch, section, problem):
    monkeypatch.setenv("K", "WEB-k-123456")
    path = tmp_path / "rules.yaml"
    path.write_text("accounts:\n" + section + 'channels:\n  default: "console://"\nrules: []\n')
    assert main(["check", "--rules", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2:" in err and problem in err and "WEBliteralkey123" not in err


def test_a_rule_may_name_only_known_accounts(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("K", "WEB-k-123456")
    path = tmp_path / "rules.yaml"
    path.write_text(
        "accounts:\n  main: {web_key: '${K}'}\n"
        'channels:\n  default: "console://"\n'
        "rules:\n  - name: a\n    accounts: [main, hegde]\n    when: USDT.spot < 1\n"
    )
    assert main(["check", "--rules", str(path)]) == 2
    assert (
        "7:22: rule a: accounts: no account named 'hegde' (have: main)" in capsys.readouterr().err
    )


SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE alerts (
    rule TEXT NOT NULL, currency TEXT NOT NULL, state TEXT NOT NULL, since TEXT NOT NULL,
    fired_at TEXT, last_notified TEXT, cleared_since TEXT, value TEXT, threshold TEXT,
    muted INTEGER NOT NULL DEFAULT 0, severity TEXT NOT NULL DEFAULT 'warning',
    PRIMARY KEY (rule, currency));
CREATE TABLE history (
    key TEXT NOT NULL, ts REAL NOT NULL, value TEXT NOT NULL, PRIMARY KEY (key, ts)
) WITHOUT ROWID;
CREATE INDEX history_ts ON history (ts);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY, channel TEXT NOT NULL, url_key TEXT NOT NULL,
    created REAL NOT NULL, due REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    notice TEXT NOT NULL, last_error TEXT);
CREATE INDEX outbox_due ON outbox (due);
CREATE TABLE silences (
    id INTEGER PRIMARY KEY, rule TEXT NOT NULL, currency TEXT, starts REAL NOT NULL,
    ends REAL NOT NULL, comment TEXT NOT NULL DEFAULT '');
"""


def test_a_single_account_database_upgrades_in_place(tmp_path: Path, receiver) -> None:
    """Written by the previous schema: its alerts, history, silences and outbox become
    `main`'s; nothing is announced twice and nothing waiting is lost."""
    path = tmp_path / "old.db"
    fired = at(0).isoformat()
    old_notice = json.dumps(
        {
            "rule": "low",
            "currency": None,
            "kind": "firing",
            "severity": "warning",
            "channels": ["default"],
            "value": "50",
            "threshold": "100",
            "since": fired,
            "at": fired,
            "text": None,
        }
    )
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_1)
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        db.execute("INSERT INTO meta VALUES ('last_success', ?)", (fired,))
        db.execute(
            "INSERT INTO alerts (rule, currency, state, since, fired_at, last_notified, value) "
            "VALUES ('low', '', 'firing', ?, ?, ?, '50')",
            (fired, fired, fired),
        )
        db.executemany(
            "INSERT INTO history VALUES (?, ?, ?)",
            [("USDT.spot", at(0).timestamp(), "50"), ("POLL", at(0).timestamp(), "1")],
        )
        db.execute(
            "INSERT INTO silences (rule, currency, starts, ends, comment) "
            "VALUES ('low', NULL, ?, ?, 'old')",
            (at(0).timestamp(), at(hours=1).timestamp()),
        )
    channels = 'channels:\n  default: "' + receiver.url() + '"\n'
    rules = parse_rules(channels + "rules:\n  - name: low\n    when: USDT.spot < 100\n")
    from watcher.config.channels import url_key

    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO outbox (channel, url_key, created, due, notice) VALUES (?,?,?,?,?)",
            ("default", url_key(receiver.url()), at(0).timestamp(), at(0).timestamp(), old_notice),
        )
    store = Store(path)
    assert store.meta()["schema_version"] == "2" and store.meta()["main/last_success"] == fired
    assert store.load_alerts() == {
        ("main", "low", None): Alert(
            "low",
            None,
            FIRING,
            since=at(0),
            fired_at=at(0),
            last_notified=at(0),
            value=Decimal("50"),
        )
    }
    assert [s.account for s in store.silences()] == [None]
    assert [v for _, v in store.polls()] == [{"USDT.spot": Decimal("50")}]
    settings = Settings(web_key=WEB_KEY, state=path)
    clock = [at(minutes=2)]
    w = Watcher.open(settings, rules, store, source=Fixed(), clock=lambda: clock[0])
    result = w.process(clock[0], build_overview(clock[0], {"USDT": {"spot": "50"}}, None), None)
    assert result.outcome.notices == []  # already announced before the upgrade
    assert w.deliver().sent == 1  # the message that was waiting goes out, once
    assert len(receiver.posts) == 1 and receiver.posts[0]["message"].startswith("FIRING low")
    assert route([], rules.channels, at(0)) == []


class Fixed:
    def fetch(self, rows: bool, totals: bool):
        return build_overview(at(0), {"USDT": {"spot": "50"}}, None)

    def close(self) -> None: ...

    def describe(self) -> str:
        return "fixed"


def test_a_misspelt_account_is_told_apart_from_one_whose_variable_is_unset(
    tmp_path, capsys, monkeypatch
) -> None:
    """#30, 11: the hint knows every declared account, its ${VAR} set or not."""
    monkeypatch.setenv("MAIN_KEY", "WEB-main-0123456789")
    monkeypatch.delenv("HEDGE_KEY_NOT_SET", raising=False)
    path = tmp_path / "rules.yaml"
    path.write_text(
        "accounts:\n"
        '  main: {source: mexc, web_key: "${MAIN_KEY}"}\n'
        '  hedge: {source: mexc, web_key: "${HEDGE_KEY_NOT_SET}"}\n'
        'channels:\n  default: "console://"\n'
        "rules:\n  - name: b\n    when: USDT.spot < 100\n    accounts: [hedg]\n"
    )
    assert main(["check", "--rules", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"watcher: {path}:3:34: account hedge: web_key: environment variable "
        "HEDGE_KEY_NOT_SET is not set",
        f"watcher: {path}:9:16: rule b: accounts: no account named 'hedg'; did you mean "
        "'hedge'? (have: main, hedge)",
    ]
