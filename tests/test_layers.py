"""The one-way house: what the pure core loads, built-ins as facts, metrics read whole."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from watcher.alerts import Outcome
from watcher.app import AccountPoll, PollResult, Watcher
from watcher.builtins import Known, poll_facts, web_key_fact
from watcher.errors import AuthError, NetworkMismatch, TransportError
from watcher.metrics import Metrics
from watcher.models import ORIGIN_WALLETS, WALLETS, Balance, Overview
from watcher.settings import Settings
from watcher.store import Store

from .helpers import at, ruleset


def test_the_pure_core_loads_no_loader_settings_or_apprise() -> None:
    code = (
        "import sys, watcher.engine, watcher.builtins, watcher.history;"
        "print(sorted(m for m in ('yaml', 'dotenv', 'pydantic', 'apprise', 'requests')"
        " if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def imports_of(path: Path, package: Path) -> set[str]:
    """The watcher modules one file imports, lazy imports inside functions included."""
    here = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(
        ".__init__"
    )
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here if path.name == "__init__.py" else here.rpartition(".")[0]
                base = f"{anchor}.{base}".rstrip(".")
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("watcher")}


def test_no_import_circle() -> None:
    package = Path(__file__).resolve().parents[1] / "watcher"
    modules = {
        ".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in package.rglob("*.py")
    }
    graph = {
        name: imports_of(path, package) & set(modules) - {name} for name, path in modules.items()
    }
    # graphlib refuses a graph with a circle; that refusal is the assertion
    order = list(graphlib.TopologicalSorter(graph).static_order())
    assert (
        order.index("watcher.alerts") < order.index("watcher.engine") < order.index("watcher.app")
    )
    assert "watcher.rules" not in graph["watcher.engine"]
    assert not graph["watcher.store"] & {"watcher.engine", "watcher.notify", "watcher.app"}


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
    Watcher(settings, rules, store, source=Source(), clock=lambda: at(0)).poll(dry_run=True)
    assert store.meta() == before
    Watcher(settings, rules, store, source=Source(), clock=lambda: at(1)).poll()
    meta = store.meta()
    assert meta["main/web_key_seen"] == at(1).isoformat() and len(meta["main/web_key_hash"]) == 16
    Watcher(settings, rules, store, source=Source(), clock=lambda: at(9)).poll()
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
