"""Scale: the cost of one account's poll as the number of accounts grows.

N accounts (default 100, 1,000 and 5,000), each with its own small book, the 20-rule
file of the scale trial (two ``each: currency`` rules, a ``change`` and a ``combined:
true`` rule among them), a real SQLite state file. Each account's poll goes through
``Watcher.process_accounts`` as the daemon's poll job calls it, after the HTTP answer:
evaluation, the combined rule, history, the commit. The answers come from memory, so
the figure is watcher's own cost per poll, the part that must not grow with N.

Goal: CPU per account poll at N=5,000 within 1.5x of N=100.
Run: .venv/bin/python bench/scale.py [--accounts 100 1000 5000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from watcher.app.poll import AccountPoll, Watcher
from watcher.config.resolve import resolve
from watcher.config.rules_file import parse_rules
from watcher.config.settings import Settings
from watcher.core import logs
from watcher.core.models import ORIGIN_WALLETS, WALLETS, Balance, Overview, Totals
from watcher.store import Store

GOAL = 1.5
RULES = """
accounts:
{accounts}
channels:
  default: "json://127.0.0.1:9/never"
defaults:
  repeat: never
rules:
{rules}
  - name: coin-heavy
    each: currency
    when: contract > 80% * total and total > 10
  - name: coin-low
    each: currency
    when: spot < 1 and total > 0
  - name: btc-drop
    when: change(BTC.originTotal, 1h) < -10%
  - name: book-low
    combined: true
    when: total < 1000
"""


def rules_text(accounts: int) -> str:
    names = "\n".join(f"  a{i:05d}: {{web_key: '${{K}}'}}" for i in range(accounts))
    plain = "\n".join(
        f"  - name: r{i}\n    when: USDT.spot < {i + 1}" for i in range(16)
    )  # 16 + 4 = the trial's 20 rules
    return RULES.format(accounts=names, rules=plain)


def book(when: datetime, seed: int) -> Overview:
    def row(code: str, price: str, spot: str, contract: str) -> Balance:
        native = {"originSpot": Decimal(spot), "originContract": Decimal(contract)}
        origin = {w: native.get(w, Decimal(0)) for w in ORIGIN_WALLETS}
        origin["originTotal"] = origin["originSpot"] + origin["originContract"]
        converted = {w: origin["origin" + w.capitalize()] * Decimal(price) for w in WALLETS}
        return Balance(currency=code, **converted, **origin)

    rows = {
        "USDT": row("USDT", "1", str(500 + seed % 100), "800"),
        "BTC": row("BTC", "60000", "0.05", "0.01"),
        "ETH": row("ETH", "3000", "1.2", "0"),
    }
    totals = Totals(**{w: sum(getattr(r, w) for r in rows.values()) for w in WALLETS})
    return Overview(fetched_at=when, is_testnet=False, currencies=rows, totals=totals)


class Fixed:
    """A source that answers from memory: the poll's cost without the network's."""

    def fetch(self, rows: bool, totals: bool, positions: bool = False) -> Overview:
        raise AssertionError("not used: answers are handed to process_accounts")

    def close(self) -> None: ...

    def describe(self) -> str:
        return "memory"


def measure(accounts: int, rounds: int = 3) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(web_key="WEB-scale-key", state=Path(tmp) / "w.db", interval="60s")
        rules = resolve(parse_rules(rules_text(accounts), "scale.yaml"), env={"K": "WEB-k-1"})
        clock = [datetime(2026, 1, 1, tzinfo=UTC)]
        store = Store(settings.state)
        watcher = Watcher.open(settings, rules, store, source=Fixed(), clock=lambda: clock[0])
        names = list(watcher.accounts)
        per_poll = []
        for _ in range(rounds):
            clock[0] += timedelta(seconds=60)
            started = time.process_time()
            for index, name in enumerate(names):
                answer = AccountPoll(book(clock[0], index), None)
                watcher.process_accounts(clock[0], {name: answer})
            per_poll.append((time.process_time() - started) / len(names))
        store.close()
        watcher.deliverer.store.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"cpu_ms": statistics.median(per_poll) * 1000, "rss_mb": rss}


def main(argv: list[str] | None = None) -> dict[str, str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[100, 1000, 5000])
    args = parser.parse_args(argv)
    logs.configure("CRITICAL", "json")
    found = {}
    for accounts in args.accounts:
        found[accounts] = measure(accounts)
        cpu, rss = found[accounts]["cpu_ms"], found[accounts]["rss_mb"]
        share = cpu * accounts / 60_000 * 100  # of one core, at a 60 s interval
        print(
            f"N={accounts:>5}: {cpu:.2f} ms CPU per account poll (median of 3 rounds), "
            f"{share:.0f}% of one core at 60 s, peak RSS {rss:.0f} MB"
        )
    first, last = min(found), max(found)
    ratio = found[last]["cpu_ms"] / found[first]["cpu_ms"]
    print(f"N={last} / N={first}: {ratio:.2f}x per account poll (goal <= {GOAL}x)")
    return {f"scale N={n}": f"{v['cpu_ms']:.2f} ms per poll" for n, v in found.items()}


if __name__ == "__main__":
    main()
