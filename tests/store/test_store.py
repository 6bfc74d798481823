"""The state database across restarts: alerts, repeat timers, history, pruning."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.helpers import at, ruleset
from watcher.app.poll import Watcher
from watcher.app.replay import build_overview
from watcher.config.settings import Settings
from watcher.core.alerts import FIRING
from watcher.core.errors import StoreError
from watcher.engine.lookback import History, absent_is_zero, record_history
from watcher.store import Store

RULES = (
    "  - name: low\n    when: USDT.spot < 100\n    repeat: 1h\n"
    "  - name: dd\n    when: change(BTC.total, 30m) < -10%\n"
)


class Clock:
    def __init__(self) -> None:
        self.now = at(0)

    def __call__(self):
        return self.now


def watcher(state: Path | str, clock: Clock) -> Watcher:
    settings = Settings(web_key="WEB-k-123456", state=state)
    return Watcher.open(settings, ruleset(RULES), Store(state), clock=clock)


def poll(w: Watcher, clock: Clock, usdt: str, btc: str) -> list[tuple]:
    snapshot = build_overview(clock.now, {"USDT": {"spot": usdt}, "BTC": {"spot": btc}}, None)
    result = w.process(clock.now, snapshot, None)
    return [(n.rule, n.kind) for n in result.outcome.notices]


def test_restart_announces_nothing_twice_and_resumes_the_repeat_timer(state: Path | str) -> None:
    clock = Clock()
    first = watcher(state, clock)
    assert poll(first, clock, "50", "1000") == [("low", FIRING)]
    clock.now = at(minutes=40)
    del first  # killed; a new process starts from the file
    second = watcher(state, clock)
    assert second.alerts[("main", "low", None)].state == FIRING
    assert poll(second, clock, "50", "1000") == []
    clock.now = at(minutes=59)
    assert poll(second, clock, "50", "1000") == []
    clock.now = at(minutes=60)
    assert poll(second, clock, "50", "1000") == [("low", "repeat")]


def test_restart_keeps_the_history_change_needs(state: Path | str) -> None:
    clock = Clock()
    first = watcher(state, clock)
    for minute in range(0, 30, 5):
        clock.now = at(minutes=minute)
        poll(first, clock, "500", "1000")
    second = watcher(state, clock)  # restarted at t+25m
    clock.now = at(minutes=30)
    assert poll(second, clock, "500", "850") == [("dd", FIRING)]  # -15% against t+0


def test_only_changes_are_stored(state: Path | str) -> None:
    store = Store(state)
    rules = ruleset("  - name: low\n    each: currency\n    when: spot < 100\n")
    for minute in range(10):
        snapshot = build_overview(at(minutes=minute), {"USDT": {"spot": "5"}, "BTC": {}}, None)
        store.commit({}, samples=record_history(rules, snapshot, History()))
    keys = [k for (k,) in store.db.execute("SELECT key FROM history ORDER BY ts, key")]
    assert keys.count("main/POLL") == 10
    assert sorted(k for k in keys if k != "main/POLL") == ["main/BTC.spot", "main/USDT.spot"]
    polls = list(store.polls())
    assert len(polls) == 10 and polls[-1] == (at(minutes=9), {"USDT.spot": 5, "BTC.spot": 0})


def test_a_currency_gone_from_the_answer_reads_zero(state: Path | str) -> None:
    store = Store(state)
    rules = ruleset("  - name: low\n    each: currency\n    when: spot < 100\n")
    for minute, rows in enumerate([{"BTC": {"spot": "7"}, "ETH": {"spot": "1"}}, {"ETH": {}}]):
        snapshot = build_overview(at(minutes=minute), rows, None)
        samples = record_history(rules, snapshot, History())
        store.commit({}, samples=samples, absent_is_zero=absent_is_zero(rules, snapshot))
    assert [values for _, values in store.polls()] == [
        {"BTC.spot": Decimal("7"), "ETH.spot": Decimal("1")},
        {"BTC.spot": Decimal("0"), "ETH.spot": Decimal("0")},
    ]


def test_reload_to_rules_that_do_not_read_a_series_writes_no_zeros(state: Path | str) -> None:
    """Rules A read BTC, rules B do not; back to A 11 minutes later, BTC never changed."""
    clock = Clock()
    a = ruleset("  - name: btc-up\n    when: delta(BTC.total, 10m) > 1000\n")
    b = ruleset("  - name: usdt-low\n    when: USDT.spot < 100\n")
    w = Watcher.open(
        Settings(web_key="WEB-k-123456", state=state),
        a,
        Store(state),
        clock=clock,
    )
    rows = {"USDT": {"spot": "500"}, "BTC": {"spot": "60000", "contract": "1000"}}
    notices = []
    for minute, rules in [(0, a), (1, a), (2, b), (7, b), (13, a), (14, a)]:
        clock.now = at(minutes=minute)
        if w.rules is not rules:
            w.reload(rules)
        result = w.process(clock.now, build_overview(clock.now, rows, None), None)
        notices += [n.rule for n in result.outcome.notices]
    assert notices == []
    values = {v.get("BTC.total") for _, v in w.store.polls()}
    assert values == {Decimal("61000")}


def test_an_unreadable_row_keeps_its_rules_state_and_history(state: Path | str) -> None:
    clock = Clock()
    rules = ruleset("  - name: low\n    each: currency\n    when: spot < 100\n")
    w = Watcher.open(
        Settings(web_key="WEB-k-123456", state=state),
        rules,
        Store(state),
        clock=clock,
    )
    first = build_overview(clock.now, {"BTC": {"spot": "7"}, "ETH": {"spot": "500"}}, None)
    assert [n.kind for n in w.process(clock.now, first, None).outcome.notices] == ["firing"]
    clock.now = at(minutes=1)
    blind = build_overview(clock.now, {"ETH": {"spot": "5"}}, None)
    blind = replace(blind, nodata=frozenset({"BTC"}))
    result = w.process(clock.now, blind, None)
    assert [(n.currency, n.kind) for n in result.outcome.notices] == [("ETH", "firing")]
    assert result.outcome.alerts[("main", "low", "BTC")].state == FIRING
    assert [v["BTC.spot"] for _, v in w.store.polls()] == [Decimal("7"), Decimal("7")]


def test_prune_keeps_each_keys_value_at_the_cut(state: Path | str) -> None:
    store = Store(state)
    rules = ruleset("  - name: low\n    when: USDT.spot < 100\n")
    for minute, spot in enumerate(["5", "6", "6", "6", "7"]):
        snapshot = build_overview(at(minutes=minute), {"USDT": {"spot": spot}}, None)
        store.commit({}, samples=record_history(rules, snapshot, History()))
    store.commit({}, prune_before=at(minutes=3))
    polls = list(store.polls(since=at(minutes=3)))
    assert polls == [
        (at(minutes=3), {"USDT.spot": Decimal("6")}),
        (at(minutes=4), {"USDT.spot": Decimal("7")}),
    ]
    (old,) = store.db.execute("SELECT COUNT(*) FROM history WHERE ts < ?", (at(3).timestamp(),))
    assert old[0] <= 2  # the last USDT.spot and the last POLL before the cut


def test_newer_schema_is_refused(state: Path | str) -> None:
    Store(state).set_meta({"schema_version": "99"})
    with pytest.raises(StoreError, match="written by a newer watcher"):
        Store(state)


def test_dry_run_snapshot_never_writes(state: Path | str) -> None:
    Store(state).set_meta({"marker": "before"})
    snap = Store.snapshot(state)
    assert snap.meta()["marker"] == "before"
    snap.set_meta({"marker": "after"})
    assert Store(state).meta()["marker"] == "before"


def test_a_firing_alert_whose_rule_is_removed_ends_with_one_line(state: Path | str) -> None:
    """Issue "What a newcomer tripped on", point 5: the phone heard it fire, and never
    heard that it ended."""
    from watcher.notify.delivery import compose

    clock = Clock()
    both = ruleset(
        "  - name: low\n    when: USDT.spot < 100\n  - name: any\n    when: USDT.spot > 0\n"
    )
    left = ruleset("  - name: any\n    when: USDT.spot > 0\n")
    w = Watcher.open(
        Settings(web_key="WEB-k-123456", state=state),
        both,
        Store(state),
        clock=clock,
    )
    rows = {"USDT": {"spot": "50"}}
    fired = w.process(clock.now, build_overview(clock.now, rows, None), None)
    assert sorted(n.rule for n in fired.outcome.notices) == ["any", "low"]
    clock.now = at(minutes=1)
    w.reload(left)
    ended = w.process(clock.now, build_overview(clock.now, rows, None), None).outcome.notices
    assert [(n.rule, n.kind, n.channels) for n in ended] == [("low", "ended", ("default",))]
    assert compose(ended).plain == "ENDED low: rule removed from the rules file"
    clock.now = at(minutes=2)
    again = w.process(clock.now, build_overview(clock.now, rows, None), None).outcome.notices
    assert again == []
