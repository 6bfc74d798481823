"""Scale: N accounts on one machine, the real daemon against the simulator over HTTP.

N accounts (default 100, 1,000 and 5,000), the 20-rule file of the scale trial (two
``each: currency`` rules, a ``change`` and a ``combined: true`` rule among them) and
one more rule that fires on every account when the bench moves the balance. ``watcher
run`` runs as a subprocess with a SQLite state and a json:// receiver. For each N the
bench waits until every account has polled once, then measures three intervals
(moving USDT below 100 after the first): the daemon's CPU per account poll and its
share of one core, the share of due polls made (POLL markers in the state's history),
delivery latency from decision (the alert's ``fired_at``) to the receiver, RSS, and
the warnings in its log.

``--in-process`` measures instead watcher's own cost per poll without HTTP, through
``Watcher.process_accounts`` as the poll job calls it, with a rule that fires on every
account (N firing alerts: the cost that once grew with them is in the figure).

Goals: 5,000 accounts at a 60 s interval: every poll made, under 50% of one core,
delivery p99 under 2 s, RSS under 200 MB; CPU per account poll at N=5,000 within 1.5x
of N=100.
Run: .venv/bin/python bench/scale.py [--accounts 100 1000 5000] [--interval 60]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from watcher.app.poll import AccountPoll, Watcher
from watcher.config.resolve import resolve
from watcher.config.rules_file import parse_rules
from watcher.config.settings import Settings
from watcher.core import logs
from watcher.core.models import ORIGIN_WALLETS, WALLETS, Balance, Overview, Totals
from watcher.sim.exchange import SimExchange
from watcher.sim.receiver import Receiver
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
        text = rules_text(accounts) + watch_rule(1000)  # every account firing, as over HTTP
        rules = resolve(parse_rules(text, "scale.yaml"), env={"K": "WEB-k-1"})
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


KEY = "WEB-scale-bench-key-0123"


def watch_rule(below: int) -> str:
    """The one more rule: it fires on every account whose USDT spot is below ``below``."""
    return f"\n  - name: watch\n    when: USDT.spot < {below}\n"


def daemon_rules(accounts: int, url: str) -> str:
    text = rules_text(accounts).replace("json://127.0.0.1:9/never", url)
    return text + watch_rule(100)  # fires once the bench moves USDT


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def polled(state: Path, since: float, until: float) -> dict[str, int]:
    """POLL markers per account in the window: the polls that were made."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT key, COUNT(*) FROM history WHERE key LIKE '%/POLL' AND ts >= ? AND ts < ? "
            "GROUP BY key",
            (since, until),
        ).fetchall()
    return {key.split("/")[0]: count for key, count in rows}


def fired(state: Path) -> dict[str, float]:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT account, fired_at FROM alerts WHERE rule='watch'").fetchall()
    return {a: datetime.fromisoformat(f).timestamp() for a, f in rows if f}


def arrivals(receiver: Receiver) -> dict[str, float]:
    """When each account's FIRING watch line arrived (one post may carry many)."""
    found: dict[str, float] = {}
    for post, at in zip(list(receiver.posts), list(receiver.arrived), strict=False):
        for line in post.get("message", "").splitlines():
            if line.startswith("FIRING watch (") and ")" in line:
                found.setdefault(line.split("(", 1)[1].split(")", 1)[0], at)
    return found


def daemon(accounts: int, interval: float) -> dict[str, Any]:
    """One N: the daemon as a subprocess, measured over three intervals."""
    sim, receiver = SimExchange(web_key=KEY), Receiver()
    sim.set_coin("USDT", "1", spot="500", contract="100")
    sim.set_coin("BTC", "60000", spot="0.05", contract="0.01")
    with tempfile.TemporaryDirectory() as tmp, sim:
        state, rules, log = Path(tmp) / "w.db", Path(tmp) / "rules.yaml", Path(tmp) / "log"
        rules.write_text(daemon_rules(accounts, receiver.url()))
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
        env |= {"K": KEY, "WATCHER_MEXC_URL": sim.mexc_url, "WATCHER_RULES": str(rules)}
        env |= {"WATCHER_STATE": str(state), "WATCHER_INTERVAL": f"{interval:g}s"}
        env |= {"WATCHER_LOG_FORMAT": "json", "WATCHER_LOG_LEVEL": "WARNING"}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "watcher", "run"], env=env, stdout=out, stderr=out
            )
        try:
            deadline = time.monotonic() + 4 * interval + 120
            while time.monotonic() < deadline and not everyone(state, accounts):
                time.sleep(0.5)
            start, cpu_start = time.time(), cpu_seconds(process.pid)
            time.sleep(interval)
            sim.set_coin("USDT", "1", spot="50", contract="100")  # "watch" fires everywhere
            time.sleep(2 * interval)
            end, cpu_end, rss = time.time(), cpu_seconds(process.pid), rss_mb(process.pid)
            time.sleep(min(interval, 10))  # the last decisions arrive
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
            receiver.stop()
        made = sum(polled(state, start, end).values())
        due = accounts * (end - start) / interval
        decided, got = fired(state), arrivals(receiver)
        late = sorted(got[a] - t for a, t in decided.items() if a in got)
        warnings = [line for line in log.read_text().splitlines() if '"level": "warning"' in line]
        errors = [line for line in log.read_text().splitlines() if '"level": "error"' in line]
    return {
        "cpu_ms": (cpu_end - cpu_start) / max(made, 1) * 1000,
        "core": (cpu_end - cpu_start) / (end - start) * 100,
        "on_time": min(made / due, 1.0) * 100,
        "p50": statistics.median(late) if late else float("nan"),
        "p99": late[min(len(late) - 1, int(len(late) * 0.99))] if late else float("nan"),
        "alerts": len(decided),
        "arrived": len(late),
        "rss_mb": rss,
        "warnings": len(warnings) + len(errors),
        "said": sorted({said(line) for line in warnings + errors}),
    }


def said(line: str) -> str:
    """A warning's event, for the report (the daemon logs JSON lines)."""
    try:
        return str(json.loads(line).get("event"))[:120]
    except ValueError:
        return line[:120]


def everyone(state: Path, accounts: int) -> bool:
    """Every account has polled at least once."""
    if not state.exists():
        return False
    try:
        return len(polled(state, 0, time.time() + 1)) >= accounts
    except sqlite3.Error:
        return False


def main(argv: list[str] | None = None) -> dict[str, str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--in-process", action="store_true", help="no HTTP: watcher's own cost")
    args = parser.parse_args(argv)
    logs.configure("CRITICAL", "json")
    if not args.in_process:
        return over_http(args.accounts, args.interval)
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


def over_http(counts: list[int], interval: float) -> dict[str, str]:
    found = {}
    for accounts in counts:
        got = found[accounts] = daemon(accounts, interval)
        print(
            f"N={accounts:>5} at {interval:g}s: {got['cpu_ms']:.2f} ms CPU per account poll, "
            f"{got['core']:.0f}% of one core, {got['on_time']:.1f}% of due polls made, "
            f"delivery p50 {got['p50']:.2f}s p99 {got['p99']:.2f}s "
            f"({got['arrived']} of {got['alerts']} alerts arrived), RSS {got['rss_mb']:.0f} MB, "
            f"{got['warnings']:.0f} warnings"
        )
        for event in got["said"]:
            print(f"  warning: {event}")
    first, last = min(found), max(found)
    ratio = found[last]["cpu_ms"] / found[first]["cpu_ms"]
    print(f"N={last} / N={first}: {ratio:.2f}x CPU per account poll (goal <= {GOAL}x)")
    print("goals at 5,000 and 60 s: every poll made, < 50% of one core, p99 < 2 s, RSS < 200 MB")
    return {f"scale N={n}": f"{v['cpu_ms']:.2f} ms per poll" for n, v in found.items()}


if __name__ == "__main__":
    main()
