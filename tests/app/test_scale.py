"""200 accounts and a combined rule (#32): every account's alert, the combined one once,
and the cost of one account's poll does not grow with the number of accounts."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from watcher.app.poll import AccountPoll, Watcher
from watcher.config.resolve import resolve
from watcher.config.rules_file import parse_rules
from watcher.config.settings import Settings
from watcher.engine.evaluate import FIRING
from watcher.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from scale import Fixed, book  # the bench's own book


def rules_text(accounts: int) -> str:
    names = "\n".join(f"  a{i:03d}: {{web_key: '${{K}}'}}" for i in range(accounts))
    return (
        f"accounts:\n{names}\n"
        'channels:\n  default: "json://127.0.0.1:9/never"\n'
        "rules:\n"
        "  - name: usdt-low\n    when: USDT.spot < 1000\n"
        "  - name: book-big\n    combined: true\n    when: total > 1000\n"
    )


def run(accounts: int, tmp: Path, rounds: int = 2) -> tuple[list, float]:
    from datetime import UTC, datetime

    settings = Settings(web_key="WEB-scale-key", state=tmp / f"w{accounts}.db", interval="60s")
    rules = resolve(parse_rules(rules_text(accounts), "scale.yaml"), env={"K": "WEB-k-1"})
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = Store(settings.state)
    watcher = Watcher.open(settings, rules, store, source=Fixed(), clock=lambda: clock[0])
    notices, spent = [], 0.0
    for _ in range(rounds):
        clock[0] += timedelta(seconds=60)
        started = time.process_time()
        for index, name in enumerate(watcher.accounts):
            result = watcher.process_accounts(
                clock[0], {name: AccountPoll(book(clock[0], index), None)}
            )
            notices += result.outcome.notices
        spent = (time.process_time() - started) / len(watcher.accounts)
    store.close()
    watcher.deliverer.store.close()
    return notices, spent


def test_two_hundred_accounts_fire_each_and_the_combined_rule_once(tmp_path: Path) -> None:
    notices, per_poll = run(200, tmp_path)
    fired = [n for n in notices if n.kind == FIRING]
    every = [n.account for n in fired if n.rule == "usdt-low"]
    assert len(every) == len(set(every)) == 200  # each account's alert, once
    combined = [n for n in fired if n.rule == "book-big"]
    assert len(combined) == 1 and combined[0].account.count("+") == 199  # the sum, once
    assert per_poll < 0.05  # seconds of CPU: a poll's own cost stays small at 200 accounts


def test_polls_spread_over_the_interval() -> None:
    """#32, 3: 4 accounts at 60 s start 15 s apart; one account starts at once."""
    from watcher.daemon.service import spread

    assert [spread(i, 4, 60).total_seconds() for i in range(4)] == [0, 15, 30, 45]
    assert spread(0, 1, 60) == timedelta(0)


def statements_of_one_poll(accounts: int, tmp: Path) -> list[str]:
    """The SQL one account's poll runs once every account has alerts of its own."""
    from datetime import UTC, datetime

    text = rules_text(accounts).split("  - name: book-big")[0]  # no combined rule
    text += "  - name: no-contract\n    each: currency\n    when: contract == 0 and total > 0\n"
    settings = Settings(web_key="WEB-scale-key", state=tmp / f"s{accounts}.db", interval="60s")
    rules = resolve(parse_rules(text, "scale.yaml"), env={"K": "WEB-k-1"})
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store = Store(settings.state)
    watcher = Watcher.open(settings, rules, store, source=Fixed(), clock=lambda: now)
    names = list(watcher.accounts)
    for index, name in enumerate(names):  # every account's alerts fire and are stored
        watcher.process_accounts(now, {name: AccountPoll(book(now, index), None)})
    assert len(watcher.alerts) == 2 * accounts and watcher.alerts.firing == 2 * accounts
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    later = now + timedelta(seconds=60)
    watcher.process_accounts(later, {names[3]: AccountPoll(book(later, 7), None)})
    store.db.set_trace_callback(None)
    store.close()
    watcher.deliverer.store.close()
    return statements


def test_one_accounts_poll_writes_the_same_at_ten_accounts_and_at_two_hundred(
    tmp_path: Path,
) -> None:
    """#32, 1: a poll writes its own account's rows and reads no other account's."""
    few, many = statements_of_one_poll(10, tmp_path), statements_of_one_poll(200, tmp_path)
    assert len(few) == len(many) and any("a003/" in s for s in many)
    assert not [s for s in many if "a004" in s or "a150" in s]  # no other account's rows


def test_each_account_keeps_its_place_in_the_interval(tmp_path: Path, monkeypatch) -> None:
    """#32, 3: account i of N polls i/N of an interval late, and every run after that one
    interval later, exactly: no jitter that would drift the polls and skip some."""
    from datetime import UTC, datetime

    from watcher.daemon.build import build

    names = "".join(f"  a{i}: {{web_key: '${{K}}'}}\n" for i in range(4))
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"accounts:\n{names}channels:\n  default: 'json://127.0.0.1:9/never'\n"
        "rules:\n  - name: low\n    when: USDT.spot < 2000\n"
    )
    monkeypatch.setenv("K", "WEB-k-1")
    daemon = build(Settings(rules=rules, state=tmp_path / "w.db", interval="60s"))
    try:
        daemon.schedule_polls()
        jobs = sorted(daemon.scheduler.get_jobs(), key=lambda job: job.id)
        starts = [job.next_run_time for job in jobs]
        assert [(s - starts[0]).total_seconds() for s in starts] == [0, 15, 30, 45]
        for job, start in zip(jobs, starts, strict=True):
            run = start
            for _ in range(100):
                run = job.trigger.get_next_fire_time(run, datetime.now(UTC))
            assert run - start == timedelta(minutes=100)  # on its grid after 100 runs
    finally:
        daemon.store.close()
        daemon.lock.release()


def test_a_decision_held_on_a_full_disk_is_written_by_the_next_accounts_commit(
    small_disk: Path,
) -> None:
    """A poll writes only its own account's alerts: one decided while the disk was full
    goes with the next commit, whichever account makes it, so a restart then does not
    announce it again."""
    from datetime import UTC, datetime

    from watcher.sim.receiver import fill_disk

    settings = Settings(web_key="WEB-scale-key", state=small_disk / "w.db", interval="60s")
    rules = resolve(parse_rules(rules_text(2), "scale.yaml"), env={"K": "WEB-k-1"})
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store = Store(settings.state)
    watcher = Watcher.open(settings, rules, store, source=Fixed(), clock=lambda: now)
    names = ["a000", "a001"]
    filler = fill_disk(small_disk)
    watcher.process_accounts(now, {"a000": AccountPoll(book(now, 0), None)})
    assert watcher.unwritable and watcher.alerts.firing == 1  # decided, in memory
    filler.unlink()
    later = now + timedelta(seconds=30)
    watcher.process_accounts(later, {"a001": AccountPoll(book(later, 1), None)})
    assert not watcher.unwritable
    stored = Store(settings.state).load_alerts()
    assert {k for k in stored if k[1] == "usdt-low"} == {(n, "usdt-low", None) for n in names}
    store.close()
    watcher.deliverer.store.close()


def test_an_account_removed_from_the_rules_has_its_old_history_pruned(tmp_path: Path) -> None:
    """Each commit prunes only its own accounts' history; once a day, and at the first
    commit after a start, the accounts the rules file no longer names are pruned too
    (their last values kept, as for any key)."""
    from datetime import UTC, datetime

    state = tmp_path / "w.db"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    before = Store(state)
    for minute in range(5):  # "gone" and a000 polled five times, long ago
        when = start + timedelta(minutes=minute)
        for name in ("gone", "a000"):
            sample = [("USDT.spot", when, Decimal(100 + minute))]
            before.commit({}, samples={name: sample})
    before.close()
    settings = Settings(web_key="WEB-scale-key", state=state, interval="60s", history_keep="1d")
    rules = resolve(parse_rules(rules_text(2), "scale.yaml"), env={"K": "WEB-k-1"})
    now = start + timedelta(days=3)
    store = Store(state)
    watcher = Watcher.open(settings, rules, store, source=Fixed(), clock=lambda: now)
    assert store.history_accounts() == ["a000", "gone"]
    watcher.process_accounts(now, {"a001": AccountPoll(book(now, 1), None)})
    left = dict(store.db.execute("SELECT key, COUNT(*) FROM history GROUP BY key").fetchall())
    assert left["gone/USDT.spot"] == 1 and left["gone/POLL"] == 1  # its value at the cut
    assert left["a000/POLL"] == 5  # a configured account waits for its own poll
    assert store.value_at("USDT.spot", now, "gone") == Decimal(104)
    store.close()
    watcher.deliverer.store.close()
