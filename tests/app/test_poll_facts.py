"""Built-ins as facts of the poll result and the clock; a dry run writes nothing."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from tests.support.helpers import at, ruleset
from watcher.app.poll import AccountPoll, PollResult, Watcher
from watcher.config.settings import Settings
from watcher.core.alerts import Outcome
from watcher.core.errors import AuthError, NetworkMismatch, TransportError
from watcher.core.models import ORIGIN_WALLETS, WALLETS, Balance, Overview
from watcher.daemon.metrics import Metrics
from watcher.engine.builtins import Known, poll_facts, web_key_fact
from watcher.store import Store


def known(**changes) -> Known:
    base = Known(started=at(0), last_success=None, stale_after=timedelta(minutes=5))
    return Known(**{**base.__dict__, **changes})


def facts_by_rule(error, now, k):
    return {f.key[1]: (f.holds, f.clears) for f in poll_facts(error, now, k)}


def test_builtins_are_facts_of_the_poll_result_and_the_clock() -> None:
    ok = facts_by_rule(None, at(minutes=1), known())
    assert ok == {
        "auth-failed": (False, True),
        "network-mismatch": (False, True),
        "exchange-unreachable": (False, True),
    }
    down = facts_by_rule(TransportError("timed out"), at(minutes=4), known())
    assert down["exchange-unreachable"] == (False, True)  # 4m < 5m since start
    down = facts_by_rule(TransportError("timed out"), at(minutes=5), known())
    assert down["exchange-unreachable"] == (True, False) and down["auth-failed"] == (None, None)
    auth = facts_by_rule(AuthError("dead key"), at(minutes=9), known())
    assert auth["auth-failed"] == (True, False) and auth["exchange-unreachable"] == (None, None)
    mismatch = facts_by_rule(NetworkMismatch("testnet"), at(minutes=9), known())
    assert mismatch["network-mismatch"] == (True, False)
    issued = at(0)
    assert web_key_fact(at(hours=107), issued).holds is False
    assert web_key_fact(at(hours=108), issued).holds is True
    assert "web-key-expiry" in facts_by_rule(None, at(0), known(web_key_issued=issued))


def test_dry_run_writes_nothing_and_the_key_is_seen_in_the_commit(tmp_path: Path) -> None:
    class Source:
        def fetch(self, rows, totals):
            return Overview(fetched_at=at(0), totals=None, currencies={})

        def close(self) -> None: ...

        def describe(self) -> str:
            return "test"

    db = tmp_path / "w.db"
    settings = Settings(web_key="WEB-first-key-123", state=db)
    rules = ruleset("  - name: low\n    when: USDT.spot < 100\n")
    store = Store(db)
    before = store.meta()
    Watcher.open(settings, rules, store, source=Source(), clock=lambda: at(0)).poll(dry_run=True)
    assert store.meta() == before
    Watcher.open(settings, rules, store, source=Source(), clock=lambda: at(1)).poll()
    meta = store.meta()
    assert meta["main/web_key_seen"] == at(1).isoformat() and len(meta["main/web_key_hash"]) == 16
    Watcher.open(settings, rules, store, source=Source(), clock=lambda: at(9)).poll()
    assert store.meta()["main/web_key_seen"] == at(1).isoformat()  # read once, kept


def big_result(count: int, value: str) -> PollResult:
    fields = {f: Decimal(value) for f in WALLETS + ORIGIN_WALLETS}
    rows = {f"C{i:03d}": Balance(currency=f"C{i:03d}", **fields) for i in range(count)}
    overview = Overview(fetched_at=at(0), currencies=rows)
    return PollResult(
        at(0), overview, None, Outcome(alerts={}), {"main": AccountPoll(overview, None)}
    )


def test_a_scrape_during_a_poll_sees_one_whole_poll() -> None:
    metrics = Metrics()
    polls = [big_result(300, "1"), big_result(300, "2")]
    stop = threading.Event()

    def poll_forever() -> None:
        index = 0
        while not stop.is_set():
            metrics.observe_poll(polls[index % 2], 0.01)
            index += 1

    worker = threading.Thread(target=poll_forever)
    worker.start()
    try:
        counts, mixed = set(), 0
        for _ in range(20):  # each render overlaps several polls
            lines = [
                x
                for x in metrics.render().decode().splitlines()
                if x.startswith("watcher_balance{")
            ]
            counts.add(len(lines))
            values = {x.rsplit(" ", 1)[1] for x in lines if 'unit="converted"' in x}
            mixed += len(values) > 1
    finally:
        stop.set()
        worker.join()
    assert counts <= {0, 300 * 7 * 2} and 300 * 7 * 2 in counts and mixed == 0


def test_a_scrape_shows_every_account_from_the_polls_that_read_it() -> None:
    """#32: each poll writes only its own accounts (no copy of all 5,000 per poll); a
    scrape still shows every account's last good balances, and a failed poll of one
    account is no data for it, not zero and not a loss of the others."""
    metrics = Metrics()
    one = big_result(2, "1")
    overview = one.overview
    for name in ("a", "b"):
        metrics.observe_poll(replace(one, accounts={name: AccountPoll(overview, None)}), 0.01)
    failed = AccountPoll(None, TransportError("the exchange did not answer"))
    metrics.observe_poll(replace(one, overview=None, accounts={"a": failed}), 0.01)
    lines = metrics.render().decode().splitlines()
    for name in ("a", "b"):
        labels = f'account="{name}",currency="C001",unit="converted",wallet="spot"'
        assert f"watcher_balance{{{labels}}} 1.0" in lines
        assert any(
            x.startswith(f'watcher_last_success_timestamp_seconds{{account="{name}"}}')
            for x in lines
        )


def test_an_expired_web_key_says_expired_and_when() -> None:
    """Issue "What a newcomer tripped on", point 3: never "expires ... (in 0s)"."""
    issued = at(0)  # the key lives 5 days: it died at at(hours=120)
    text = web_key_fact(at(hours=144), issued).text
    assert "expired 1d ago (2026-01-06 00:00 UTC)" in text and "(in " not in text
    assert "expires 2026-01-06 00:00 UTC (in 12h)" in web_key_fact(at(hours=108), issued).text
