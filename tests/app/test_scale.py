"""200 accounts and a combined rule (#32): every account's alert, the combined one once,
and the cost of one account's poll does not grow with the number of accounts."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
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
