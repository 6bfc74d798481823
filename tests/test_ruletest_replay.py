"""`watcher test`, `watcher replay` and `watcher record`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.history import History, record_history
from watcher.replay import LEAVES_OUT, build_overview, from_file, from_polls, replay
from watcher.rules import parse_rules
from watcher.sim import SimExchange
from watcher.store import Store

from .conftest import WEB_KEY
from .helpers import at

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_TESTS = ROOT / "tests" / "rules" / "example.test.yaml"
LOW = "channels:\n  default: 'console://'\nrules:\n  - name: low\n    when: USDT.spot < 100\n"
SPOTS = [50, 50, 500, 50, 500, 500, 50, 50, 50, 500]  # one poll a minute


def test_example_test_file_covers_every_example_rule(capsys) -> None:
    assert main(["test", str(EXAMPLE_TESTS)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "4 passed, 0 failed"
    text = EXAMPLE_TESTS.read_text()
    for rule in (
        "usdt-spot-low",
        "contract-heavy",
        "coin-contract-heavy",
        "btc-drawdown",
        "share-flap-guard",
    ):
        assert f"rule: {rule}" in text


def test_failing_case_names_case_time_and_difference(tmp_path: Path, capsys) -> None:
    (tmp_path / "rules.yaml").write_text(LOW)
    (tmp_path / "low.test.yaml").write_text(
        "rules: rules.yaml\n"
        "cases:\n"
        "  - name: fires at once\n"
        "    timeline:\n"
        "      - {at: 0s, currencies: {USDT: {spot: 50}}}\n"
        "    expect:\n"
        "      - {at: 0s, alerts: [{rule: low, state: firing}]}\n"
        "  - name: wrong on purpose\n"
        "    timeline:\n"
        "      - {at: 0s, currencies: {USDT: {spot: 500}}}\n"
        "      - {at: 2m, currencies: {USDT: {spot: 50}}}\n"
        "    expect:\n"
        "      - at: 2m\n"
        "        alerts: [{rule: low, state: pending}]\n"
        "        notifications: []\n"
    )
    assert main(["test", str(tmp_path / "low.test.yaml")]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "PASSED low.test.yaml::fires at once",
        "FAILED low.test.yaml::wrong on purpose",
        "    at t+2m: alerts differ",
        "      expected: rule=low state=pending",
        "      actual:   rule=low state=firing",
        "    at t+2m: notifications differ",
        "      expected: (none)",
        "      actual:   channel=default rule=low kind=firing",
        "1 passed, 1 failed",
    ]


def test_bad_test_file_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "t.yaml").write_text("cases: []\n")
    assert main(["test", str(tmp_path / "t.yaml")]) == 2
    assert "needs 'rules: PATH'" in capsys.readouterr().err


def recorded(tmp_path: Path) -> Path:
    lines = [
        json.dumps({"fetched_at": at(minutes=i).isoformat(), "currencies": {"USDT": {"spot": s}}})
        for i, s in enumerate(SPOTS)
    ]
    path = tmp_path / "rec.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_file_known_answer(tmp_path: Path) -> None:
    # for=0s: episodes t0-t2 (2m), t3-t4 (1m), t6-t9 (3m).
    stats, polls = replay(parse_rules(LOW, env={}), from_file(recorded(tmp_path)))
    low = stats["low"]
    assert polls == 10
    assert (low.fired, low.resolved) == (3, 3)
    assert (low.firing_time, low.longest) == (timedelta(minutes=6), timedelta(minutes=3))
    # for=2m: only t6..t8 lasts long enough; fires at t8, resolves at t9.
    slow = parse_rules(LOW + "    for: 2m\n", env={})
    low = replay(slow, from_file(recorded(tmp_path)))[0]["low"]
    assert (low.fired, low.resolved, low.firing_time) == (1, 1, timedelta(minutes=1))


def test_replay_cli_with_override(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "rules.yaml").write_text(LOW)
    monkeypatch.setenv("WATCHER_RULES", str(tmp_path / "rules.yaml"))
    assert main(["replay", "--from", str(recorded(tmp_path))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "10 polls replayed"
    assert out[-1] == "note: " + LEAVES_OUT
    assert out[-2].split() == ["low", "3", "3", "6m", "3m"]
    assert main(["replay", "--from", str(recorded(tmp_path)), "--for", "2m"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "10 polls replayed with for=2m"
    assert out[-2].split() == ["low", "1", "1", "1m", "1m"]
    assert main(["replay", "--for", "soon"]) == 2


def test_replay_from_stored_history_matches_the_file(tmp_path: Path) -> None:
    rules = parse_rules(LOW, env={})
    store = Store(tmp_path / "w.db")
    history = History()
    for i, spot in enumerate(SPOTS):
        overview = build_overview(at(minutes=i), {"USDT": {"spot": spot}}, None)
        store.commit({}, samples=record_history(rules, overview, history))
    from_db = replay(rules, from_polls(store.polls()))[0]["low"]
    from_rec = replay(rules, from_file(recorded(tmp_path)))[0]["low"]
    assert from_db == from_rec and from_db.fired == 3


def test_bad_recording_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"fetched_at": "2026-01-01T00:00:00+00:00"}\nnot json\n')
    with pytest.raises(Exception, match=r"bad.jsonl:2: not a recorded overview"):
        list(from_file(path))


def test_record_then_replay(tmp_path: Path, sim: SimExchange, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WATCHER_WEB_KEY", WEB_KEY)
    monkeypatch.setenv("WATCHER_MEXC_URL", sim.mexc_url)
    monkeypatch.setenv("WATCHER_INTERVAL", "0.01")
    out = tmp_path / "rec.jsonl"
    assert main(["record", "--to", str(out), "--count", "2"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["currencies"]["USDT"]["spot"] == "1500"
    rules = parse_rules(LOW, env={})
    assert replay(rules, from_file(out))[1] == 2


def test_replay_since_reads_the_stored_polls_through_the_cli(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "rules.yaml").write_text(LOW)
    rules = parse_rules(LOW, env={})
    store = Store(tmp_path / "w.db")
    now = datetime.now(UTC)
    for i, spot in enumerate(SPOTS):
        when = now - timedelta(minutes=len(SPOTS) - i)
        overview = build_overview(when, {"USDT": {"spot": spot}}, None)
        store.commit({}, samples=record_history(rules, overview, History()))
    store.close()
    monkeypatch.setenv("WATCHER_RULES", str(tmp_path / "rules.yaml"))
    monkeypatch.setenv("WATCHER_STATE", str(tmp_path / "w.db"))
    assert main(["replay", "--since", "1h"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{len(SPOTS)} polls replayed"
    assert out[-2].split() == ["low", "3", "3", "6m", "3m"]
    assert main(["replay", "--since", "210s"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "3 polls replayed"
