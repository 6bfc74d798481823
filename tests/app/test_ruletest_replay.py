"""`watcher test`, `watcher replay` and `watcher record`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import WEB_KEY
from tests.support.helpers import at
from watcher.app.replay import (
    LEAVES_OUT,
    build_overview,
    from_file,
    from_polls,
    overview_to_json,
    replay,
)
from watcher.cli.main import main
from watcher.config.rules_file import parse_rules
from watcher.core.errors import ConfigError
from watcher.engine.lookback import History, record_history
from watcher.sim.exchange import SimExchange
from watcher.store import Store

ROOT = Path(__file__).resolve().parents[2]
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
    assert "missing 'rules:'" in capsys.readouterr().err


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
    stats, polls = replay(parse_rules(LOW), from_file(recorded(tmp_path)))
    low = stats["low"]
    assert polls == 10
    assert (low.fired, low.resolved) == (3, 3)
    assert (low.firing_time, low.longest) == (timedelta(minutes=6), timedelta(minutes=3))
    # for=2m: only t6..t8 lasts long enough; fires at t8, resolves at t9.
    slow = parse_rules(LOW + "    for: 2m\n")
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
    rules = parse_rules(LOW)
    store = Store(tmp_path / "w.db")
    history = History()
    for i, spot in enumerate(SPOTS):
        overview = build_overview(at(minutes=i), {"USDT": {"spot": spot}}, None)
        store.commit({}, samples=record_history(rules, overview, history))
    from_db = replay(rules, from_polls(store.polls()))[0]["low"]
    from_rec = replay(rules, from_file(recorded(tmp_path)))[0]["low"]
    assert from_db == from_rec and from_db.fired == 3


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ('"lots"', "should be a number, not text"),
        ('"NaN"', "should be a finite"),
        ("1e30", "should be between"),
    ],
)
def test_a_recorded_amount_that_is_not_money_names_its_line(tmp_path, value, why) -> None:
    path = tmp_path / "bad.jsonl"
    line = '{"fetched_at": "2026-01-01T00:00:00+00:00", "currencies": {"USDT": {"spot": %s}}}'
    path.write_text(line % "1" + "\n" + line % value + "\n")
    with pytest.raises(ConfigError, match=rf"bad.jsonl:2: not a recorded overview: spot: {why}"):
        list(from_file(path))


def test_bad_recording_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"fetched_at": "2026-01-01T00:00:00+00:00"}\nnot json\n')
    with pytest.raises(Exception, match=r"bad.jsonl:2: not a recorded overview"):
        list(from_file(path))


def test_record_then_replay(tmp_path: Path, sim: SimExchange, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WATCHER_WEB_KEY", WEB_KEY)
    monkeypatch.setenv("WATCHER_MEXC_URL", sim.mexc_url)
    monkeypatch.setenv("WATCHER_INTERVAL", "1s")
    out = tmp_path / "rec.jsonl"
    assert main(["record", "--to", str(out), "--count", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()  # a line per capture: no silent minutes
    assert [line.split(": ", 1)[1] for line in printed[:2]] == [
        f"capture 1 of main appended to {out}",
        f"capture 2 of main appended to {out}",
    ]
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["currencies"]["USDT"]["spot"] == "1500"
    rules = parse_rules(LOW)
    first, second = (datetime.fromisoformat(json.loads(x)["fetched_at"]) for x in lines)
    assert replay(rules, from_file(out), second - first)[1] == 2  # polled as recorded
    assert replay(rules, from_file(out))[1] == 1  # the daemon's minute: one poll in that time


def test_replay_since_reads_the_stored_polls_through_the_cli(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "rules.yaml").write_text(LOW)
    rules = parse_rules(LOW)
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


SLOW = LOW + "    for: 3m\n"


def run_test(tmp_path: Path, capsys, body: str, rules: str = SLOW) -> tuple[int, list[str]]:
    (tmp_path / "rules.yaml").write_text(rules)
    (tmp_path / "t.test.yaml").write_text("rules: rules.yaml\n" + body)
    code = main(["test", str(tmp_path / "t.test.yaml")])
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).splitlines()


TIMELINE = (
    "cases:\n  - name: c\n    timeline:\n"
    "      - {at: 0m, currencies: {USDT: {spot: 50}}}\n"
    "      - {at: 10m, currencies: {USDT: {spot: 150}}}\n    expect:\n"
)


@pytest.mark.parametrize("minutes", [[10], [5, 10], list(range(0, 11))])
def test_where_the_expectations_stand_does_not_change_the_answer(
    tmp_path: Path, capsys, minutes: list[int]
) -> None:
    """Fired at 3m and resolved at 10m, as the daemon and promtool say, however thinned."""
    lines = []
    for m in minutes:
        if m < 3:
            alerts, notes = "[{rule: low, state: pending}]", "[]"
        elif m < 10:
            alerts = "[{rule: low, state: firing}]"
            notes = "[{channel: default, rule: low, kind: firing}]" if m == 3 else "[]"
        else:
            alerts, notes = (
                "[{rule: low, state: resolved}]",
                "[{channel: default, rule: low, kind: resolved}]",
            )
        lines.append(f"      - {{at: {m}m, alerts: {alerts}, notifications: {notes}}}\n")
    code, out = run_test(tmp_path, capsys, TIMELINE + "".join(lines))
    assert (code, out) == (0, ["PASSED t.test.yaml::c", "1 passed, 0 failed"])


def test_a_failed_poll_keeps_the_alert_firing_and_silent(tmp_path: Path, capsys) -> None:
    body = (
        "stale_after: 3m\n"
        "cases:\n  - name: outage\n    timeline:\n"
        "      - {at: 0m, currencies: {USDT: {spot: 50}}}\n"
        "      - {at: 4m, error: timeout}\n"
        "      - {at: 9m, currencies: {USDT: {spot: 50}}}\n"
        "    expect:\n"
        "      - {at: 3m, alerts: [{rule: low, state: firing}]}\n"
        "      - {at: 5m, alerts: [{rule: low, state: firing}], notifications: []}\n"
        "      - at: 6m\n"
        "        alerts:\n"
        "          - {rule: low, state: firing}\n"
        "          - {rule: exchange-unreachable, state: firing}\n"
        "        notifications: [{channel: default, rule: exchange-unreachable, kind: firing}]\n"
        "      - {at: 8m, notifications: []}\n"
        "      - at: 9m\n"
        "        alerts:\n"
        "          - {rule: low, state: firing}\n"
        "          - {rule: exchange-unreachable, state: resolved}\n"
        "        notifications: [{channel: default, rule: exchange-unreachable, kind: resolved}]\n"
        "      - {at: 10m, alerts: [{rule: low, state: firing}], notifications: []}\n"
    )
    code, out = run_test(tmp_path, capsys, body)
    assert (code, out) == (0, ["PASSED t.test.yaml::outage", "1 passed, 0 failed"])


def test_an_auth_failure_in_a_timeline_fires_auth_failed(tmp_path: Path, capsys) -> None:
    body = (
        "cases:\n  - name: dead key\n    timeline:\n"
        "      - {at: 0m, currencies: {USDT: {spot: 500}}}\n"
        "      - {at: 2m, error: auth}\n"
        "    expect:\n"
        "      - at: 2m\n"
        "        alerts: [{rule: auth-failed, state: firing}]\n"
        "        notifications: [{channel: default, rule: auth-failed, kind: firing}]\n"
        "      - {at: 9m, alerts: [{rule: auth-failed, state: firing}], notifications: []}\n"
    )
    assert run_test(tmp_path, capsys, body)[0] == 0


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (
            "cases: []\nintervl: 1m\n",
            "t.test.yaml:3:1: unknown test file key 'intervl'; did you mean 'interval'?",
        ),
        (
            TIMELINE.replace("{at: 10m,", "{at: 10m, eror: timeout,") + "      - {at: 1m}\n",
            "t.test.yaml:6:19: timeline point: unknown key 'eror'; did you mean 'error'?",
        ),
        (
            TIMELINE + "      - {at: 1m, alerts: [{rule: low, stat: firing}]}\n",
            "t.test.yaml:8:39: alert: unknown key 'stat'; did you mean 'state'?",
        ),
        (
            TIMELINE + "      - {at: 90s, alerts: []}\n",
            "t.test.yaml:8:14: at 1m30s is not an evaluation step: steps run every 1m from 0s",
        ),
        (
            TIMELINE.replace(
                "{at: 10m, currencies: {USDT: {spot: 150}}}", "{at: 10m, error: boom}"
            ),
            "t.test.yaml:6:26: timeline point: error: must be 'timeout', 'unreachable',",
        ),
        ("interval: 0s\n" + TIMELINE, "t.test.yaml:2:11: interval: must be longer than 0s"),
        (
            TIMELINE.replace("{spot: 150}", "{spot: .nan}") + "      - {at: 1m}\n",
            "t.test.yaml:6:9: spot: should be a finite number",
        ),
        (
            TIMELINE.replace("{spot: 150}", "{spot: lots}") + "      - {at: 1m}\n",
            "t.test.yaml:6:9: spot: should be a number, not text",
        ),
    ],
)
def test_every_mistake_in_a_test_file_is_located(tmp_path: Path, capsys, body, line) -> None:
    code, out = run_test(tmp_path, capsys, body)
    assert code == 2 and len(out) == 1 and out[0].startswith(f"watcher: {tmp_path}/{line}")


def test_replay_counts_what_the_daemon_would_have_done_at_its_interval(tmp_path: Path) -> None:
    """Two recordings 10 minutes apart: at a 1m interval the low spot held for 10 polls."""
    rules = parse_rules(SLOW)
    overviews = [
        build_overview(at(minutes=0), {"USDT": {"spot": 50}}, None),
        build_overview(at(minutes=10), {"USDT": {"spot": 500}}, None),
    ]
    stats, polls = replay(rules, overviews, timedelta(minutes=1))
    assert polls == 11 and stats["low"].fired == 1 and stats["low"].longest == timedelta(minutes=7)


def test_the_promtool_agreement_scenarios_pass(capsys) -> None:
    path = ROOT / "tests" / "rules" / "promtool" / "agreement.test.yaml"
    assert main(["test", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "8 passed, 0 failed"
    assert path.read_text().count("  # Prometheus: ") == 8


def test_one_bad_point_does_not_move_the_step_grid(tmp_path: Path, capsys) -> None:
    """#30, 11: the first point's bad amount is the one problem; the expectation at 2m
    stays on the grid that the file as written defines (from 0m)."""
    body = (
        "cases:\n  - name: x\n    timeline:\n"
        "      - {at: 0m, currencies: {USDT: {spot: lots}}}\n"
        "      - {at: 90s, currencies: {USDT: {spot: 50}}}\n"
        "    expect:\n      - {at: 2m, alerts: []}\n"
    )
    code, out = run_test(tmp_path, capsys, body)
    assert code == 2 and len(out) == 1 and "spot: should be a number, not text" in out[0]


POSITION_RULES = """channels:
  default: "console://"
rules:
  - name: liq-near
    each: position
    when: liq_distance < 3%
    severity: critical
"""


def test_timelines_take_positions(tmp_path: Path, capsys) -> None:
    """#28: a position walks toward liquidation, fires, and resolves when it closes."""
    btc = "{symbol: BTC_USDT, side: long, size: 100, contract_size: 0.0001, entry: 60000"
    body = (
        "cases:\n  - name: walk and close\n    timeline:\n"
        f"      - {{at: 0m, positions: [{btc}, mark: 60000, liquidation: 57240, leverage: 20}}]}}\n"
        f"      - {{at: 2m, positions: [{btc}, mark: 59000, liquidation: 57240, leverage: 20}}]}}\n"
        "      - {at: 4m, positions: []}\n"
        "    expect:\n"
        "      - {at: 1m, alerts: []}\n"
        "      - at: 2m\n"
        "        alerts: [{rule: liq-near, currency: BTC_USDT long, state: firing}]\n"
        "      - at: 4m\n"  # resolved at the closing, as any alert whose condition ends
        "        alerts: [{rule: liq-near, currency: BTC_USDT long, state: resolved}]\n"
        "        notifications: [{channel: default, rule: liq-near, currency: BTC_USDT long,"
        " kind: resolved}]\n"
    )
    code, out = run_test(tmp_path, capsys, body, rules=POSITION_RULES)
    assert code == 0, out
    bad = body.replace("side: long", "side: lengthy", 1)
    code, out = run_test(tmp_path, capsys, bad, rules=POSITION_RULES)
    assert code == 2 and "position: side: must be 'long' or 'short'" in out[0]


def test_positions_replay_from_stored_history_as_they_fired(tmp_path: Path) -> None:
    """#28, 4: the stored polls keep each position (and its closing), so ``replay`` gives
    the alerts the daemon gave, the closed position's resolve included."""
    from dataclasses import replace
    from decimal import Decimal as D

    from tests.support.helpers import ruleset
    from watcher.app.poll import Watcher
    from watcher.config.settings import Settings
    from watcher.core.positions import Position

    rules = ruleset("  - name: liq\n    each: position\n    when: liq_distance < 10%\n")
    settings = Settings(web_key=WEB_KEY, state=tmp_path / "w.db")
    clock = [at(0)]
    live = Watcher.open(settings, rules, Store(tmp_path / "w.db"), clock=lambda: clock[0])
    notices, walk = [], []
    # 10% away, 8.5% (fires), 11.5% (resolves), 6.9% (fires), closed (resolves)
    for minute, mark in enumerate(["60000", "59000", "61000", "58000", None]):
        clock[0] = at(minutes=minute)
        held = () if mark is None else (
            Position("BTC_USDT", "long", "isolated", D(100), D("0.0001"), D(60000), D(mark),
                     D(54000), D(20), D(30), D(0)),
        )  # fmt: skip
        overview = replace(build_overview(clock[0], {"USDT": {"spot": "1"}}, None), positions=held)
        walk.append(overview)
        notices += live.process(clock[0], overview, None).outcome.notices
    kinds = [(n.currency, n.kind) for n in notices if n.rule == "liq"]
    assert kinds == [("BTC_USDT long", k) for k in ("firing", "resolved", "firing", "resolved")]
    assert notices[-1].text == "the position closed"
    stats = replay(rules, from_polls(live.store.polls()))[0]["liq"]
    assert (stats.fired, stats.resolved) == (2, 2)
    # the same walk as a `watcher record` file replays the same
    recording = tmp_path / "walk.jsonl"
    recording.write_text("".join(overview_to_json(o) + "\n" for o in walk))
    assert replay(rules, from_file(recording))[0]["liq"] == stats
